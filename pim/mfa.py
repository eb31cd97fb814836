"""TOTP enrolment and verification (pyotp). A code is accepted once."""

from __future__ import annotations

import time

import pyotp

from pim.models import Violation

TOTP_INTERVAL = 30
VALID_WINDOW = 1  # one step either side, for clock drift


def new_secret() -> str:
    return pyotp.random_base32()


def current_code(secret: str, at: float | None = None) -> str:
    return pyotp.TOTP(secret, interval=TOTP_INTERVAL).at(at if at is not None else time.time())


def matching_step(secret: str, code: str, at: float | None = None) -> int | None:
    """The time step whose code is `code`, within the drift window, or None."""
    totp = pyotp.TOTP(secret, interval=TOTP_INTERVAL)
    now = at if at is not None else time.time()
    if not code.isdigit():
        return None
    for offset in range(-VALID_WINDOW, VALID_WINDOW + 1):
        moment = now + offset * TOTP_INTERVAL
        if pyotp.utils.strings_equal(totp.at(moment), code):
            return totp.timecode(_as_datetime(moment))
    return None


def _as_datetime(moment: float):
    from datetime import UTC, datetime

    return datetime.fromtimestamp(moment, UTC)


MFA_INVALID = Violation(code="mfa_invalid", message="mfa.code: the code is wrong or expired")
MFA_REPLAYED = Violation(code="mfa_replayed", message="mfa.code: this code was already used")
