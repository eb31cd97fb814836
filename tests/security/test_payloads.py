"""Sensitive payloads (issue 5, item 7): the AES-GCM payload codec (pim/codec.py),
key rotation, and MFA codes that never reach a Temporal history, with or without
encryption (sealing, pim/mfa.py).

The history is searched twice over: its JSON (`to_json()`, where payload data is
base64) and the raw bytes of its events (where payload data is as written), so a
justification or a code in any payload, attribute or failure would be found."""

from __future__ import annotations

import asyncio
import base64
import os
import uuid
from contextlib import asynccontextmanager, suppress
from datetime import timedelta

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from pim.client import PimClient
from pim.domain.actors import Action
from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, State
from pim.domain.status import ActivationStatus
from pim.identity import totp as mfa
from pim.runtime.codec import ENCODING, EncryptionCodec, PayloadKeyError, data_converter, parse_keys
from pim.runtime.settings import PimSettings
from tests.conftest import TEST_PROOFS, TEST_SIGNER, running_worker, signed
from worker.app import build_worker
from workflows.registry import WORKFLOWS

WHY = "INC-4711 rotate the payroll database credentials"
APPROVAL = "ok for the payroll rotation, bob"


def new_key() -> str:
    return base64.b64encode(os.urandom(32)).decode()


def plain(text: str) -> Payload:
    return Payload(metadata={"encoding": b"json/plain"}, data=text.encode())


# --- the codec ------------------------------------------------------------------------


async def test_the_codec_round_trips_and_hides_the_payload():
    codec = EncryptionCodec.from_setting(f"k1:{new_key()}")
    original = [plain(f'{{"justification": "{WHY}"}}'), plain('"second"')]
    encoded = await codec.encode(original)
    assert len(encoded) == 2
    for payload in encoded:
        assert payload.metadata["encoding"] == ENCODING and payload.metadata["encryption-key-id"] == b"k1"
        assert WHY.encode() not in payload.SerializeToString() and b"json/plain" not in payload.data
    assert await codec.decode(encoded) == original
    again = await codec.encode(original)
    assert again[0].data[:12] != encoded[0].data[:12] and again[0].data != encoded[0].data  # a fresh nonce each time


async def test_payloads_that_are_not_encrypted_pass_through():
    codec = EncryptionCodec.from_setting(f"k1:{new_key()}")
    unencrypted = [plain('"written before encryption was turned on"')]
    assert await codec.decode(unencrypted) == unencrypted


async def test_rotation_old_keys_still_decrypt_and_an_unknown_key_is_named():
    k1, k2 = new_key(), new_key()
    written_with_k1 = await EncryptionCodec.from_setting(f"k1:{k1}").encode([plain(WHY)])

    rotated = EncryptionCodec.from_setting(f"k2:{k2},k1:{k1}")
    assert await rotated.decode(written_with_k1) == [plain(WHY)]
    written_with_k2 = await rotated.encode([plain(WHY)])
    assert written_with_k2[0].metadata["encryption-key-id"] == b"k2"  # the first key encrypts

    k1_dropped = EncryptionCodec.from_setting(f"k2:{k2}")
    assert await k1_dropped.decode(written_with_k2) == [plain(WHY)]
    with pytest.raises(PayloadKeyError, match=r"key id 'k1', which is not in PIM_PAYLOAD_KEYS \(known: k2\)"):
        await k1_dropped.decode(written_with_k1)


async def test_a_wrong_key_or_an_altered_payload_is_refused():
    [payload] = await EncryptionCodec.from_setting(f"k1:{new_key()}").encode([plain(WHY)])
    with pytest.raises(PayloadKeyError, match="key in PIM_PAYLOAD_KEYS differs, or the payload was altered"):
        await EncryptionCodec.from_setting(f"k1:{new_key()}").decode([payload])
    altered = Payload()
    altered.CopyFrom(payload)
    altered.data = payload.data[:-1] + bytes([payload.data[-1] ^ 1])
    codec = EncryptionCodec.from_setting("k1:" + base64.b64encode(b"\0" * 32).decode())
    with pytest.raises(PayloadKeyError):
        await codec.decode([altered])


