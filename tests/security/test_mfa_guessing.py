"""Guessing TOTP codes (issue 14, M3): five wrong codes in a row lock the
principal's MFA, for 5 minutes and twice as long each further time; while
locked even the right code is refused (`mfa_locked`). The count is atomic, the
lockout audited (never the code) and told to the administrators. One function
verifies every code (pim/identity/totp_check.py): requests and the
administrative operations share the lock.

Here on the store (SQLite and PostgreSQL), with the lockout's clock passed in;
tests/security/test_mfa_evidence.py drives it through workflows."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta

import pytest

from pim.domain.mfa_lockout import VERIFIED
from pim.domain.models import AccessType
from pim.domain.policy import NotificationRule, Policy
from pim.identity import totp as mfa
from pim.identity.totp_check import AttemptScope, verify_totp
from pim.operations import AdminContext, Refused
from pim.operations.assignments import create_assignment
from pim.operations.principals import enroll_mfa
from pim.store import Store
from tests.conftest import TEST_SIGNER

MINUTE = timedelta(minutes=1)
OPS = AttemptScope("request", "grp-ops", "member", "activation/grp-ops/member/alice")


def wrong(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


async def attempt(store: Store, code: str, at: datetime, use: str = "use-1", principal: str = "alice"):
    return await verify_totp(store, principal, code, use_key=use, at=at, scope=OPS)


async def lock(store: Store, at: datetime, principal: str = "alice") -> list:
    secret = await store.mfa_secret(principal)
    bad = wrong(mfa.current_code(secret))
    return [await attempt(store, bad, at, f"wrong-{i}", principal) for i in range(5)]


async def test_five_wrong_codes_lock_even_the_right_code_out_then_it_works_again(demo):
    t0 = datetime.now(UTC)
    verdicts = await lock(demo, t0)
    assert [v.violations[0].code for v in verdicts] == ["mfa_invalid"] * 5
    assert [v.lockout is not None for v in verdicts] == [False] * 4 + [True]
    assert verdicts[-1].lockout.locked_until == t0 + 5 * MINUTE

    right = mfa.current_code(await demo.mfa_secret("alice"))
    refused = await attempt(demo, right, t0 + 4 * MINUTE)
    [locked] = refused.violations
    assert locked.code == "mfa_locked" and locked.message.startswith("mfa.code:")
    assert (t0 + 5 * MINUTE).isoformat(timespec="seconds").replace("+00:00", "") in locked.message
    assert (await demo.mfa_guard("alice")).failed_attempts == 0  # a refused attempt is not counted

    accepted = await attempt(demo, right, t0 + 5 * MINUTE)  # the code was never checked: still good
    assert accepted.accepted and accepted.violations == []
    assert await demo.mfa_guard("alice") == VERIFIED


async def test_the_next_lockout_lasts_ten_minutes_and_a_right_code_resets_the_doubling(demo):
    t0 = datetime.now(UTC)
    await lock(demo, t0)
    t1 = t0 + 5 * MINUTE
    second = await lock(demo, t1)
    assert second[-1].lockout.locked_until == t1 + 10 * MINUTE and second[-1].lockout.lockouts == 2
    right = mfa.current_code(await demo.mfa_secret("alice"))
    assert [v.code for v in (await attempt(demo, right, t1 + 9 * MINUTE)).violations] == ["mfa_locked"]
    assert (await attempt(demo, right, t1 + 10 * MINUTE)).accepted
    third = await lock(demo, t1 + 11 * MINUTE)
    assert third[-1].lockout.locked_until == t1 + 16 * MINUTE  # 5 minutes again: the right code reset the doubling


async def test_a_right_code_resets_the_wrong_codes_in_a_row(demo):
    t0 = datetime.now(UTC)
    secret = await demo.mfa_secret("alice")
    bad = wrong(mfa.current_code(secret))
    for i in range(4):
        assert not (await attempt(demo, bad, t0, f"w{i}")).accepted
    assert (await attempt(demo, mfa.current_code(secret), t0)).accepted
    for i in range(4):
        verdict = await attempt(demo, bad, t0, f"v{i}")
        assert verdict.violations[0].code == "mfa_invalid" and verdict.lockout is None


async def test_a_replayed_code_counts_as_a_wrong_one(demo):
    t0 = datetime.now(UTC)
    right = mfa.current_code(await demo.mfa_secret("alice"))
    assert (await attempt(demo, right, t0, "first")).accepted
    verdicts = [await attempt(demo, right, t0, f"again-{i}") for i in range(5)]
    assert [v.violations[0].code for v in verdicts] == ["mfa_replayed"] * 5 and verdicts[-1].lockout is not None


async def test_concurrent_wrong_codes_never_pass_the_limit(demo):
    """20 attempts at once, from two workers: exactly 5 are checked, one of them
    starts the one lockout, the other 15 are refused unchecked."""
    other = Store.open(demo.url, secrets=demo.secrets)
    try:
        t0 = datetime.now(UTC)
        bad = wrong(mfa.current_code(await demo.mfa_secret("alice")))
        verdicts = await asyncio.gather(*(attempt(demo if i % 2 else other, bad, t0, f"guess-{i}") for i in range(20)))
    finally:
        await other.close()
    codes = sorted(v.violations[0].code for v in verdicts)
    assert codes == ["mfa_invalid"] * 5 + ["mfa_locked"] * 15
    assert sum(v.lockout is not None for v in verdicts) == 1
    guard = await demo.mfa_guard("alice")
    assert guard.lockouts == 1 and guard.locked_until == t0 + 5 * MINUTE
    assert len([r for r in await demo.audit(principal_id="alice") if r.action == "mfa_locked"]) == 1


async def test_a_lockout_is_audited_without_the_code_and_told_to_the_administrators(demo):
    t0 = datetime.now(UTC)
    secret = await demo.mfa_secret("alice")
    bad = wrong(mfa.current_code(secret))
    await lock(demo, t0)
    [line] = [r for r in await demo.audit(principal_id="alice") if r.action == "mfa_locked"]
    assert (line.actor, line.group_id, line.access, line.request_id) == ("alice", "grp-ops", "member", OPS.request_id)
    assert line.details["locked_until"] == (t0 + 5 * MINUTE).isoformat()
    lines = [str(r.details) for r in await demo.audit()]
    assert not any(bad in text or mfa.current_code(secret) in text for text in lines)

    [told] = await demo.notifications(event="mfa_locked")
    admins = await demo.group_administrators("grp-ops", t0)
    assert admins  # the Global Administrator, the group's owners
    recipients = {r["principal_id"]: r["role"] for r in told.payload["recipients"]}
    assert recipients == {"alice": "requestor", **{a: "admins" for a in admins if a != "alice"}}
    assert told.payload["group_id"] == "grp-ops" and bad not in str(told.payload)


async def test_a_policy_cannot_silence_the_lockout_alert(demo):
    found = await demo.policy("grp-ops", AccessType.member)
    quiet = found[0].model_copy(update={"notifications": NotificationRule(recipients=["requestor"], events=["request_denied"])})
    await demo.set_policy("grp-ops", AccessType.member, Policy.model_validate(quiet.model_dump()), by="test")
    await lock(demo, datetime.now(UTC))
    [told] = await demo.notifications(event="mfa_locked")
    assert {r["role"] for r in told.payload["recipients"]} == {"requestor", "admins"}


# --- the administrative operations share the lock -----------------------------------------


def ctx(store: Store, actor: str, at: datetime) -> AdminContext:
    return AdminContext(store, actor, signer=TEST_SIGNER, clock=lambda: at)


async def test_a_lock_earned_by_requests_refuses_the_admin_operations_too(demo):
    policy, _ = await demo.policy("grp-ops", AccessType.member)
    strict = policy.active_assignment.model_copy(update={"require_mfa": True})
    await demo.set_policy("grp-ops", AccessType.member, policy.model_copy(update={"active_assignment": strict}), by="test")
    t0 = datetime.now(UTC)
    await lock(demo, t0, principal="admin")
    right = mfa.current_code(await demo.mfa_secret("admin"))
    with pytest.raises(Refused) as refused:
        await create_assignment(
            ctx(demo, "admin", t0 + MINUTE), "grp-ops", "dave", access=AccessType.member, kind="active", mfa_code=right
        )
    assert refused.value.code == "mfa_locked" and "locked until" in str(refused.value)
    with pytest.raises(Refused) as refused:
        await enroll_mfa(ctx(demo, "admin", t0 + MINUTE), "admin", right)
    assert refused.value.code == "mfa_locked"
    line = [r for r in await demo.audit(principal_id="dave") if r.action == "refused"][-1]
    assert line.details["code"] == "mfa_locked" and right not in str(line.details)


async def test_wrong_codes_given_to_enroll_mfa_lock_it(demo):
    t0 = datetime.now(UTC)
    before = await demo.mfa_secret("alice")
    bad = wrong(mfa.current_code(before))
    for minute in range(5):
        with pytest.raises(Refused) as refused:
            await enroll_mfa(ctx(demo, "alice", t0 + minute * timedelta(seconds=1)), "alice", bad)
        assert refused.value.code == "mfa_invalid"
    with pytest.raises(Refused) as refused:
        await enroll_mfa(ctx(demo, "alice", t0 + MINUTE), "alice", mfa.current_code(before, time.time()))
    assert refused.value.code == "mfa_locked"
    assert await demo.mfa_secret("alice") == before
    # No group: the administrators who may enrol her anew are told, and so is she.
    [told] = await demo.notifications(event="mfa_locked")
    assert told.payload["group_id"] is None and told.payload["details"]["attempted"] == "enroll_mfa"
    assert {r["principal_id"] for r in told.payload["recipients"]} >= {"alice", "admin"}
    # An administrator's new enrolment starts her counters afresh (a new secret).
    await enroll_mfa(ctx(demo, "admin", t0 + MINUTE), "alice")
    assert await demo.mfa_guard("alice") == VERIFIED
