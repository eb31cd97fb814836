"""Approval of activations (SPEC sections 2 and 3) on the time-skipping server:
grant at approval, revoke at expiry, denial, approval expiry, cancel, stages,
approver groups and every refusal a reviewer can meet."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from temporalio.api.enums.v1 import EventType

from pim.client import RPCError
from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, ReviewDecision, State
from pim.domain.policy import ActivationSettings, ApprovalStage, Policy
from pim.domain.status import ActivationStatus
from pim.identity.totp import current_code
from tests.conftest import running_worker
from tests.polling import settled
from workflows.activation import EXPIRY_LEAD

JUSTIFICATION = "INC-42 database failover"


async def request_ops(pim, demo, **overrides) -> str:
    """alice asks for membership of grp-ops (PT2H, justified, with a fresh MFA code
    unless `mfa` is given) and the request has settled after admission."""
    fields = dict(
        group_id="grp-ops",
        access=AccessType.member,
        principal_id="alice",
        duration=timedelta(hours=2),
        justification=JUSTIFICATION,
    )
    fields.update(overrides)
    if "mfa" not in overrides:
        fields["mfa"] = MfaEvidence(code=current_code(await demo.mfa_secret(fields["principal_id"])))
    rid = await pim.start(ActivationRequest(**fields))
    await settled(pim, rid)
    return rid


async def after_signal(time_env, pim, rid: str) -> ActivationStatus:
    await time_env.sleep(timedelta(seconds=1))
    return await settled(pim, rid)


async def finish(time_env, pim, rid: str) -> ActivationStatus:
    async with time_env.time_skipping_unlocked():
        return await pim.result(rid)


async def set_ops_approval(store, *stages: tuple[list[str], int], **settings) -> None:
    """Replace the grp-ops member policy (MFA off unless asked) with these approval stages."""
    settings.setdefault("require_mfa", False)
    await store.set_policy(
        "grp-ops",
        AccessType.member,
        Policy(
            activation=ActivationSettings(
                approval=[ApprovalStage(approvers=approvers, required=required) for approvers, required in stages], **settings
            )
        ),
        by="admin",
    )


async def is_member(store, principal: str = "alice") -> bool:
    return await store.has_membership("grp-ops", AccessType.member, principal)


def refusals(status: ActivationStatus, signal: str, actor: str | None = ...) -> list[str]:
    """Notes of the events that record a refused `signal` (by `actor`, when given)."""
    return [
        e.note for e in status.events if e.note and e.note.startswith(f"{signal} refused") and (actor is ... or e.actor == actor)
    ]


def decisions(status: ActivationStatus, stage: int = 0) -> list[tuple[str, ReviewDecision, str | None]]:
    return [(d.approver_id, d.decision, d.justification) for d in status.stages[stage].decisions]


@dataclass
class Timer:
    started_at: datetime
    fires_at: datetime


async def expiry_timers(pim, rid: str) -> list[Timer]:
    """The timers the workflow started, in order: when, and when each was to fire."""
    timers = []
    async for event in pim.temporal.get_workflow_handle(rid).fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_TIMER_STARTED:
            started = event.event_time.ToDatetime(tzinfo=UTC)
            timeout = event.timer_started_event_attributes.start_to_fire_timeout.ToTimedelta()
            timers.append(Timer(started, started + timeout))
    return timers


async def audit_actions(store, rid: str) -> list[str]:
    return [row.action for row in await store.audit(request_id=rid)]


# --- 1. approved, granted from the approval, revoked at expiry ----------------


async def test_approved_request_is_granted_at_approval_and_revoked_exactly_at_expiry(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo)
        pending = await pim.status(rid)
        assert pending.state == State.pending_approval
        assert pending.stages[0].approvers == ["bob"] and pending.granted_at is None
        assert not await is_member(demo)

        await time_env.sleep(timedelta(hours=1))  # bob takes an hour to look at it
        await pim.approve(rid, "bob", "failover approved, go ahead")
        active = await after_signal(time_env, pim, rid)

        assert active.state == State.active
        assert decisions(active) == [("bob", ReviewDecision.approve, "failover approved, go ahead")]
        approved_at = active.stages[0].decisions[0].at
        # Access time counts from the grant, not from the request.
        assert active.granted_at >= active.requested_at + timedelta(hours=1)
        assert approved_at <= active.granted_at <= approved_at + timedelta(seconds=5)
        assert active.expires_at == active.granted_at + timedelta(hours=2)
        assert await is_member(demo)
        grants = await demo.live_grants("grp-ops", AccessType.member, active.granted_at, "alice")
        assert [g.source_kind for g in grants] == ["activation"]

        final = await finish(time_env, pim, rid)
        assert final.state == State.expired
        assert final.expires_at == active.expires_at
        assert final.expires_at <= final.ended_at <= final.expires_at + timedelta(seconds=5)
        # Two timers to the end: the second counted from the task the first woke, EXPIRY_LEAD before the end.
        lead, rest = (await expiry_timers(pim, rid))[-2:]
        assert abs(lead.fires_at - (final.expires_at - EXPIRY_LEAD)) < timedelta(seconds=1), lead
        assert lead.fires_at <= rest.started_at and abs(rest.fires_at - final.expires_at) < timedelta(seconds=1), rest
        assert not await is_member(demo)
        assert await demo.live_grants("grp-ops", AccessType.member, final.ended_at, "alice") == []
        states = [e.state for e in final.events]
        lifecycle = [State.validating, State.pending_approval, State.activating, State.active, State.revoking, State.expired]
        assert list(dict.fromkeys(states)) == lifecycle
        actions = await audit_actions(demo, rid)
        for action in ("activation_requested", "request_approved", "access_granted", "activation_ended"):
            assert action in actions
        assert actions.index("access_granted") < actions.index("activation_ended")
        assert actions.count("access_granted") == 1, actions  # one grant, one audit line


# --- 2. denial ---------------------------------------------------------------


async def test_denial_by_the_approver_ends_the_request_without_access(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo)
        await pim.deny(rid, "bob", "no change window today")
        final = await finish(time_env, pim, rid)

        assert final.state == State.denied
        assert decisions(final) == [("bob", ReviewDecision.deny, "no change window today")]
        assert final.granted_at is None and final.expires_at is None and final.ended_at is not None
        assert not await is_member(demo)
        assert await demo.live_grants("grp-ops", AccessType.member, final.ended_at, "alice") == []
        actions = await audit_actions(demo, rid)
        assert "request_denied" in actions and "access_granted" not in actions


# --- 3. approval expiry ------------------------------------------------------


async def test_request_without_decision_expires_after_24_hours(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo)
        pending = await pim.status(rid)
        assert pending.approval_deadline == pending.requested_at + timedelta(hours=24)

        await time_env.sleep(timedelta(hours=23))
        assert (await settled(pim, rid)).state == State.pending_approval
        await time_env.sleep(timedelta(hours=1, minutes=1))
        expired = await settled(pim, rid)
        assert expired.state == State.approval_expired
        assert expired.approval_deadline <= expired.ended_at <= expired.approval_deadline + timedelta(minutes=1)

        # bob comes back too late: nothing he sends is applied.
        try:
            await pim.approve(rid, "bob", "sorry, was on leave")
        except RPCError:
            pass  # the workflow has ended; the server refuses the signal
        await time_env.sleep(timedelta(seconds=1))
        after = await pim.status(rid)
        assert after.state == State.approval_expired and decisions(after) == []
        assert after.granted_at is None and not await is_member(demo)


# --- 4. cancel ---------------------------------------------------------------


async def test_requester_cancels_while_pending_but_a_stranger_cannot(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo)
        await pim.cancel(rid, "carol", "tidying up the queue")
        still = await after_signal(time_env, pim, rid)
        assert still.state == State.pending_approval
        assert refusals(still, "cancel", "carol") == ["cancel refused: carol may not cancel this request"]

        await pim.cancel(rid, "alice", "fixed without access")
        final = await finish(time_env, pim, rid)
        assert final.state == State.canceled
        assert "alice" in final.end_reason and "fixed without access" in final.end_reason
        assert final.granted_at is None and not await is_member(demo)


# --- 5. two stages -------------------------------------------------------------


async def test_two_stage_approval_needs_two_then_one_and_an_approver_counts_once(time_env, demo):
    # bob is listed in both stages, so his second approval is refused only because he already decided.
    await set_ops_approval(demo, (["bob", "carol", "dave"], 2), (["admin", "bob"], 1))
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo, mfa=None)
        st = await pim.status(rid)
        assert st.state == State.pending_approval and [s.required for s in st.stages] == [2, 1]

        await pim.approve(rid, "bob", "stage one: fine by me")
        st = await after_signal(time_env, pim, rid)
        assert st.state == State.pending_approval
        assert st.stages[0].approvals == 1 and not st.stages[0].satisfied

        await pim.approve(rid, "carol", "stage one: agreed")
        st = await after_signal(time_env, pim, rid)
        assert st.state == State.pending_approval
        assert st.stages[0].satisfied and st.stages[1].decisions == []

        await pim.approve(rid, "bob", "stage two: still fine by me")
        st = await after_signal(time_env, pim, rid)
        assert st.state == State.pending_approval and st.stages[1].decisions == []
        assert refusals(st, "approve", "bob") == ["approve refused: bob has already decided on this request"]
        assert not await is_member(demo)

        await pim.approve(rid, "admin", "stage two: approved")
        st = await after_signal(time_env, pim, rid)
        assert st.state == State.active
        assert decisions(st, 1) == [("admin", ReviewDecision.approve, "stage two: approved")]
        assert await is_member(demo)


# --- 6. refusals recorded while pending ---------------------------------------


async def test_self_approval_non_approver_and_missing_justification_are_refused(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo)
        await pim.approve(rid, "alice", "approving my own failover")
        await pim.approve(rid, "carol", "looks fine to me")
        await pim.approve(rid, "bob")
        await pim.approve(rid, "bob", "   ")
        st = await after_signal(time_env, pim, rid)

        assert st.state == State.pending_approval and decisions(st) == []
        assert refusals(st, "approve", "alice") == ["approve refused: nobody approves their own request"]
        assert refusals(st, "approve", "carol") == ["approve refused: carol is not an approver of the current stage"]
        assert refusals(st, "approve", "bob") == ["approve refused: justification: an approver's justification is required"] * 2
        assert all(e.state == State.pending_approval for e in st.events if e.note and "refused" in e.note)
        assert not await is_member(demo)

        await pim.approve(rid, "bob", "failover approved")  # a proper approval still works
        assert (await after_signal(time_env, pim, rid)).state == State.active


async def test_duplicate_approval_counts_once(time_env, demo):
    await set_ops_approval(demo, (["bob", "carol"], 2))
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo, mfa=None)
        await pim.approve(rid, "bob", "fine by me")
        await pim.approve(rid, "bob", "really, fine by me")
        st = await after_signal(time_env, pim, rid)
        assert st.state == State.pending_approval
        assert st.stages[0].approvals == 1
        assert refusals(st, "approve", "bob") == ["approve refused: bob has already decided on this request"]

        await pim.approve(rid, "carol", "agreed")
        assert (await after_signal(time_env, pim, rid)).state == State.active


# --- 7. approver groups -------------------------------------------------------


async def test_approver_group_member_approves_but_requester_in_the_group_cannot(time_env, demo):
    await set_ops_approval(demo, (["grp-sre"], 1))  # grp-sre: alice and dave
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo, mfa=None)
        assert (await pim.status(rid)).stages[0].approvers == ["grp-sre"]

        await pim.approve(rid, "alice", "I am in SRE too")
        st = await after_signal(time_env, pim, rid)
        assert st.state == State.pending_approval
        assert refusals(st, "approve", "alice") == ["approve refused: nobody approves their own request"]

        await pim.approve(rid, "dave", "SRE approves the failover")
        st = await after_signal(time_env, pim, rid)
        assert st.state == State.active
        assert decisions(st) == [("dave", ReviewDecision.approve, "SRE approves the failover")]
        assert await is_member(demo)


async def test_approver_group_of_only_the_requester_is_unsatisfiable(time_env, demo):
    await demo.onboard_group("grp-solo", "security", enable=False, by="admin")
    await demo.assign("grp-solo", "alice", kind="active", justification="a team of one", by="admin")
    await set_ops_approval(demo, (["grp-solo"], 1))
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo, mfa=None)
        final = await finish(time_env, pim, rid)
        assert final.state == State.rejected
        assert [v.code for v in final.violations] == ["approval_unsatisfiable"]
        assert final.granted_at is None and not await is_member(demo)


# --- 8. malformed payloads -----------------------------------------------------


async def test_malformed_decisions_are_refused_and_a_valid_approval_still_grants(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo)
        raw = time_env.client.get_workflow_handle(rid)
        await raw.signal("approve", {"approver_id": 5})
        await raw.signal("approve", {})
        await raw.signal("deny", {"approver_id": "bob", "justification": "no", "verdict": "deny"})
        st = await after_signal(time_env, pim, rid)

        assert st.state == State.pending_approval and decisions(st) == []
        notes = refusals(st, "approve") + refusals(st, "deny")
        assert len(notes) == 3 and all("malformed payload" in n for n in notes)
        assert all("approver_id" in n for n in notes[:2]) and "verdict" in notes[2]
        assert [e.actor for e in st.events if e.note in notes] == [None, None, "bob"]

        await pim.approve(rid, "bob", "approved after the noise")
        st = await after_signal(time_env, pim, rid)
        assert st.state == State.active and await is_member(demo)


async def test_decision_signal_without_payload_or_with_extra_arguments_is_refused(time_env, demo):
    # `temporal workflow signal --name approve` with no --input, or with two.
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo)
        raw = time_env.client.get_workflow_handle(rid)
        await raw.signal("approve")
        await raw.signal("approve", args=[{"approver_id": "bob", "justification": "ok, go ahead"}, "extra"])
        st = await after_signal(time_env, pim, rid)

        assert st.state == State.pending_approval and decisions(st) == []
        assert len(refusals(st, "approve")) == 2

        await pim.approve(rid, "bob", "approved after the noise")
        assert (await after_signal(time_env, pim, rid)).state == State.active
