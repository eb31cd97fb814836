"""The issuer's signing key: RSA 2048 (RS256, the algorithm every OpenID Connect
provider must support), kept in a file (PEM, mode 0600) so that the tokens of
`pim dev` survive its restart, or in memory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from joserfc.jwk import KeySet, RSAKey

from pim.identity.proofs import write_private

ALGORITHM = "RS256"
KEY_BITS = 2048


@dataclass(frozen=True)
class IssuerKey:
    key: RSAKey  # private; its kid is its RFC 7638 thumbprint

    @property
    def kid(self) -> str:
        return str(self.key.kid)

    def key_set(self) -> KeySet:
        """The private key as a key set: joserfc then names it (`kid`) in each header."""
        return KeySet([self.key])

    def public_jwk(self) -> dict[str, Any]:
        return {**self.key.as_dict(private=False), "use": "sig", "alg": ALGORITHM}

    def public_key_set(self) -> KeySet:
        return KeySet([RSAKey.import_key(self.public_jwk())])

    def jwks(self) -> dict[str, Any]:
        return {"keys": [self.public_jwk()]}

    def __repr__(self) -> str:  # the private key never reaches a log line
        return f"IssuerKey(kid={self.kid!r})"


def _from_pem(pem: bytes, where: str) -> IssuerKey:
    try:
        private = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError):
        raise ValueError(f"{where}: not a PEM private key") from None
    if not isinstance(private, rsa.RSAPrivateKey) or private.key_size < KEY_BITS:
        raise ValueError(f"{where}: the issuer's key must be an RSA key of {KEY_BITS} bits or more")
    key = RSAKey.import_key(pem)
    key.ensure_kid()
    return IssuerKey(key)


def generate_key() -> IssuerKey:
    # Wrapped as generated: a PEM round trip would check the new key twice more (a third of a second).
    key = RSAKey.generate_key(KEY_BITS, private=True)
    key.ensure_kid()
    return IssuerKey(key)


def load_or_create_key(path: Path | None) -> IssuerKey:
    """The key in `path`, created there (mode 0600) when missing; a key in memory without a path."""
    if path is None:
        return generate_key()
    if path.exists():
        return _from_pem(path.read_bytes(), str(path))
    key = generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    write_private(path, key.key.as_pem(private=True).decode())
    return key
