"""No payload can fail a workflow task (issue 14, H1 and M1). An attacker sends,
to a pending, a scheduled and an active activation, every kind of payload a
worker cannot decode: a bogus encrypted body, an unknown key id, an unknown
encoding, JSON nested deeper than any parser goes. Each is refused and counted;
the activations go on and their access ends on time."""

from __future__ import annotations

import base64
import dataclasses
import os
import time
from collections.abc import Sequence
from datetime import timedelta

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.converter import PayloadCodec

from pim.client import PimClient
from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, State
from pim.domain.status import ActivationStatus
from pim.identity.totp import current_code
from pim.runtime.codec import ENCODING, KEY_ID, data_converter
from pim.runtime.settings import PimSettings
from tests.conftest import TEST_PROOFS, TEST_SIGNER, running_worker
from tests.polling import eventually

KEYS = f"k1:{base64.b64encode(os.urandom(32)).decode()}"
MEMBER = AccessType.member


class Forged(PayloadCodec):
    """An attacker's client: every payload it sends is replaced by `make()`."""

    def __init__(self, make) -> None:
        self.make = make

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.make() for _ in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return list(payloads)


FORGERIES = {
    "bogus encrypted body": lambda: Payload(metadata={"encoding": ENCODING, KEY_ID: b"k1"}, data=os.urandom(40)),
    "unknown key id": lambda: Payload(metadata={"encoding": ENCODING, KEY_ID: b"nobody"}, data=os.urandom(40)),
    "unknown encoding": lambda: Payload(metadata={"encoding": b"foo/bar"}, data=b"{}"),
    "JSON nested 900 deep": lambda: Payload(metadata={"encoding": b"json/plain"}, data=b"[" * 900 + b"]" * 900),
    "not JSON at all": lambda: Payload(metadata={"encoding": b"json/plain"}, data=b"\xff\xfe{"),
}
SIGNALS = ["approve", "deny", "cancel", "deactivate", "extend", "eligibility_changed"]


@dataclasses.dataclass
class Server:
    client: Client  # what running_worker needs of an environment


async def connected(time_env, settings: PimSettings, tolerant: bool, codec: PayloadCodec | None = None) -> Client:
    converter = data_converter(settings, tolerant=tolerant)
    if codec is not None:
        converter = dataclasses.replace(converter, payload_codec=codec)
    return await Client.connect(time_env.client.service_client.config.target_host, data_converter=converter)


def request(group: str, principal: str, **fields) -> ActivationRequest:
    base = dict(
        group_id=group,
        access=MEMBER,
        principal_id=principal,
        duration=timedelta(hours=1),
        justification="INC-42 database failover",
    )
    return ActivationRequest(**{**base, **fields})


async def test_undecodable_signals_and_updates_are_refused_and_access_still_ends_on_time(time_env, demo):
    worker_client = await connected(time_env, PimSettings(payload_keys=KEYS), tolerant=True)
    async with running_worker(Server(worker_client), demo, proofs=TEST_PROOFS) as pim:
        pim = PimClient(worker_client, pim.task_queue, signer=TEST_SIGNER)
        code = current_code(await demo.mfa_secret("alice"))
        pending = await pim.start(request("grp-ops", "alice", mfa=MfaEvidence(code=code)))
        start = await time_env.get_current_time() + timedelta(minutes=30)
        scheduled = await pim.start(request("grp-dev", "dave", start_at=start))
        active = await pim.start(request("grp-dev", "alice"))
        ids = {"pending": pending, "scheduled": scheduled, "active": active}
        expected = {"pending": State.pending_approval, "scheduled": State.scheduled, "active": State.active}
        for name, rid in ids.items():
            await eventually(
                lambda rid=rid: pim.status(rid), until=lambda s, n=name: s.state == expected[n], what=f"{name} to settle"
            )

        for forgery, make in FORGERIES.items():
            attacker = PimClient(await connected(time_env, PimSettings(), False, Forged(make)), pim.task_queue)
            for rid in ids.values():
                handle = attacker.temporal.get_workflow_handle(rid)
                for signal in SIGNALS:
                    await handle.signal(signal, {"any": "thing"})
                with pytest.raises(WorkflowUpdateFailedError) as refused:
                    await handle.execute_update("review", {"any": "thing"}, result_type=ActivationStatus)
                assert "could not be decoded" in str(refused.value.cause), forgery

        await time_env.sleep(timedelta(seconds=2))
        statuses = {name: await pim.status(rid) for name, rid in ids.items()}
        for name, status in statuses.items():
            assert status.state == expected[name], (name, status.state)
            undecoded = [e for e in status.events if e.note and "could not be decoded" in e.note]
            assert len(undecoded) >= 5 * 5, name  # five forgeries, five signals that refuse (and the check)
            assert status.refusals >= 25
        # Refusals are audited at a bounded rate: not one line each once past the first twenty.
        audited = [r for r in await demo.audit(request_id=active) if r.action == "refused"]
        assert 20 <= len(audited) < statuses["active"].refusals

        # And the activations go on: bob approves, the scheduled one starts, all end on time.
        await pim.approve(pending, "bob", "approved for INC-42")
        for name, rid in ids.items():
            final = await eventually(
                lambda rid=rid: pim.status(rid),
                until=lambda s: s.state.terminal,
                what=f"{name} to end",
                env=time_env,
                timeout=timedelta(hours=3),
                interval=timedelta(minutes=5),
            )
            assert final.state == State.expired, (name, final.state, final.end_reason)
            assert final.ended_at is not None and final.expires_at is not None
            assert final.ended_at - final.expires_at < timedelta(minutes=6)
        assert not await demo.memberships("grp-ops", MEMBER) or [
            m.principal_id for m in await demo.memberships("grp-ops", MEMBER)
        ] == ["carol"]
        assert [m.principal_id for m in await demo.memberships("grp-dev", MEMBER)] == []


@pytest.mark.parametrize("forgery", list(FORGERIES))
async def test_an_undecodable_start_is_rejected_and_frees_the_id(time_env, demo, forgery):
    worker_client = await connected(time_env, PimSettings(payload_keys=KEYS), tolerant=True)
    async with running_worker(Server(worker_client), demo, proofs=TEST_PROOFS) as pim:
        pim = PimClient(worker_client, pim.task_queue, signer=TEST_SIGNER)
        attacker = await connected(time_env, PimSettings(), False, Forged(FORGERIES[forgery]))
        rid = "activation/grp-dev/member/alice"  # alice's own canonical id
        handle = await attacker.start_workflow("GroupActivation", {"any": "thing"}, id=rid, task_queue=pim.task_queue)
        final = await eventually(lambda: pim.status(handle.id), until=lambda s: s.state.terminal, what="the forged start")
        assert final.state == State.rejected
        assert [v.code for v in final.violations] == ["undecodable"]
        assert final.violations[0].message.startswith("payload: could not be decoded")
        # alice can ask at once: the id is free.
        started = time.monotonic()
        again = await pim.start(request("grp-dev", "alice"))
        status = await eventually(lambda: pim.status(again), until=lambda s: s.state == State.active, what="alice")
        assert status.state == State.active and time.monotonic() - started < 15
        await pim.deactivate(again, "admin", "test over")
