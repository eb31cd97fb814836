"""Time-bound assignments as `AssignmentLifecycle` workflows (issue 3, item 2) on
the time-skipping server: taking effect, expiry reminders 14 days and 1 day
before the end, the exact end, extend, renew and remove."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from pim.domain.assignments import AssignmentStart, AssignmentStatus, assignment_workflow_id
from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, State
from pim.identity.totp import current_code
from pim.notifications.channels.log import LogChannel
from pim.operations import AdminContext, Refused
from pim.operations.assignments import create_assignment, extend_assignment, remove_assignment, renew_assignment
from tests.conftest import TEST_SIGNER, running_worker
from tests.polling import eventually, settled

SECONDS = timedelta(seconds=5)


class Clock:
    """The operations' clock, following the test server's (refreshed after every skip)."""

    def __init__(self, env) -> None:
        self.env, self.now = env, None

    async def sync(self):
        self.now = await self.env.get_current_time()
        return self.now

    def __call__(self):
        return self.now

    async def sleep(self, delta: timedelta):
        await self.env.sleep(delta)
        return await self.sync()


async def admin_context(time_env, demo, pim, actor: str = "admin") -> tuple[AdminContext, Clock]:
    clock = Clock(time_env)
    await clock.sync()
    return AdminContext(demo, actor, temporal=time_env.client, task_queue=pim.task_queue, clock=clock, signer=TEST_SIGNER), clock


async def lifecycle(time_env, aid: str) -> AssignmentStatus:
    return await time_env.client.get_workflow_handle(assignment_workflow_id(aid)).query("status", result_type=AssignmentStatus)


async def until_started(time_env, aid: str) -> AssignmentStatus:
    """The lifecycle once it has taken effect (or ended)."""
    return await eventually(
        lambda: lifecycle(time_env, aid),
        until=lambda s: s.state not in ("loading", "scheduled"),
        what=f"assignment {aid} to take effect",
    )


async def run_to_end(time_env, clock: Clock, aid: str) -> AssignmentStatus:
    """Skip to a minute past the assignment's end and return its final status. (Awaiting
    the workflow's result instead would let the server leap years ahead.)"""
    status = await lifecycle(time_env, aid)
    if status.ended_at is None:
        await clock.sleep(max(status.ends_at - clock.now, timedelta(0)) + timedelta(minutes=1))
    return await eventually(
        lambda: lifecycle(time_env, aid), until=lambda s: s.ended_at is not None, what=f"assignment {aid} to end"
    )


def expiring(channel: LogChannel) -> list:
    return [n for n in channel.sent if n.event == "assignment_expiring_soon"]


async def activate(pim, demo, principal: str, *, mfa_offset: float = 0.0) -> str:
    """`principal` asks for grp-ops membership with a fresh MFA code (a later TOTP step when
    `mfa_offset` is 30: a code is accepted once)."""
    code = current_code(await demo.mfa_secret(principal), time.time() + mfa_offset)
    return await pim.start(
        ActivationRequest(
            group_id="grp-ops",
            access=AccessType.member,
            principal_id=principal,
            duration=timedelta(hours=2),
            justification="INC-77 storage outage",
            mfa=MfaEvidence(code=code),
        )
    )


async def member(demo, principal: str, group: str) -> bool:
    return await demo.has_membership(group, AccessType.member, principal)


# --- 1. a time-bound eligible assignment takes effect, reminds and expires ---


async def test_time_bound_eligible_assignment_takes_effect_reminds_and_expires(time_env, demo):
    channel = LogChannel()
    async with running_worker(time_env, demo, channels=[channel]) as pim:
        ctx, clock = await admin_context(time_env, demo, pim)
        created = clock.now
        aid = await create_assignment(
            ctx,
            "grp-ops",
            "dave",
            access=AccessType.member,
            kind="eligible",
            duration=timedelta(days=20),
            justification="covering the on-call rotation",
        )
        started = await until_started(time_env, aid)
        assert started.state == "active" and started.kind == "eligible"
        assert started.ends_at == created + timedelta(days=20) and started.reminders_sent == []
        assert not await member(demo, "dave", "grp-ops")  # eligible: nothing granted by the assignment itself

        # The admission sees the eligibility: dave's request waits for bob instead of being rejected.
        rid = await activate(pim, demo, "dave")
        pending = await settled(pim, rid)
        assert pending.state == State.pending_approval, pending.violations
        assert pending.stages[0].approvers == ["bob"]
        await pim.cancel(rid, "dave", "keeping it simple")
        await time_env.sleep(timedelta(seconds=1))
        assert (await settled(pim, rid)).state == State.canceled

        await clock.sleep(timedelta(days=6, minutes=1))  # 14 days before the end
        first = await eventually(lambda: expiring(channel), what="the 14-day reminder")
        assert len(first) == 1
        assert [r.principal_id for r in first[0].recipients] == ["dave", "admin"]
        assert first[0].details["assignment_id"] == aid
        assert len((await lifecycle(time_env, aid)).reminders_sent) == 1

        await clock.sleep(timedelta(days=13))  # 19 days + 1 minute: 1 day before the end
        second = await eventually(lambda: expiring(channel), until=lambda sent: len(sent) == 2, what="the 1-day reminder")
        assert second
        for reminder in expiring(channel):  # the assignee, and the group's administrators
            told = {r.principal_id: r.role for r in reminder.recipients}
            assert told["dave"] == "requestor" and told["admin"] == "admins"
        reminders = (await lifecycle(time_env, aid)).reminders_sent
        assert len(reminders) == 2
        assert started.ends_at - timedelta(days=14) <= reminders[0] <= started.ends_at - timedelta(days=14) + SECONDS
        assert started.ends_at - timedelta(days=1) <= reminders[1] <= started.ends_at - timedelta(days=1) + SECONDS

        final = await run_to_end(time_env, clock, aid)
        assert final.state == "expired"
        assert final.ends_at <= final.ended_at <= final.ends_at + SECONDS
        assert len(expiring(channel)) == 2  # nothing more after the end
        row = await demo.assignment(aid)
        assert row.state(clock.now) == "expired" and row.removed_at is None

        again = await settled(pim, await activate(pim, demo, "dave", mfa_offset=30))
        assert again.state == State.rejected
        assert [v.code for v in again.violations] == ["not_eligible"]