@pytest.mark.parametrize(
    "setting, message",
    [
        ("", "entry 1 must be KEY_ID:BASE64KEY"),
        ("k1", "entry 1 must be KEY_ID:BASE64KEY"),
        (":AAAA", "entry 1 must be KEY_ID:BASE64KEY"),
        ("k1:not base64!", "the key of 'k1' is not valid base64"),
        ("k1:" + base64.b64encode(b"x" * 16).decode(), "must be 256 bits"),
        ("k1:{key},k1:{key}", "key id 'k1' is listed twice"),
        ("k1:{key},", "entry 2 must be KEY_ID:BASE64KEY"),
    ],
)
def test_a_malformed_key_setting_is_refused_naming_the_setting(setting, message):
    with pytest.raises(ValueError, match=message) as error:
        parse_keys(setting.format(key=new_key()))
    assert str(error.value).startswith("PIM_PAYLOAD_KEYS: ")


def test_the_data_converter_encrypts_only_when_keys_are_set():
    assert data_converter(PimSettings(payload_keys=None)) is pydantic_data_converter
    converter = data_converter(PimSettings(payload_keys=f"k1:{new_key()}"))
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_converter_class is pydantic_data_converter.payload_converter_class


# --- MFA sealing ----------------------------------------------------------------------


def test_the_spec_evidence_is_still_valid_and_a_seal_replaces_the_code():
    request = ActivationRequest.model_validate(
        {"group_id": "grp-ops", "access": "member", "principal_id": "alice", "mfa": {"method": "totp", "code": "123456"}}
    )
    assert request.mfa is not None and not request.mfa.sealed
    key = base64.b64decode(new_key())
    sealed = mfa.seal_request(request, key)
    assert sealed.mfa.sealed and "123456" not in sealed.model_dump_json()
    binding = mfa.SealBinding("activation/grp-ops/member/alice", "grp-ops", "member", "alice")
    assert mfa.SealBinding.of(request) == binding
    assert sealed.mfa.code == mfa.seal(key, binding, "123456")
    # Bound to the request: another principal, group, access or workflow id gives another seal.
    for other in (
        mfa.SealBinding("activation/grp-ops/member/bob", "grp-ops", "member", "bob"),
        mfa.SealBinding("activation/grp-dev/member/alice", "grp-dev", "member", "alice"),
        mfa.SealBinding("activation/grp-ops/owner/alice", "grp-ops", "owner", "alice"),
        mfa.SealBinding("activation/grp-ops/member/alice-2", "grp-ops", "member", "alice"),
    ):
        assert mfa.seal(key, other, "123456") != sealed.mfa.code
    assert mfa.seal_request(sealed, key) == sealed  # sealed once
    assert mfa.seal_request(request, None) == request  # no key: as given
    with pytest.raises(ValueError, match="a sealed code is 43 base64url characters"):
        MfaEvidence(code="123456", sealed=True)
    with pytest.raises(ValueError, match="PIM_MFA_SEAL_KEY: the seal key must be at least 32 bytes"):
        mfa.parse_seal_key(base64.b64encode(b"short").decode())


# --- on the time-skipping server ------------------------------------------------------


async def history_text(client: Client, workflow_id: str) -> str:
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    raw = b"".join(event.SerializeToString() for event in history.events)
    return history.to_json() + raw.decode("latin-1")


def request(code: str, **fields) -> ActivationRequest:
    return ActivationRequest(
        group_id="grp-ops",
        access=AccessType.member,
        principal_id="alice",
        duration=timedelta(hours=1),
        justification=WHY,
        mfa=MfaEvidence(code=code),
        **fields,
    )


async def settle(env, pim: PimClient, rid: str) -> ActivationStatus:
    await env.sleep(timedelta(seconds=1))
    return await pim.status(rid)


async def finish(pim: PimClient, rid: str) -> ActivationStatus:
    return await asyncio.wait_for(pim.result(rid), timeout=15)


@asynccontextmanager
async def started(pim: PimClient, *ids: str):
    try:
        yield
    finally:
        for rid in ids:
            with suppress(Exception):
                await pim.temporal.get_workflow_handle(rid).terminate("test cleanup")


