"""TOTP enrolment and verification (pyotp). A code is accepted once.

MFA codes never reach the Temporal history in clear, even without payload
encryption (pim/codec.py). The workflow input is written to the history when
the workflow starts, before any worker sees it, so a code cannot be verified
first and stripped afterwards: it is sealed before it leaves the client.

- Sealing. `PimClient.start` (and so `pim request --mfa-code`) and `pim sign
  request` replace `mfa.code` with `base64url(HMAC-SHA256(seal key,
  "pim-mfa-seal-v2" || workflow_id || group_id || access || principal_id || code))`
  (the parts separated by a 0 byte) and set `mfa.sealed: true`. A seal is bound
  to the request it was made for: copied into a request for another group,
  access, principal or workflow id it matches no code. The seal key (setting
  `PIM_MFA_SEAL_KEY`, base64 of 32 bytes or more) is a secret shared by the
  clients that start requests and the workers, and by nothing else: the store
  does not hold it, and whoever only reads Temporal (UI, `temporal` CLI, history
  exports) cannot turn a seal back into its code. `pim dev` generates one into
  `.pim/mfa-seal.key`, which every `pim` command run from the same directory
  uses when the setting is unset.
- Verifying (pim/identity/totp_check.py). The admission activity recomputes the
  seal of each code of the TOTP window (one step either side) for the request it
  admits and compares in constant time; the matching step is then used up, so a
  seal (like a code) is accepted once, only for the request it was made for, and
  only within about a minute and a half. It is used up whatever the verdict on
  the rest of the request, a dry run's included. Wrong codes lock the
  principal's MFA (pim/domain/mfa_lockout.py).
- Unsealed codes. A request that carries a plain code (`{"method": "totp",
  "code": "123456"}`, the SPEC example: the `temporal` CLI, or a client without
  a seal key) is accepted only by workers that have no seal key: that code is
  in the history, written there by whoever sent it, used up when verified and
  expired after the window. A worker with a seal key refuses it
  (`mfa_unsealed`), after using it up. Every deployment that wants the guarantee
  sets `PIM_MFA_SEAL_KEY` on its workers and clients; rotating it means changing
  both at once (a request sealed with the old key in between fails MFA and is
  simply asked again).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyotp

from pim.domain.models import ActivationRequest, MfaEvidence, Violation
from pim.runtime.settings import PimSettings, load_settings

TOTP_INTERVAL = 30
VALID_WINDOW = 1  # one step either side, for clock drift
SEAL_SETTING = "PIM_MFA_SEAL_KEY"
SEAL_CONTEXT = b"pim-mfa-seal-v2"
DEV_SEAL_KEY_FILE = Path(".pim") / "mfa-seal.key"  # written by `pim dev`, next to its store


def new_secret() -> str:
    return pyotp.random_base32()


def current_code(secret: str, at: float | None = None) -> str:
    return pyotp.TOTP(secret, interval=TOTP_INTERVAL).at(at if at is not None else time.time())


def _window(secret: str, at: float | None) -> Iterator[tuple[str, int]]:
    """(code, time step) for each step of the drift window."""
    totp = pyotp.TOTP(secret, interval=TOTP_INTERVAL)
    now = at if at is not None else time.time()
    for offset in range(-VALID_WINDOW, VALID_WINDOW + 1):
        moment = now + offset * TOTP_INTERVAL
        yield totp.at(moment), totp.timecode(_as_datetime(moment))


def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step whose code is `code`, within the drift window, or None."""
    if not code.isdigit():
        return None
    for candidate, step in _window(secret, at):
        if pyotp.utils.strings_equal(candidate, code):
            return step
    return None


def matching_sealed_step(secret: str, key: bytes, binding: SealBinding, sealed: str, at: float | None = None) -> int | None:
    """The time step whose code, sealed for the request `binding` names, is `sealed`, or None."""
    for candidate, step in _window(secret, at):
        if hmac.compare_digest(seal(key, binding, candidate), sealed):
            return step
    return None


def _as_datetime(moment: float) -> datetime:
    return datetime.fromtimestamp(moment, UTC)


# --- sealing (see the module docstring) -------------------------------------------


@dataclass(frozen=True)
class SealBinding:
    """What a seal is bound to: the request it was made for, and its workflow id."""

    workflow_id: str
    group_id: str
    access: str
    principal_id: str

    @classmethod
    def of(cls, request: ActivationRequest, workflow_id: str | None = None) -> "SealBinding":
        """The binding of `request`, sent as `workflow_id` (by default its canonical id):
        the client seals with the request it sends, the worker checks against the
        request it admits and the workflow id it runs under."""
        return cls(workflow_id or request.workflow_id, request.group_id, request.access.value, request.principal_id)


def seal(key: bytes, binding: SealBinding, code: str) -> str:
    parts = (binding.workflow_id, binding.group_id, binding.access, binding.principal_id, code)
    message = b"\0".join((SEAL_CONTEXT, *(part.encode() for part in parts)))
    digest = hmac.new(key, message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def seal_request(request: ActivationRequest, key: bytes | None) -> ActivationRequest:
    """The request as it may enter Temporal: its MFA code sealed for this request
    (its group, access, principal and workflow id); unchanged without a key."""
    evidence = request.mfa
    # An OIDC token is not sealed: the worker must see it to verify its signature.
    if key is None or evidence is None or evidence.sealed or evidence.method != "totp" or evidence.code is None:
        return request
    sealed = MfaEvidence(method=evidence.method, code=seal(key, SealBinding.of(request), evidence.code), sealed=True)
    return request.model_copy(update={"mfa": sealed})


def parse_seal_key(text: str, source: str = SEAL_SETTING) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError(f"{source}: not valid base64") from None
    if len(key) < 32:
        raise ValueError(f"{source}: the seal key must be at least 32 bytes, got {len(key)}")
    return key


def seal_key(settings: PimSettings) -> bytes | None:
    """PIM_MFA_SEAL_KEY, else the key `pim dev` wrote into .pim/mfa-seal.key, else None."""
    if settings.mfa_seal_key:
        return parse_seal_key(settings.mfa_seal_key)
    if DEV_SEAL_KEY_FILE.is_file():
        return parse_seal_key(DEV_SEAL_KEY_FILE.read_text(), str(DEV_SEAL_KEY_FILE.resolve()))
    return None


def configured_seal_key() -> bytes | None:
    return seal_key(load_settings())


def ensure_dev_seal_key(path: Path = DEV_SEAL_KEY_FILE) -> Path:
    """Generate the development seal key once (owner-only file); later runs keep it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(base64.b64encode(os.urandom(32)).decode() + "\n")
    return path


MFA_INVALID = Violation(code="mfa_invalid", message="mfa.code: the code is wrong or expired")
MFA_REPLAYED = Violation(code="mfa_replayed", message="mfa.code: this code was already used")
MFA_UNSEALABLE = Violation(
    code="mfa_invalid", message=f"mfa.code: the code is sealed but the workers have no seal key ({SEAL_SETTING})"
)
MFA_UNSEALED = Violation(
    code="mfa_unsealed",
    message=f"mfa.code: the workers accept sealed codes only ({SEAL_SETTING}); send it with a client that seals it",
)


def mfa_locked(until: datetime | None) -> Violation:
    """The principal's MFA is locked after too many wrong codes (pim/domain/mfa_lockout.py)."""
    when = until.astimezone(UTC).isoformat(timespec="seconds") if until else "later"
    return Violation(code="mfa_locked", message=f"mfa.code: too many wrong codes; MFA is locked until {when}")
