"""Actor proofs: who asked for an action, signed by a front end the workers trust.

Every payload that names an actor (a request's principal, an approver, the `by`
of cancel, deactivate and extend, an administrator's assignment change) carries
`proof`: a compact JWS (EdDSA over Ed25519, RFC 8037) whose claims bind

    iss  the issuer (the front end that authenticated the actor)
    sub  the actor
    act  the action (`request`, `approve`, `review`, `extend_assignment`, ...)
    tgt  the target: the workflow id the payload is sent to
    dig  a digest of the rest of the payload (SHA-256 of its canonical JSON)
    iat, exp  issued at, expires at: at most 5 minutes apart
    jti  a unique id: the store accepts each proof once

and whose header names the key (`kid`). Workers hold only public keys
(PIM_PROOF_TRUSTED_KEYS); the signing key stays with the front end: `pim dev`'s
own key in local mode, the API in production. Signatures come from PyJWT with
`cryptography`: nothing here is home-made crypto. Verification never echoes
the token."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import jwt
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pim.domain.models import Proven
from pim.runtime.settings import PimSettings

ALGORITHM = "EdDSA"
MAX_LIFETIME = timedelta(minutes=5)
DEFAULT_LIFETIME = timedelta(minutes=2)
CLOCK_SKEW = timedelta(seconds=30)  # a signer's clock a little ahead of the worker's
MAX_PROOF_LENGTH = 4096
TRUSTED_SETTING = "PIM_PROOF_TRUSTED_KEYS"
SIGNING_SETTING = "PIM_PROOF_SIGNING_KEY"
DEV_SIGNING_KEY_FILE = Path(".pim") / "proof-signing.key"  # written by `pim dev`, mode 0600
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_COMPACT_JWS = re.compile(r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$")
REQUIRED_CLAIMS = ["iss", "sub", "act", "tgt", "dig", "iat", "exp", "jti"]

# Refusal codes (stable: tests, the audit and API clients read them).
PROOF_MISSING = "proof_missing"
PROOF_INVALID = "proof_invalid"  # not a JWS, bad signature, untrusted key or issuer, too long-lived
PROOF_EXPIRED = "proof_expired"
PROOF_MISMATCH = "proof_mismatch"  # signed for another actor, action, target or payload
PROOF_REPLAYED = "proof_replayed"


class ProofRefused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class ProofClaims:
    issuer: str
    actor: str
    action: str
    target: str
    digest: str
    issued_at: datetime
    expires_at: datetime
    proof_id: str


P = TypeVar("P", bound=Proven)


def prove(signer: SigningKey, payload: P, actor: str, action: str, target: str) -> P:
    """The payload with a proof that `actor` sends exactly it, for `action`, to `target`."""
    proof = signer.sign(actor=actor, action=action, target=target, payload=payload.signed_part())
    return payload.model_copy(update={"proof": proof})


def payload_digest(payload: Mapping[str, Any]) -> str:
    """SHA-256 of the payload's canonical JSON (sorted keys, no spaces), without
    its `proof`, base64url without padding. Callers pass the payload as the
    pydantic model dumps it in JSON mode, so signer and verifier agree."""
    body = {key: value for key, value in payload.items() if key != "proof"}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return _b64(hashlib.sha256(canonical.encode()).digest())


@dataclass(frozen=True)
class TrustedKey:
    issuer: str
    key_id: str
    public_key: Ed25519PublicKey

    def serialize(self) -> str:
        raw = self.public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        return f"{self.issuer}:{self.key_id}:{_b64(raw)}"


@dataclass(frozen=True)
class SigningKey:
    """A front end's private key. `ISSUER:KEY_ID:BASE64URL(32-byte seed)` when written out."""

    issuer: str
    key_id: str
    private_key: Ed25519PrivateKey

    @classmethod
    def generate(cls, issuer: str, key_id: str | None = None) -> SigningKey:
        key_id = key_id or datetime.now(UTC).strftime("%Y%m%d%H%M%S") + "-" + uuid.uuid4().hex[:6]
        return cls(_name(issuer, "issuer"), _name(key_id, "key id"), Ed25519PrivateKey.generate())

    @classmethod
    def parse(cls, text: str, setting: str = SIGNING_SETTING) -> SigningKey:
        issuer, key_id, seed = _three_parts(text.strip(), setting)
        raw = _unb64(seed, setting, 32)
        return cls(
            _name(issuer, f"{setting}: issuer"), _name(key_id, f"{setting}: key id"), Ed25519PrivateKey.from_private_bytes(raw)
        )

    def serialize(self) -> str:
        from cryptography.hazmat.primitives.serialization import NoEncryption, PrivateFormat

        raw = self.private_key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
        return f"{self.issuer}:{self.key_id}:{_b64(raw)}"

    def trusted(self) -> TrustedKey:
        return TrustedKey(self.issuer, self.key_id, self.private_key.public_key())

    def sign(
        self,
        *,
        actor: str,
        action: str,
        target: str,
        payload: Mapping[str, Any],
        now: datetime | None = None,
        lifetime: timedelta = DEFAULT_LIFETIME,
    ) -> str:
        now = now or datetime.now(UTC)
        claims = {
            "iss": self.issuer,
            "sub": actor,
            "act": action,
            "tgt": target,
            "dig": payload_digest(payload),
            "iat": int(now.timestamp()),
            "exp": int((now + lifetime).timestamp()),
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(claims, self.private_key, algorithm=ALGORITHM, headers={"kid": self.key_id})

    def __repr__(self) -> str:  # the private key never reaches a log line
        return f"SigningKey(issuer={self.issuer!r}, key_id={self.key_id!r})"


class TrustedKeys:
    """The public keys a worker accepts proofs from, by key id. Rotation: list the
    new key beside the old one, move the signer to it, then drop the old one."""

    def __init__(self, keys: list[TrustedKey]) -> None:
        self.by_id: dict[str, TrustedKey] = {}
        for key in keys:
            if key.key_id in self.by_id:
                raise ValueError(f"{TRUSTED_SETTING}: key id {key.key_id!r} is listed twice")
            self.by_id[key.key_id] = key

    @classmethod
    def parse(cls, text: str) -> TrustedKeys:
        """`ISSUER:KEY_ID:BASE64URL(32-byte public key)[,...]`."""
        keys = []
        for index, entry in enumerate([e for e in text.split(",") if e.strip()], start=1):
            issuer, key_id, raw = _three_parts(entry.strip(), f"{TRUSTED_SETTING} entry {index}")
            public = Ed25519PublicKey.from_public_bytes(_unb64(raw, f"{TRUSTED_SETTING} entry {index}", 32))
            keys.append(TrustedKey(_name(issuer, "issuer"), _name(key_id, "key id"), public))
        if not keys:
            raise ValueError(f"{TRUSTED_SETTING}: no key")
        return cls(keys)

    def __bool__(self) -> bool:
        return bool(self.by_id)

    def verify(
        self, proof: str | None, *, actor: str, action: str, target: str, payload: Mapping[str, Any], now: datetime
    ) -> ProofClaims:
        """The proof's claims when it binds exactly this actor, action, target and
        payload and is valid now; otherwise ProofRefused with its code."""
        claims = self._signed_claims(proof)
        issued, expires = _instant(claims["iat"]), _instant(claims["exp"])
        if expires - issued > MAX_LIFETIME:
            raise ProofRefused(PROOF_INVALID, "proof: lives longer than 5 minutes")
        if issued > now + CLOCK_SKEW:
            raise ProofRefused(PROOF_INVALID, "proof: issued in the future")
        if now >= expires:
            raise ProofRefused(PROOF_EXPIRED, f"proof: expired at {expires.isoformat()}")
        for claim, expected, what in (("sub", actor, "actor"), ("act", action, "action"), ("tgt", target, "target")):
            if claims[claim] != expected:
                raise ProofRefused(PROOF_MISMATCH, f"proof: issued for another {what}")
        if claims["dig"] != payload_digest(payload):
            raise ProofRefused(PROOF_MISMATCH, "proof: the payload was altered after signing")
        return ProofClaims(
            claims["iss"], claims["sub"], claims["act"], claims["tgt"], claims["dig"], issued, expires, claims["jti"]
        )

    def _signed_claims(self, proof: str | None) -> dict[str, Any]:
        if not proof:
            raise ProofRefused(PROOF_MISSING, "proof: required, from a front end this worker trusts")
        if len(proof) > MAX_PROOF_LENGTH or not _COMPACT_JWS.fullmatch(proof):
            raise ProofRefused(PROOF_INVALID, "proof: not a compact JWS")
        try:
            header = jwt.get_unverified_header(proof)
        except jwt.PyJWTError:
            raise ProofRefused(PROOF_INVALID, "proof: not a compact JWS") from None
        key = self.by_id.get(str(header.get("kid")))
        if key is None or header.get("alg") != ALGORITHM:
            raise ProofRefused(PROOF_INVALID, "proof: signed with a key this worker does not trust")
        try:
            claims: dict[str, Any] = jwt.decode(
                proof,
                key.public_key,
                algorithms=[ALGORITHM],
                options={
                    "require": REQUIRED_CLAIMS,
                    "verify_exp": False,
                    "verify_iat": False,
                    "verify_nbf": False,
                    "verify_aud": False,
                },
            )
        except jwt.PyJWTError:
            raise ProofRefused(PROOF_INVALID, "proof: the signature does not verify") from None
        if claims["iss"] != key.issuer:
            raise ProofRefused(PROOF_INVALID, "proof: the issuer does not own the key")
        if not all(isinstance(claims[c], str) for c in ("sub", "act", "tgt", "dig", "jti")) or not all(
            isinstance(claims[c], int) and 0 <= claims[c] < 2**33 for c in ("iat", "exp")
        ):
            raise ProofRefused(PROOF_INVALID, "proof: malformed claims")
        return claims


def configured_signing_key(settings: PimSettings, dev_file: Path = DEV_SIGNING_KEY_FILE) -> SigningKey | None:
    """PIM_PROOF_SIGNING_KEY, else `pim dev`'s key file in the working directory, else None."""
    if settings.proof_signing_key:
        return SigningKey.parse(settings.proof_signing_key.get_secret_value())
    if dev_file.exists():
        return SigningKey.parse(dev_file.read_text(), str(dev_file))
    return None


def dev_trusted_key(path: Path = DEV_SIGNING_KEY_FILE) -> TrustedKey | None:
    """The public half of `pim dev`'s key, when this directory has one: what local
    commands trust, beside PIM_PROOF_TRUSTED_KEYS."""
    return SigningKey.parse(path.read_text(), str(path)).trusted() if path.exists() else None


def ensure_dev_signing_key(path: Path = DEV_SIGNING_KEY_FILE) -> SigningKey:
    """`pim dev`'s signing key, created once (mode 0600) in its state directory."""
    if path.exists():
        return SigningKey.parse(path.read_text(), str(path))
    key = SigningKey.generate("pim-dev")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, key.serialize() + "\n")
    return key


def write_private(path: Path, text: str) -> None:
    """A file only its owner may read, from its first byte."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str, setting: str, size: int) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"{setting}: the key is not base64url") from None
    if len(raw) != size:
        raise ValueError(f"{setting}: the key must be {size} bytes, got {len(raw)}")
    return raw


def _three_parts(text: str, setting: str) -> tuple[str, str, str]:
    parts = text.split(":")
    if len(parts) != 3 or not all(parts):
        raise ValueError(f"{setting}: expected ISSUER:KEY_ID:BASE64URL_KEY")
    return parts[0], parts[1], parts[2]


def _name(text: str, what: str) -> str:
    if not _NAME.fullmatch(text):
        raise ValueError(f"{what}: {text!r} must be letters, digits and . _ - (at most 64)")
    return text


def _instant(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)