async def test_with_the_codec_on_no_justification_or_mfa_evidence_is_in_the_history(time_env, demo, monkeypatch, tmp_path):
    monkeypatch.delenv("PIM_MFA_SEAL_KEY", raising=False)
    monkeypatch.chdir(tmp_path)  # no .pim/mfa-seal.key: only encryption protects the code here
    converter = data_converter(PimSettings(payload_keys=f"k1:{new_key()}"))
    client = Client(**{**time_env.client.config(), "data_converter": converter})
    task_queue = f"pim-test-{uuid.uuid4().hex[:8]}"
    pim = PimClient(client, task_queue, signer=TEST_SIGNER)  # no seal key: the plain code goes in, encrypted
    code = mfa.current_code(await demo.mfa_secret("alice"))
    async with build_worker(client, demo, task_queue, proofs=TEST_PROOFS):
        rid = await pim.start(request(code))
        async with started(pim, rid):
            status = await settle(time_env, pim, rid)
            assert status.state == State.pending_approval, status.violations
            assert status.justification == WHY  # decrypted for whoever has the key
            approved = await pim.review(rid, "bob", "approve", APPROVAL)
            assert approved.state in (State.activating, State.active)
            await time_env.sleep(timedelta(hours=1, minutes=1))
            final = await finish(pim, rid)
            assert final.state == State.expired and final.justification == WHY
            assert final.stages[0].decisions[0].justification == APPROVAL

            text = await history_text(client, rid)
            assert ENCODING.decode() in text  # the payloads are there, encrypted
            for secret in (WHY, APPROVAL, f'"{code}"'):
                assert secret not in text, secret
            # The encrypted history replays with the same converter (the codec does not change what the workflow sees).
            history = await client.get_workflow_handle(rid).fetch_history()
            await Replayer(workflows=WORKFLOWS, data_converter=converter).replay_workflow(history)


async def test_with_the_codec_off_the_mfa_code_is_sealed_out_of_the_history(time_env, demo, monkeypatch):
    key = new_key()
    monkeypatch.setenv("PIM_MFA_SEAL_KEY", key)  # read by the worker's admission activity
    secret = await demo.mfa_secret("alice")
    async with running_worker(time_env, demo) as pim:
        pim.mfa_seal_key = base64.b64decode(key)  # as PimClient.connect does from the same setting
        good = mfa.current_code(secret)
        wrong = f"{(int(good) + 1) % 10**6:06d}"

        refused = await pim.start(request(wrong))
        async with started(pim, refused):
            status = await finish(pim, refused)
            assert status.state == State.rejected and [v.code for v in status.violations] == ["mfa_invalid"]
            assert f'"{wrong}"' not in await history_text(time_env.client, refused)

        rid = await pim.start(request(good))
        async with started(pim, rid):
            status = await settle(time_env, pim, rid)
            assert status.state == State.pending_approval, status.violations  # the sealed code passed MFA
            text = await history_text(time_env.client, rid)
            assert WHY in text  # not encrypted: the justification is readable...
            assert f'"{good}"' not in text  # ...the code is not
            assert mfa.seal(base64.b64decode(key), mfa.SealBinding.of(request(good)), good) in text  # only its seal
            await pim.cancel(rid, "alice", "wrong group")
            assert (await finish(pim, rid)).state == State.canceled

        replayed = await pim.start(request(good))
        async with started(pim, replayed):
            status = await finish(pim, replayed)
            assert status.state == State.rejected and [v.code for v in status.violations] == ["mfa_replayed"]


async def test_a_plain_code_still_works_and_a_seal_without_a_worker_key_is_refused(time_env, demo, monkeypatch, tmp_path):
    """The SPEC payload `{"method": "totp", "code": "123456"}` (the `temporal` CLI) keeps
    working, and that code is then in the history, as its sender wrote it."""
    monkeypatch.delenv("PIM_MFA_SEAL_KEY", raising=False)
    monkeypatch.chdir(tmp_path)
    secret = await demo.mfa_secret("alice")
    async with running_worker(time_env, demo) as pim:  # neither side has a seal key
        code = mfa.current_code(secret)
        raw = signed(request(code), "alice", Action.request, request(code).workflow_id)
        del raw["mfa"]["sealed"]  # as the SPEC example writes it
        assert raw["mfa"] == {"method": "totp", "code": code}
        handle = await time_env.client.start_workflow(
            "GroupActivation", raw, id=request(code).workflow_id, task_queue=pim.task_queue, result_type=ActivationStatus
        )
        async with started(pim, handle.id):
            status = await settle(time_env, pim, handle.id)
            assert status.state == State.pending_approval, status.violations
            assert f'"{code}"' in await history_text(time_env.client, handle.id)
            await pim.cancel(handle.id, "alice", "done")
            await finish(pim, handle.id)

        sealed_elsewhere = mfa.seal_request(request(mfa.current_code(secret)), base64.b64decode(new_key()))
        rid = await pim.start(sealed_elsewhere)
        async with started(pim, rid):
            status = await finish(pim, rid)
            assert status.state == State.rejected
            assert [v.message for v in status.violations] == [mfa.MFA_UNSEALABLE.message]
