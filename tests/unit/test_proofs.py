"""Actor proofs: a proof binds one actor, action, target and payload, for at most
five minutes, and verifies only with a key the worker trusts."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta

import jwt
import pytest

from pim.identity.proofs import (
    PROOF_EXPIRED,
    PROOF_INVALID,
    PROOF_MISMATCH,
    PROOF_MISSING,
    ProofRefused,
    SigningKey,
    TrustedKeys,
    ensure_dev_signing_key,
    payload_digest,
)

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
TARGET = "activation/grp-ops/member/alice"
PAYLOAD = {"approver_id": "bob", "decision": "approve", "justification": "INC-42"}


@pytest.fixture(scope="module")
def api_key() -> SigningKey:
    return SigningKey.generate("pim-api", "k1")


def sign(key: SigningKey, **overrides) -> str:
    args = dict(actor="bob", action="review", target=TARGET, payload=PAYLOAD, now=NOW)
    return key.sign(**{**args, **overrides})


def verify(keys: TrustedKeys, proof: str | None, at: datetime = NOW + timedelta(seconds=5), **overrides):
    args = dict(actor="bob", action="review", target=TARGET, payload=PAYLOAD, now=at)
    return keys.verify(proof, **{**args, **overrides})


def refusal(keys: TrustedKeys, proof: str | None, **overrides) -> str:
    with pytest.raises(ProofRefused) as refused:
        verify(keys, proof, **overrides)
    assert not proof or proof not in refused.value.message  # a refusal never echoes the token
    return refused.value.code


def test_a_proof_verifies_for_exactly_what_it_was_signed_for(api_key):
    claims = verify(TrustedKeys([api_key.trusted()]), sign(api_key))
    assert (claims.issuer, claims.actor, claims.action, claims.target) == ("pim-api", "bob", "review", TARGET)
    assert claims.expires_at - claims.issued_at <= timedelta(minutes=5) and len(claims.proof_id) >= 32


def test_missing_proofs_are_refused(api_key):
    keys = TrustedKeys([api_key.trusted()])
    assert refusal(keys, None) == PROOF_MISSING
    assert refusal(keys, "") == PROOF_MISSING


@pytest.mark.parametrize(
    ("field", "value"),
    [("actor", "alice"), ("action", "approve"), ("target", "activation/grp-ops/member/bob"),
     ("payload", {**PAYLOAD, "decision": "deny"}), ("payload", {**PAYLOAD, "justification": "other"})],
)  # fmt: skip
def test_a_proof_bound_to_something_else_is_refused(api_key, field, value):
    assert refusal(TrustedKeys([api_key.trusted()]), sign(api_key), **{field: value}) == PROOF_MISMATCH


def test_a_proof_signed_with_a_key_that_is_not_trusted_is_refused(api_key):
    stranger = SigningKey.generate("pim-api", "k1")  # same issuer and key id, another key
    assert refusal(TrustedKeys([api_key.trusted()]), sign(stranger)) == PROOF_INVALID
    unknown_id = SigningKey.generate("pim-api", "k9")
    assert refusal(TrustedKeys([api_key.trusted()]), sign(unknown_id)) == PROOF_INVALID


def test_an_issuer_cannot_borrow_another_issuers_key_id(api_key):
    impostor = SigningKey("pim-dev", "k1", api_key.private_key)
    assert refusal(TrustedKeys([api_key.trusted()]), sign(impostor)) == PROOF_INVALID


def test_expired_and_long_lived_proofs_are_refused(api_key):
    keys = TrustedKeys([api_key.trusted()])
    assert refusal(keys, sign(api_key), at=NOW + timedelta(minutes=2, seconds=1)) == PROOF_EXPIRED
    assert refusal(keys, sign(api_key, lifetime=timedelta(minutes=6))) == PROOF_INVALID
    assert refusal(keys, sign(api_key, now=NOW + timedelta(minutes=3))) == PROOF_INVALID  # from the future


def test_a_proof_altered_after_signing_is_refused(api_key):
    header, claims, signature = sign(api_key).split(".")
    decoded = json.loads(base64.urlsafe_b64decode(claims + "=="))
    forged = base64.urlsafe_b64encode(json.dumps({**decoded, "sub": "admin"}).encode()).rstrip(b"=").decode()
    assert refusal(TrustedKeys([api_key.trusted()]), f"{header}.{forged}.{signature}", actor="admin") == PROOF_INVALID


@pytest.mark.parametrize("algorithm", ["none", "HS256"])
def test_algorithm_confusion_is_refused(api_key, algorithm):
    claims = jwt.decode(sign(api_key), options={"verify_signature": False})
    key = "public-key-as-hmac-secret-xxxxxxxxxxxxxxx" if algorithm == "HS256" else None
    token = jwt.encode(claims, key, algorithm=algorithm, headers={"kid": "k1"})
    assert refusal(TrustedKeys([api_key.trusted()]), token) in (PROOF_INVALID,)


@pytest.mark.parametrize("proof", ["not-a-jws", "a.b", "x" * 5000, "eyJhbGciOiJFZERTQSJ9.e30.!!!!"])
def test_garbage_is_refused_as_invalid(api_key, proof):
    assert refusal(TrustedKeys([api_key.trusted()]), proof) == PROOF_INVALID


def test_rotation_two_keys_trusted_then_the_old_one_retired(api_key):
    new = SigningKey.generate("pim-api", "k2")
    both = TrustedKeys.parse(",".join([api_key.trusted().serialize(), new.trusted().serialize()]))
    assert verify(both, sign(api_key)).actor == "bob"
    assert verify(both, sign(new)).actor == "bob"
    only_new = TrustedKeys.parse(new.trusted().serialize())
    assert refusal(only_new, sign(api_key)) == PROOF_INVALID
    assert verify(only_new, sign(new)).actor == "bob"


def test_keys_are_written_and_read_back(api_key):
    again = SigningKey.parse(api_key.serialize())
    assert verify(TrustedKeys([api_key.trusted()]), sign(again)).issuer == "pim-api"
    assert "private" not in repr(again) and api_key.serialize() not in repr(again)


@pytest.mark.parametrize("setting", ["", "pim-api:k1", "pim-api:k1:!!", "pim api:k1:" + "A" * 43, "a:b:QUJD"])
def test_bad_trusted_key_settings_say_what_is_wrong(setting):
    with pytest.raises(ValueError, match="PIM_PROOF_TRUSTED_KEYS|issuer|key"):
        TrustedKeys.parse(setting)


def test_the_digest_ignores_the_proof_and_key_order():
    assert payload_digest({"a": 1, "b": "x", "proof": "p"}) == payload_digest({"b": "x", "a": 1})
    assert payload_digest({"a": 1}) != payload_digest({"a": 2})


def test_the_development_key_file_is_private(tmp_path):
    path = tmp_path / ".pim" / "proof-signing.key"
    key = ensure_dev_signing_key(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert ensure_dev_signing_key(path).trusted().serialize() == key.trusted().serialize()


def test_a_worker_without_a_trusted_issuer_refuses_to_start_unless_told_to_be_insecure():
    import structlog

    from pim.identity.actors import configured_proof_policy
    from pim.runtime.settings import PimSettings

    with pytest.raises(ValueError, match="PIM_PROOF_TRUSTED_KEYS"):
        configured_proof_policy(PimSettings(proof_trusted_keys=None, insecure_accept_unproven=False))
    with structlog.testing.capture_logs() as logged:
        policy = configured_proof_policy(PimSettings(proof_trusted_keys=None, insecure_accept_unproven=True))
    assert policy.insecure and policy.trusted is None
    assert any(line["log_level"] == "error" and "INSECURE" in line["event"] for line in logged)
    trusted = configured_proof_policy(PimSettings(proof_trusted_keys=SigningKey.generate("pim-api", "k7").trusted().serialize()))
    assert trusted.trusted is not None and "k7" in trusted.trusted.by_id
