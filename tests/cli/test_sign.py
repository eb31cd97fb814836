"""`pim sign` prints a payload a worker accepts as this actor's, and nothing else;
`pim keys new` prints a working set of keys."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from typer.testing import CliRunner

from pim.cli.main import app
from pim.domain.models import Decision, Extend
from pim.identity.proofs import PROOF_MISMATCH, ProofRefused, SigningKey, TrustedKeys
from pim.portal.session import SessionCodec
from tests.cli.conftest import ok, one_error_line
from tests.conftest import TEST_SIGNER

TARGET = "activation/grp-ops/member/alice"


def verify(payload: dict, model, actor: str, action: str, target: str = TARGET):
    parsed = model.model_validate(payload)
    keys = TrustedKeys([TEST_SIGNER.trusted()])
    return keys.verify(
        parsed.proof, actor=actor, action=action, target=target, payload=parsed.signed_part(), now=datetime.now(UTC)
    )


def test_a_signed_approval_verifies_for_bob_and_that_request_only(pim):
    payload = json.loads(ok(pim("sign", "approve", TARGET, "--as", "bob", "--justification", "ok for INC-42")))
    assert payload["approver_id"] == "bob" and payload["justification"] == "ok for INC-42"
    assert verify(payload, Decision, "bob", "approve").actor == "bob"
    for actor, action, target in (("alice", "approve", TARGET), ("bob", "deny", TARGET), ("bob", "approve", "x")):
        try:
            verify(payload, Decision, actor, action, target)
        except ProofRefused as refused:
            assert refused.code == PROOF_MISMATCH
        else:
            raise AssertionError(f"accepted for {actor} {action} {target}")


def test_every_action_signs_its_own_payload(pim):
    extend = json.loads(ok(pim("sign", "extend", TARGET, "--as", "alice", "--duration", "1h", "--justification", "late")))
    assert extend["duration"] == "PT1H" and verify(extend, Extend, "alice", "extend").action == "extend"
    request = json.loads(ok(pim("sign", "request", "grp-dev", "--as", "alice", "--duration", "2h", "--justification", "x")))
    assert request["group_id"] == "grp-dev" and request["proof"]
    assert one_error_line(pim("sign", "extend", TARGET, "--as", "alice", "--duration", "forever"), 2).startswith("error: ")


def test_without_a_signing_key_nothing_is_signed(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["sign", "approve", TARGET, "--as", "bob"], env={"PIM_PROOF_SIGNING_KEY": None})
    assert result.exit_code == 1 and "no signing key" in result.stderr


def test_new_keys_work_together(pim):
    settings = dict(line.split("=", 1) for line in ok(pim("keys", "new", "--issuer", "ops")).splitlines())
    assert set(settings) == {
        "PIM_PROOF_SIGNING_KEY",
        "PIM_PROOF_TRUSTED_KEYS",
        "PIM_MFA_SECRET_KEY",
        "PIM_MFA_SEAL_KEY",
        "PIM_PORTAL_SESSION_KEY",
    }
    SessionCodec.from_setting(settings["PIM_PORTAL_SESSION_KEY"])  # a key the portal reads
    signer = SigningKey.parse(settings["PIM_PROOF_SIGNING_KEY"])
    proof = signer.sign(actor="bob", action="approve", target=TARGET, payload={})
    claims = TrustedKeys.parse(settings["PIM_PROOF_TRUSTED_KEYS"]).verify(
        proof, actor="bob", action="approve", target=TARGET, payload={}, now=datetime.now(UTC)
    )
    assert claims.issuer == "ops"
