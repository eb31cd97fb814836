"""Payload encryption: an optional AES-GCM payload codec for everything the
product sends through Temporal (workflow inputs, signals, updates, queries,
activity inputs and results).

Turned on by `PIM_PAYLOAD_KEYS="KEY_ID:BASE64KEY[,KEY_ID:BASE64KEY...]"` (each key
256 bits, e.g. `python -c "import os, base64; print(base64.b64encode(os.urandom(32)).decode())"`).
The first key encrypts; every listed key decrypts, so a key is rotated by putting
the new one first and keeping the old one behind it until no open workflow
history holds payloads written with it. Workers, the CLI and services must all
have the same list (`data_converter` is used by every connection).

Each payload is replaced by one whose data is `nonce (12 random bytes) ||
AES-GCM(original Payload, serialized)` and whose metadata says
`encoding: binary/encrypted` and `encryption-key-id: <id>` (the key id is also
the AES-GCM associated data, so it cannot be swapped). Payloads that are not
encrypted pass through decoding unchanged (histories written before the codec
was turned on, or by a client without it). The Temporal UI and the `temporal`
CLI then show ciphertext only; failure messages are not encrypted.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import os
from typing import Any, Sequence

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import DecodeError
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import PydanticPayloadConverter, pydantic_data_converter
from temporalio.converter import DataConverter, PayloadCodec

from pim.domain.models import UNDECODABLE
from pim.runtime.settings import PimSettings

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
NONCE_SIZE = 12
SETTING = "PIM_PAYLOAD_KEYS"


class PayloadKeyError(ValueError):
    """A payload that cannot be decrypted: unknown key id, wrong key or tampered data."""


def parse_keys(setting: str, name: str = SETTING) -> list[tuple[str, bytes]]:
    """`KEY_ID:BASE64KEY[,KEY_ID:BASE64KEY...]` into [(key_id, key)], in order (the first encrypts)."""
    keys: list[tuple[str, bytes]] = []
    for index, entry in enumerate(setting.split(","), start=1):
        entry = entry.strip()
        key_id, sep, encoded = entry.partition(":")
        key_id = key_id.strip()
        if not sep or not key_id or not encoded.strip():
            raise ValueError(f"{name}: entry {index} must be KEY_ID:BASE64KEY")
        if any(key_id == known for known, _ in keys):
            raise ValueError(f"{name}: key id {key_id!r} is listed twice")
        try:
            key = base64.b64decode(encoded.strip(), validate=True)
        except (binascii.Error, ValueError):
            raise ValueError(f"{name}: the key of {key_id!r} is not valid base64") from None
        if len(key) != 32:
            raise ValueError(f"{name}: the key of {key_id!r} must be 256 bits (32 bytes), got {len(key)} bytes")
        keys.append((key_id, key))
    return keys


class EncryptionCodec(PayloadCodec):
    def __init__(self, keys: Sequence[tuple[str, bytes]], tolerant: bool = False) -> None:
        if not keys:
            raise ValueError(f"{SETTING}: at least one key is needed")
        self.tolerant = tolerant  # a worker's: an undecryptable payload is handed on as undecodable
        self._encrypt_id = keys[0][0]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in keys}

    @classmethod
    def from_setting(cls, setting: str, tolerant: bool = False) -> "EncryptionCodec":
        return cls(parse_keys(setting), tolerant)

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        key_id = self._encrypt_id
        cipher = self._ciphers[key_id]
        out = []
        for payload in payloads:
            nonce = os.urandom(NONCE_SIZE)
            sealed = cipher.encrypt(nonce, payload.SerializeToString(), key_id.encode())
            out.append(Payload(metadata={"encoding": ENCODING, KEY_ID: key_id.encode()}, data=nonce + sealed))
        return out

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        out = []
        for payload in payloads:
            try:
                out.append(self._decode_one(payload))
            except (PayloadKeyError, DecodeError) as error:
                if not self.tolerant:
                    raise
                out.append(undecodable_payload(str(error)[:200]))
        return out

    def _decode_one(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(
                f"payload encrypted with key id {key_id[:40]!r}, which is not in {SETTING} "
                f"(known: {', '.join(sorted(self._ciphers))})"
            )
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_SIZE], data[NONCE_SIZE:], key_id.encode())
        except (InvalidTag, ValueError):
            raise PayloadKeyError(
                f"payload encrypted with key id {key_id!r} cannot be decrypted: "
                f"the key in {SETTING} differs, or the payload was altered"
            ) from None
        decoded = Payload()
        decoded.ParseFromString(plain)
        return decoded


class TolerantPayloadConverter(PydanticPayloadConverter):
    """The worker's payload converter: a payload meant for a workflow's own checks
    (a value typed `Any`: a start input, a signal, an update argument) that cannot
    be decoded becomes `{"pim_undecodable": why}`, which the workflow refuses like
    any malformed payload. A typed value (an activity's input or result) still
    raises: those come from the product itself."""

    def from_payloads(self, payloads: Sequence[Payload], type_hints: list[type] | None = None) -> list[Any]:
        try:
            return super().from_payloads(payloads, type_hints)
        except Exception:  # noqa: BLE001 - any failure to decode is judged below, one payload at a time
            if type_hints and any(hint not in (Any, object) for hint in type_hints):
                raise
        values: list[Any] = []
        for payload in payloads:
            try:
                values.extend(super().from_payloads([payload], None))
            except Exception as error:  # noqa: BLE001
                values.append({UNDECODABLE: _why(payload, error)})
        return values


def _why(payload: Payload, error: Exception) -> str:
    encoding = payload.metadata.get("encoding", b"").decode(errors="replace")[:40]
    return f"encoding {encoding!r}: {type(error).__name__}"


def undecodable_payload(why: str) -> Payload:
    """What a tolerant codec hands on in place of a payload it cannot decrypt."""
    return Payload(metadata={"encoding": b"json/plain"}, data=json.dumps({UNDECODABLE: why}).encode())


def data_converter(settings: PimSettings, tolerant: bool = False) -> DataConverter:
    """The data converter of every connection: pydantic JSON, encrypted when keys are
    set. `tolerant`: a worker's, on which no payload can fail a workflow task (a
    payload it cannot decrypt or decode reaches the workflow as undecodable)."""
    converter = pydantic_data_converter
    if tolerant:
        converter = dataclasses.replace(converter, payload_converter_class=TolerantPayloadConverter)
    if settings.payload_keys:
        codec = EncryptionCodec.from_setting(settings.payload_keys, tolerant=tolerant)
        converter = dataclasses.replace(converter, payload_codec=codec)
    return converter
