"""The lockout arithmetic of wrong TOTP codes (pim/domain/mfa_lockout.py): pure,
with the clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pim.domain.mfa_lockout import (
    MAX_LOCKOUT,
    MAX_WRONG_CODES,
    VERIFIED,
    MfaAttempt,
    MfaGuard,
    counted_attempt,
    lockout_duration,
)

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def test_lockouts_double_from_five_minutes_up_to_a_day():
    assert [lockout_duration(n) for n in range(1, 6)] == [5 * MINUTE, 10 * MINUTE, 20 * MINUTE, 40 * MINUTE, 80 * MINUTE]
    assert lockout_duration(9) == 1280 * MINUTE  # 5 min * 256: 21 h 20 min
    assert lockout_duration(10) == MAX_LOCKOUT == timedelta(hours=24)  # 5 min * 512 would be more than a day
    assert lockout_duration(10_000) == MAX_LOCKOUT
    with pytest.raises(ValueError):
        lockout_duration(0)


def wrong_codes(guard: MfaGuard, count: int, at: datetime) -> tuple[MfaGuard, list[MfaAttempt]]:
    attempts = []
    for _ in range(count):
        after = counted_attempt(guard, at)
        attempts.append(MfaAttempt(guard, after))
        guard = after if after is not None else guard
    return guard, attempts


def test_the_fifth_wrong_code_in_a_row_locks_for_five_minutes():
    guard, attempts = wrong_codes(MfaGuard(), MAX_WRONG_CODES - 1, T0)
    assert guard == MfaGuard(failed_attempts=4) and not any(a.starts_lockout or a.refused for a in attempts)
    guard, [fifth] = wrong_codes(guard, 1, T0)
    assert fifth.starts_lockout and guard == MfaGuard(failed_attempts=0, locked_until=T0 + 5 * MINUTE, lockouts=1)
    assert guard.locked(T0) and guard.locked(T0 + 5 * MINUTE - timedelta(microseconds=1))
    assert not guard.locked(T0 + 5 * MINUTE)


def test_while_locked_an_attempt_is_refused_and_not_counted():
    locked = MfaGuard(locked_until=T0 + 5 * MINUTE, lockouts=1)
    assert counted_attempt(locked, T0 + MINUTE) is None
    assert MfaAttempt(locked, None).refused and not MfaAttempt(locked, None).starts_lockout


def test_the_next_lockout_lasts_twice_as_long_and_a_right_code_resets_the_doubling():
    guard, _ = wrong_codes(MfaGuard(), MAX_WRONG_CODES, T0)
    later = T0 + 5 * MINUTE  # the first lock is over: counting starts again from nothing
    assert counted_attempt(guard, later) == MfaGuard(failed_attempts=1, locked_until=T0 + 5 * MINUTE, lockouts=1)
    guard, attempts = wrong_codes(guard, MAX_WRONG_CODES, later)
    assert attempts[-1].starts_lockout and guard.locked_until == later + 10 * MINUTE and guard.lockouts == 2
    guard, _ = wrong_codes(guard, MAX_WRONG_CODES, later + 10 * MINUTE)
    assert guard.locked_until == later + 30 * MINUTE and guard.lockouts == 3
    # A right code (VERIFIED) resets both the wrong codes in a row and the doubling.
    guard, attempts = wrong_codes(VERIFIED, MAX_WRONG_CODES, later + 30 * MINUTE)
    assert guard.locked_until == later + 35 * MINUTE and guard.lockouts == 1


def test_wrong_codes_that_are_not_in_a_row_do_not_lock():
    guard, _ = wrong_codes(MfaGuard(), MAX_WRONG_CODES - 1, T0)
    guard, attempts = wrong_codes(VERIFIED, MAX_WRONG_CODES - 1, T0)  # a right code in between
    assert not guard.locked(T0) and not any(a.starts_lockout for a in attempts)


def test_the_lockout_alert_reaches_the_admins_whatever_the_policy_filters():
    from pim.domain.policy import NotificationRule
    from pim.notifications.audience import audience

    people = {"requestor": ["alice"], "admins": ["admin", "bob"]}
    quiet = NotificationRule(recipients=["approvers"], events=["request_denied"])
    assert audience("mfa_locked", quiet, people) == [("alice", "requestor"), ("admin", "admins"), ("bob", "admins")]
    assert audience("request_approved", quiet, people) == []  # the others stay filtered


def test_the_lockout_message_says_until_when_and_holds_no_code():
    from pim.notifications.messages import render_text
    from pim.notifications.model import Notification

    notice = Notification(
        key="mfa_locked:alice:x",
        event="mfa_locked",
        at=T0,
        subject="MFA locked: alice, after 5 wrong codes",
        group_id="grp-ops",
        access="member",
        principal_id="alice",
        details={"state": "locked", "locked_until": (T0 + 5 * MINUTE).isoformat(), "lockout": "1", "code": "123456"},
    )
    subject, body = render_text(notice)
    assert subject == "[PIM] MFA locked: alice, after 5 wrong codes"
    assert body.startswith("The MFA of alice is locked until 2026-03-01 09:05 UTC, after too many wrong codes in a row.")
    assert "Locked until: 2026-03-01 09:05 UTC" in body and "123456" not in body
