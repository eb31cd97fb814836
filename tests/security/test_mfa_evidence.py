"""MFA evidence is used up when it is verified, whatever the verdict (issue 14,
M2), and a seal is bound to its request; wrong codes lock (M3). On the
time-skipping server, through the workflow and its admission activity.

- A dry run uses its code up; so does a request refused for another reason, and
  one for a group whose policy does not require MFA. An unproven request leaves
  it alone (anyone could otherwise burn someone's code).
- A seal copied from one request's history into a request for another group, or
  made for another workflow id, matches nothing.
- With a seal key on the workers, a plain code is refused (`mfa_unsealed`), and
  used up; without one it is accepted as before (tests/security/test_payloads.py).
- Five wrong codes lock the principal's MFA for 5 minutes of the server's clock."""

from __future__ import annotations

import asyncio
import base64
import os
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

from pim.client import PimClient
from pim.domain.actors import Action
from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, State
from pim.domain.policy import ActivationSettings, Policy
from pim.domain.status import ActivationStatus
from pim.identity import totp as mfa
from tests.conftest import running_worker, signed

WHY = "INC-4711 rotate the payroll database credentials"


def req(code: str | None, group: str = "grp-ops", **fields) -> ActivationRequest:
    fields.setdefault("duration", timedelta(hours=1))
    return ActivationRequest(
        group_id=group,
        access=AccessType.member,
        principal_id="alice",
        justification=WHY,
        mfa=MfaEvidence(code=code) if code else None,
        **fields,
    )


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def codes(status: ActivationStatus) -> list[str]:
    return [v.code for v in status.violations]


@asynccontextmanager
async def worker(env, store, monkeypatch, tmp_path, seal_key: bytes | None = None):
    """A worker with (or without) a seal key, and a PimClient that seals with it."""
    monkeypatch.chdir(tmp_path)  # no .pim/mfa-seal.key of a developer's `pim dev`
    if seal_key is None:
        monkeypatch.delenv("PIM_MFA_SEAL_KEY", raising=False)
    else:
        monkeypatch.setenv("PIM_MFA_SEAL_KEY", base64.b64encode(seal_key).decode())  # read by the admission activity
    async with running_worker(env, store) as pim:
        pim.mfa_seal_key = seal_key
        pim.started = []
        try:
            yield pim
        finally:
            for rid in pim.started:
                with suppress(Exception):
                    await env.client.get_workflow_handle(rid).terminate("test cleanup")


async def ended(pim: PimClient, request: ActivationRequest) -> ActivationStatus:
    """A request that ends at admission (rejected, or a dry run)."""
    rid = await pim.start(request)
    if hasattr(pim, "started"):
        pim.started.append(rid)
    return await asyncio.wait_for(pim.result(rid), timeout=15)


async def pending(env, pim: PimClient, request: ActivationRequest) -> ActivationStatus:
    """A request admitted to wait for approval: its status, then it is canceled."""
    rid = await pim.start(request)
    pim.started.append(rid)
    await env.sleep(timedelta(seconds=1))
    status = await pim.status(rid)
    if status.state == State.pending_approval:
        await pim.cancel(rid, "alice", "test over")
        await asyncio.wait_for(pim.result(rid), timeout=15)
    return status


async def code_of(store, offset: float = 0) -> str:
    import time

    return mfa.current_code(await store.mfa_secret("alice"), time.time() + offset)


# --- M2: used up whatever the verdict ------------------------------------------------------


async def test_a_dry_run_uses_the_code_up(time_env, demo, monkeypatch, tmp_path):
    async with worker(time_env, demo, monkeypatch, tmp_path) as pim:
        code = await code_of(demo)
        dry = await ended(pim, req(code, validate_only=True))
        assert dry.state == State.canceled and codes(dry) == [] and dry.end_reason.startswith("validate_only")
        real = await ended(pim, req(code))
        assert real.state == State.rejected and codes(real) == ["mfa_replayed"]


async def test_a_request_refused_for_another_reason_uses_its_code_up(time_env, demo, monkeypatch, tmp_path):
    async with worker(time_env, demo, monkeypatch, tmp_path) as pim:
        code = await code_of(demo)
        too_long = await ended(pim, req(code, duration=timedelta(days=3)))  # grp-ops allows 8 hours
        assert too_long.state == State.rejected and "mfa_replayed" not in codes(too_long)
        assert (await ended(pim, req(code))).violations[0].code == "mfa_replayed"

        # grp-dev requires no MFA: evidence sent anyway is used up, and only a policy that
        # requires MFA counts its verdict.
        code = await code_of(demo, 30)
        dev = await pending(time_env, pim, req(code, group="grp-dev"))
        assert dev.state == State.active and codes(dev) == []
        await pim.deactivate(dev.request_id, "admin", "test over")
        assert (await asyncio.wait_for(pim.result(dev.request_id), timeout=15)).state == State.deactivated
        assert (await ended(pim, req(code))).violations[0].code == "mfa_replayed"
        wrong_for_dev = await pending(time_env, pim, req(wrong(await code_of(demo)), group="grp-dev"))
        assert codes(wrong_for_dev) == []


