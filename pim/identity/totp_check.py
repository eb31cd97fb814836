"""Verify a TOTP code for a principal, the one way every caller does it: the
admission of a request (activities/admission.py) and the administrative
operations that ask for the actor's code (pim/operations/assignments.py,
pim/operations/principals.py).

1. The attempt is counted first (pim/domain/mfa_lockout.py): while the
   principal's MFA is locked it is refused (`mfa_locked`), its code unchecked.
2. The code (or its seal, pim/identity/totp.py) is matched against the TOTP
   window, and the matching time step is used up: accepted once, by one use
   (`use_key`: a retry of the same use may present it again).
3. An accepted code resets the counters. A wrong or replayed one stays counted;
   the attempt that reaches the limit locks the principal's MFA, which is
   audited (`mfa_locked`, never the code), told to the administrators of the
   group the attempt was for and to the principal, and counted in the metric
   `pim_mfa_lockouts` when the caller gives a meter (an activity's).

Steps 1 to 3 are one store transaction (`Store.use_totp`), serialized per
principal: concurrent attempts are counted one after the other.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from temporalio.common import MetricMeter

from pim.domain import authorization as authz
from pim.domain.mfa_lockout import MAX_WRONG_CODES, MfaGuard
from pim.domain.models import Violation
from pim.domain.policy import NotificationRule
from pim.identity import totp as mfa
from pim.notifications.compose import compose, group_rule
from pim.runtime import metrics
from pim.runtime.logging import get_logger
from pim.store import Store
from pim.store.identity import TotpUse

log = get_logger("pim.identity.totp")


@dataclass(frozen=True)
class AttemptScope:
    """What the code was given for: who is told when it locks the principal's MFA."""

    attempted: str  # "request", or the operation: "assign_active", "enroll_mfa"
    group_id: str | None = None
    access: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class TotpVerdict:
    violations: list[Violation] = field(default_factory=list)
    # The lock this attempt started (already audited and told), else None.
    lockout: MfaGuard | None = None

    @property
    def accepted(self) -> bool:
        return not self.violations


async def verify_totp(
    store: Store,
    principal_id: str,
    code: str,
    *,
    use_key: str,
    at: datetime,
    scope: AttemptScope,
    seal: tuple[bytes, mfa.SealBinding] | None = None,
    meter: MetricMeter | None = None,
    now: float | None = None,
) -> TotpVerdict:
    """The verdict on `code` for `principal_id`. `seal`: the code is the client's
    seal, to be checked with this key for this request. `at` is the lockout's
    clock (the workflow's time in an activity); `now` the TOTP clock (real time)."""
    use = await store.use_totp(principal_id, at, totp_matcher(code, seal, now), use_key)
    return await totp_verdict(store, principal_id, use, at=at, scope=scope, meter=meter)


def totp_matcher(
    code: str, seal: tuple[bytes, mfa.SealBinding] | None = None, now: float | None = None
) -> Callable[[str], int | None]:
    """What `Store.use_totp` checks the code with: the secret's time step that
    `code` (or its seal) matches, or None."""
    moment = now if now is not None else time.time()

    def match(secret: str) -> int | None:
        if seal is not None:
            return mfa.matching_sealed_step(secret, seal[0], seal[1], code, moment)
        return mfa.matching_step(secret, code, moment)

    return match


async def totp_verdict(
    store: Store, principal_id: str, use: TotpUse, *, at: datetime, scope: AttemptScope, meter: MetricMeter | None = None
) -> TotpVerdict:
    """The verdict on an attempt `Store.use_totp` (or `Store.totp_use_in`) made; the
    attempt that locks the principal's MFA is reported here."""
    attempt = use.attempt
    if attempt is None:
        return TotpVerdict([mfa.MFA_INVALID])
    if attempt.after is None:
        return TotpVerdict([mfa.mfa_locked(attempt.before.locked_until)])
    if use.accepted:
        return TotpVerdict()
    refused = mfa.MFA_INVALID if use.step is None else mfa.MFA_REPLAYED
    if not attempt.starts_lockout:
        return TotpVerdict([refused])
    await report_lockout(store, principal_id, attempt.after, at=at, scope=scope)
    if meter is not None:
        metrics.mfa_lockout_started(meter, scope.attempted)
    return TotpVerdict([refused], lockout=attempt.after)


async def report_lockout(store: Store, principal_id: str, guard: MfaGuard, *, at: datetime, scope: AttemptScope) -> None:
    """The audit line `mfa_locked` and, with it, the notification to the
    administrators (of the group, or else the tenant's user administrators) and to
    the principal. Written once per lock (its dedupe key)."""
    until = guard.locked_until or at
    if scope.group_id and scope.access:
        rule, admins = await group_rule(store, scope.group_id, scope.access, at)
    else:  # no group: those who may enrol the principal anew
        rule, admins = NotificationRule(), await store.holders_of((authz.GLOBAL_ADMIN, authz.USER_ADMIN))
    key = f"mfa_locked:{principal_id}:{until.astimezone(UTC).isoformat()}"
    details = {
        "state": "locked",
        "reason": f"{MAX_WRONG_CODES} wrong MFA codes in a row",
        "locked_until": until.astimezone(UTC).isoformat(),
        "lockout": str(guard.lockouts),
        "attempted": scope.attempted,
    }
    notifications = await compose(
        store,
        key=key,
        event="mfa_locked",
        at=at,
        rule=rule,
        people={"requestor": [principal_id], "admins": admins},
        subject=f"MFA locked: {principal_id}, after {MAX_WRONG_CODES} wrong codes",
        request_id=scope.request_id,
        group_id=scope.group_id,
        access=scope.access,
        principal_id=principal_id,
        details=details,
    )
    await store.append_audit(
        at=at,
        action="mfa_locked",
        actor=principal_id,
        request_id=scope.request_id,
        group_id=scope.group_id,
        access=scope.access,
        principal_id=principal_id,
        details=details,
        dedupe_key=key,
        notifications=notifications,
        channels=rule.channels,
    )
    log.warning(
        "mfa locked",
        principal_id=principal_id,
        locked_until=details["locked_until"],
        lockout=guard.lockouts,
        attempted=scope.attempted,
        group_id=scope.group_id,
    )
