"""Guessing TOTP codes: how many wrong codes in a row lock a principal's MFA, and
for how long. Pure arithmetic on the counters of an enrolment; the store applies
it with one conditional UPDATE per attempt (pim/store/identity.py), and
pim/identity/totp_check.py verifies codes with it.

- An attempt is counted *before* its code is checked, as wrong until the code
  proves right. So however many attempts run at once, at most
  MAX_WRONG_CODES of them are ever checked before the lock.
- The attempt that reaches MAX_WRONG_CODES starts a lockout at once: 5 minutes
  for the first in a row, doubling with each further one (10, 20, 40 ...), at
  most MAX_LOCKOUT. While locked, an attempt is refused without its code being
  checked, and is not counted.
- A right code (a time step accepted and used up) resets everything: the wrong
  codes in a row and the doubling. So does a new enrolment.
- A code that is right but already used (`mfa_replayed`) stays counted: only an
  accepted code resets the counters.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

MAX_WRONG_CODES = 5
FIRST_LOCKOUT = timedelta(minutes=5)
MAX_LOCKOUT = timedelta(hours=24)


@dataclass(frozen=True)
class MfaGuard:
    """The counters of one enrolment (`mfa_enrolments`)."""

    # Attempts counted since the last accepted code or lockout (wrong, or being checked).
    failed_attempts: int = 0
    locked_until: datetime | None = None
    # Lockouts since the last accepted code: each one doubles the next.
    lockouts: int = 0

    def locked(self, at: datetime) -> bool:
        return self.locked_until is not None and at < self.locked_until


VERIFIED = MfaGuard()  # the counters once a code was accepted


def lockout_duration(lockouts: int) -> timedelta:
    """How long the `lockouts`-th lockout in a row lasts: 5 minutes, then twice the
    one before, at most 24 hours."""
    if lockouts < 1:
        raise ValueError("lockouts counts from 1")
    doublings = min(lockouts - 1, 16)  # 5 min * 2**16 is far past the cap already
    return min(FIRST_LOCKOUT * 2**doublings, MAX_LOCKOUT)


def counted_attempt(guard: MfaGuard, at: datetime) -> MfaGuard | None:
    """The counters once an attempt at `at` is counted; None while locked (the
    attempt is refused, its code never checked, and nothing changes)."""
    if guard.locked(at):
        return None
    failed = guard.failed_attempts + 1
    if failed < MAX_WRONG_CODES:
        return replace(guard, failed_attempts=failed)
    lockouts = guard.lockouts + 1
    return MfaGuard(failed_attempts=0, locked_until=at + lockout_duration(lockouts), lockouts=lockouts)


@dataclass(frozen=True)
class MfaAttempt:
    """One counted (or refused) attempt: the counters before, and after (None: refused, locked)."""

    before: MfaGuard
    after: MfaGuard | None

    @property
    def refused(self) -> bool:
        return self.after is None

    @property
    def starts_lockout(self) -> bool:
        """This attempt is the last one allowed: unless its code is right, the lock stands."""
        return self.after is not None and self.after.lockouts > self.before.lockouts
