"""TOTP secrets encrypted at rest.

The store keeps each secret as `v1:<key id>:<base64(nonce || AES-GCM ciphertext)>`,
with the principal id as associated data, so a secret copied onto another
principal's row does not decrypt. The key (PIM_MFA_SECRET_KEY,
`KEY_ID:BASE64KEY[,...]`, 256-bit keys, the first one encrypts) is held by the
workers and by whatever runs administrative operations; a CLI in production
never has it. `pim dev` generates one into its state directory (mode 0600)."""

from __future__ import annotations

import base64
import binascii
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from pim.runtime.codec import parse_keys
from pim.runtime.settings import PimSettings

SETTING = "PIM_MFA_SECRET_KEY"
DEV_SECRET_KEY_FILE = Path(".pim") / "mfa-secret.key"
PREFIX = "v1"
NONCE_SIZE = 12


class SecretUnreadable(ValueError):
    """A stored secret that this key list cannot decrypt (another key, altered, or not encrypted)."""


class SecretCipher:
    def __init__(self, keys: Sequence[tuple[str, bytes]]) -> None:
        if not keys:
            raise ValueError(f"{SETTING}: at least one key is needed")
        self._encrypt_id = keys[0][0]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}

    @classmethod
    def from_setting(cls, text: str) -> SecretCipher:
        return cls(parse_keys(text, SETTING))

    def seal(self, principal_id: str, secret: str) -> str:
        nonce = os.urandom(NONCE_SIZE)
        sealed = self._ciphers[self._encrypt_id].encrypt(nonce, secret.encode(), principal_id.encode())
        return f"{PREFIX}:{self._encrypt_id}:{base64.b64encode(nonce + sealed).decode()}"

    def open(self, principal_id: str, stored: str) -> str:
        prefix, _, rest = stored.partition(":")
        key_id, _, data = rest.partition(":")
        cipher = self._ciphers.get(key_id)
        if prefix != PREFIX or cipher is None:
            raise SecretUnreadable(f"the MFA secret of {principal_id} is not encrypted with a key in {SETTING}")
        try:
            raw = base64.b64decode(data, validate=True)
            return cipher.decrypt(raw[:NONCE_SIZE], raw[NONCE_SIZE:], principal_id.encode()).decode()
        except (binascii.Error, ValueError, InvalidTag):
            raise SecretUnreadable(f"the MFA secret of {principal_id} cannot be decrypted with {SETTING}") from None

    def is_sealed(self, stored: str) -> bool:
        return stored.startswith(f"{PREFIX}:")

    def __repr__(self) -> str:
        return f"SecretCipher(keys={sorted(self._ciphers)})"


def configured_cipher(settings: PimSettings, dev_file: Path = DEV_SECRET_KEY_FILE) -> SecretCipher | None:
    """From PIM_MFA_SECRET_KEY, else `pim dev`'s key file in the working directory, else None."""
    if settings.mfa_secret_key:
        return SecretCipher.from_setting(settings.mfa_secret_key.get_secret_value())
    if dev_file.exists():
        return SecretCipher.from_setting(dev_file.read_text().strip())
    return None


def ensure_dev_secret_key(path: Path = DEV_SECRET_KEY_FILE) -> SecretCipher:
    """`pim dev`'s key, created once with mode 0600."""
    from pim.identity.proofs import write_private

    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        write_private(path, f"dev:{base64.b64encode(os.urandom(32)).decode()}\n")
    return SecretCipher.from_setting(path.read_text().strip())