async def test_an_unproven_request_leaves_the_code_alone(time_env, demo, monkeypatch, tmp_path):
    async with worker(time_env, demo, monkeypatch, tmp_path) as pim:
        code = await code_of(demo)
        unproven = PimClient(time_env.client, pim.task_queue)  # no signing key: no proof
        refused = await ended(unproven, req(code))
        assert refused.state == State.rejected and codes(refused) == ["proof_missing"]
        assert (await pending(time_env, pim, req(code))).state == State.pending_approval


# --- M2: a seal is bound to its request ------------------------------------------------------


async def test_a_seal_copied_to_another_group_or_made_for_another_workflow_id_is_refused(time_env, demo, monkeypatch, tmp_path):
    key = os.urandom(32)
    await demo.set_policy("grp-dev", AccessType.member, Policy(activation=ActivationSettings(require_mfa=True)), by="test")
    async with worker(time_env, demo, monkeypatch, tmp_path, seal_key=key) as pim:
        code = await code_of(demo)
        # A request whose proof is refused: its seal is in its history, unused.
        unproven = PimClient(time_env.client, pim.task_queue, mfa_seal_key=key)
        original = await ended(unproven, req(code))
        assert codes(original) == ["proof_missing"]
        history = await time_env.client.get_workflow_handle(original.request_id).fetch_history()
        started = history.events[0].workflow_execution_started_event_attributes
        copied = ActivationRequest.model_validate_json(started.input.payloads[0].data).mfa
        assert copied is not None and copied.sealed and code not in copied.code

        to_dev = await ended(pim, req(None, group="grp-dev").model_copy(update={"mfa": copied}))
        assert to_dev.state == State.rejected and codes(to_dev) == ["mfa_invalid"]
        elsewhere = mfa.SealBinding("activation/grp-ops/member/alice-2", "grp-ops", "member", "alice")
        sealed_elsewhere = MfaEvidence(code=mfa.seal(key, elsewhere, code), sealed=True)
        assert codes(await ended(pim, req(None).model_copy(update={"mfa": sealed_elsewhere}))) == ["mfa_invalid"]

        # For the request it was made for, the copied seal was still good.
        assert (await pending(time_env, pim, req(None).model_copy(update={"mfa": copied}))).state == State.pending_approval


async def test_with_a_seal_key_a_plain_code_is_refused_and_used_up(time_env, demo, monkeypatch, tmp_path):
    key = os.urandom(32)
    async with worker(time_env, demo, monkeypatch, tmp_path, seal_key=key) as pim:
        code = await code_of(demo)
        raw = signed(req(code), "alice", Action.request, req(code).workflow_id)  # as the `temporal` CLI sends it
        handle = await time_env.client.start_workflow(
            "GroupActivation", raw, id=req(code).workflow_id, task_queue=pim.task_queue, result_type=ActivationStatus
        )
        pim.started.append(handle.id)
        status = await asyncio.wait_for(handle.result(), timeout=15)
        assert status.state == State.rejected and codes(status) == ["mfa_unsealed"]
        assert "mfa.code" in status.violations[0].message and code not in status.violations[0].message
        # It is in the history in clear: used up, so sealing it now is no use.
        assert codes(await ended(pim, req(code))) == ["mfa_replayed"]


# --- M3: wrong codes lock ----------------------------------------------------------------------


async def test_five_wrong_codes_lock_for_five_minutes_of_the_servers_clock(time_env, demo, monkeypatch, tmp_path):
    async with worker(time_env, demo, monkeypatch, tmp_path) as pim:
        for _ in range(5):
            refused = await ended(pim, req(wrong(await code_of(demo))))
            assert codes(refused) == ["mfa_invalid"]
        locked = await ended(pim, req(await code_of(demo)))
        assert locked.state == State.rejected and codes(locked) == ["mfa_locked"]
        assert "locked until" in locked.violations[0].message
        [line] = [r for r in await demo.audit(principal_id="alice") if r.action == "mfa_locked"]
        assert line.group_id == "grp-ops" and line.request_id == "activation/grp-ops/member/alice"
        [told] = await demo.notifications(event="mfa_locked")
        admins = set(await demo.group_administrators("grp-ops", await time_env.get_current_time()))
        assert admins and admins <= {r["principal_id"] for r in told.payload["recipients"]}

        await time_env.sleep(timedelta(minutes=5))
        assert (await pending(time_env, pim, req(await code_of(demo)))).state == State.pending_approval