# --- 2. a time-bound active assignment: membership from start to end -------


async def test_time_bound_active_assignment_grants_at_start_and_revokes_exactly_at_end(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        ctx, clock = await admin_context(time_env, demo, pim)
        assert not await member(demo, "bob", "grp-dev") and not await member(demo, "carol", "grp-dev")
        bob = await create_assignment(
            ctx,
            "grp-dev",
            "bob",
            access=AccessType.member,
            kind="active",
            duration=timedelta(days=3),
            justification="release week",
        )
        carol = await create_assignment(
            ctx,
            "grp-dev",
            "carol",
            access=AccessType.member,
            kind="active",
            duration=timedelta(days=3),
            justification="release week",
        )
        await until_started(time_env, bob)
        await until_started(time_env, carol)
        assert await member(demo, "bob", "grp-dev") and await member(demo, "carol", "grp-dev")
        # carol also holds a permanent active assignment (recorded straight in the store, as the seed does).
        await demo.assign("grp-dev", "carol", kind="active", starts_at=clock.now, justification="team lead", by="admin")

        await clock.sleep(timedelta(days=2, hours=23))
        assert await member(demo, "bob", "grp-dev")  # still there just before the end

        ends = {aid: await run_to_end(time_env, clock, aid) for aid in (bob, carol)}
        for status in ends.values():
            assert status.state == "expired"
            assert status.ends_at <= status.ended_at <= status.ends_at + SECONDS
        assert not await member(demo, "bob", "grp-dev")
        assert await member(demo, "carol", "grp-dev")  # the permanent assignment keeps her in
        assert await demo.live_grants("grp-dev", AccessType.member, clock.now, "bob") == []
        kept = await demo.live_grants("grp-dev", AccessType.member, clock.now, "carol")
        assert [g.ends_at for g in kept] == [None]


# --- 3. extend and renew ------------------------------------------------------


async def test_extend_moves_the_end_keeps_membership_and_rearms_reminders(time_env, demo):
    channel = LogChannel()
    async with running_worker(time_env, demo, channels=[channel]) as pim:
        ctx, clock = await admin_context(time_env, demo, pim)
        aid = await create_assignment(
            ctx,
            "grp-dev",
            "bob",
            access=AccessType.member,
            kind="active",
            duration=timedelta(days=20),
            justification="release train",
        )
        old_end = (await until_started(time_env, aid)).ends_at
        await clock.sleep(timedelta(days=7))
        await eventually(lambda: expiring(channel), until=lambda sent: len(sent) == 1, what="the 14-day reminder of the old end")

        new_end = await extend_assignment(ctx, aid, extra=timedelta(days=10), justification="the train slipped")
        assert new_end == old_end + timedelta(days=10)
        assert (await lifecycle(time_env, aid)).ends_at == new_end
        assert (await demo.assignment(aid)).ends_at == new_end

        await clock.sleep(old_end - clock.now + timedelta(hours=1))  # past the old end
        assert (await lifecycle(time_env, aid)).state == "active"
        assert await member(demo, "bob", "grp-dev")
        # The reminders follow the new end: 14 days before it (day 16); the old end's 1-day one never came.
        notes = await eventually(
            lambda: expiring(channel), until=lambda sent: len(sent) == 2, what="the 14-day reminder of the new end"
        )
        assert notes[1].details["ends_at"] == new_end.isoformat()

        final = await run_to_end(time_env, clock, aid)
        assert final.state == "expired"
        assert new_end <= final.ended_at <= new_end + SECONDS
        assert not await member(demo, "bob", "grp-dev")
        notes = await eventually(lambda: expiring(channel), until=lambda sent: len(sent) == 3, what="the 1-day reminder")
        assert [n.details["ends_at"] for n in notes] == [old_end.isoformat()] + [new_end.isoformat()] * 2
        sent = final.reminders_sent
        assert len(sent) == 3
        assert new_end - timedelta(days=1) <= sent[2] <= new_end - timedelta(days=1) + SECONDS


async def test_a_lifecycle_started_after_an_extension_follows_the_stores_window(time_env, demo):
    """The operation writes an extension to the store before it tells the lifecycle;
    when that lifecycle had not loaded yet, it starts with the old window and must
    take the store's, not give up and leave the assignment without a lifecycle."""
    async with running_worker(time_env, demo) as pim:
        now = await time_env.get_current_time()
        aid = await demo.assign(
            "grp-dev", "bob", kind="active", starts_at=now, ends_at=now + timedelta(days=3), by="admin", apply_membership=False
        )
        await demo.change_assignment_window(aid, starts_at=now, ends_at=now + timedelta(days=5), by="admin", at=now)
        started_with = AssignmentStart(assignment_id=aid, starts_at=now, ends_at=now + timedelta(days=3))
        await time_env.client.start_workflow(
            "AssignmentLifecycle", started_with, id=assignment_workflow_id(aid), task_queue=pim.task_queue
        )
        status = await until_started(time_env, aid)
        assert (status.state, status.ends_at) == ("active", now + timedelta(days=5))
        assert await member(demo, "bob", "grp-dev")


async def test_an_assignment_extended_the_moment_it_was_made_keeps_its_lifecycle(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        ctx, _ = await admin_context(time_env, demo, pim)
        aid = await create_assignment(
            ctx, "grp-dev", "bob", access=AccessType.member, kind="active", duration=timedelta(days=3), justification="release"
        )
        new_end = await extend_assignment(ctx, aid, extra=timedelta(days=2), justification="the release slipped")
        status = await until_started(time_env, aid)
        assert (status.state, status.ends_at) == ("active", new_end)
        assert (await demo.assignment(aid)).ends_at == new_end
        assert await member(demo, "bob", "grp-dev")


async def test_renew_within_30_days_of_expiry_and_refused_after(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        ctx, clock = await admin_context(time_env, demo, pim)
        bob = await create_assignment(
            ctx,
            "grp-dev",
            "bob",
            access=AccessType.member,
            kind="active",
            duration=timedelta(days=1),
            justification="release day",
        )
        carol = await create_assignment(
            ctx,
            "grp-dev",
            "carol",
            access=AccessType.member,
            kind="active",
            duration=timedelta(days=1),
            justification="release day",
        )
        for aid in (bob, carol):
            assert (await run_to_end(time_env, clock, aid)).state == "expired"
        assert not await member(demo, "bob", "grp-dev")

        await clock.sleep(timedelta(days=10))
        new_end = await renew_assignment(ctx, bob, extra=timedelta(days=5), justification="next release")
        assert new_end == clock.now + timedelta(days=5)
        renewed = await until_started(time_env, bob)  # a new run of the lifecycle
        assert renewed.state == "active" and renewed.ends_at == new_end and renewed.starts_at == clock.now
        row = await demo.assignment(bob)
        assert row.state(clock.now) == "active" and row.ends_at == new_end and row.updated_by == "admin"
        assert await member(demo, "bob", "grp-dev")

        await clock.sleep(timedelta(days=21, hours=1))  # carol's expired 31 days ago
        with pytest.raises(Refused) as refused:
            await renew_assignment(ctx, carol, extra=timedelta(days=5), justification="too late")
        assert refused.value.code == "renewal_window_passed"
        assert (await demo.assignment(carol)).state(clock.now) == "expired"
        assert not await member(demo, "carol", "grp-dev")
        # bob's renewed window ended at its own end.
        final = await run_to_end(time_env, clock, bob)
        assert final.state == "expired" and new_end <= final.ended_at <= new_end + SECONDS
        assert not await member(demo, "bob", "grp-dev")


# --- 4. remove ----------------------------------------------------------------


async def test_removal_refused_in_the_first_5_minutes_then_ends_the_workflow(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        ctx, clock = await admin_context(time_env, demo, pim)
        aid = await create_assignment(
            ctx,
            "grp-dev",
            "bob",
            access=AccessType.member,
            kind="active",
            duration=timedelta(days=30),
            justification="contract work",
        )
        await until_started(time_env, aid)
        assert await member(demo, "bob", "grp-dev")

        await clock.sleep(timedelta(minutes=1))
        with pytest.raises(Refused) as early:
            await remove_assignment(ctx, aid, reason="changed my mind")
        assert early.value.code == "removal_too_early"
        assert (await lifecycle(time_env, aid)).state == "active" and await member(demo, "bob", "grp-dev")

        await clock.sleep(timedelta(minutes=5))
        await remove_assignment(ctx, aid, reason="contract ended early")
        final = await run_to_end(time_env, clock, aid)
        assert final.state == "removed"
        assert clock.now <= final.ended_at <= clock.now + SECONDS
        assert not await member(demo, "bob", "grp-dev")
        row = await demo.assignment(aid)
        assert row.state(clock.now) == "removed"
        assert row.removed_by == "admin" and row.removal_reason == "contract ended early"
        assert await demo.live_grants("grp-dev", AccessType.member, clock.now, "bob") == []
