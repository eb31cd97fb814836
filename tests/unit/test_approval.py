"""The approval stages of one request, without Temporal: who may decide, what a
decision records, when the wait is over."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pim.domain.approval import Approval, all_approvers
from pim.domain.models import ReviewDecision
from pim.domain.status import StageStatus

APPROVE, DENY = ReviewDecision.approve, ReviewDecision.deny
REQUESTED = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DEADLINE = REQUESTED + timedelta(hours=24)
SOON = REQUESTED + timedelta(minutes=10)


def two_stages(first_needs: int = 1) -> Approval:
    """Stage 1: bob or dave (`first_needs` of them); stage 2: admin."""
    return Approval(
        stages=[StageStatus(approvers=["bob", "dave"], required=first_needs), StageStatus(approvers=["admin"], required=1)],
        deciders=[["bob", "dave"], ["admin"]],
        requester_id="alice",
        deadline=DEADLINE,
    )


def refusal(approval: Approval, approver: str, decision=APPROVE, justification: str | None = "ok", at=SOON):
    return approval.refusal(approver, decision, justification, at=at, pending=True)


def test_the_first_stage_is_open_until_it_has_its_approvals():
    approval = two_stages(first_needs=2)
    assert approval.current_stage() == 0
    recorded = approval.record("bob", APPROVE, "ok", at=SOON)
    assert (recorded.stage, recorded.next_stage, recorded.ask_next) == (0, 0, [])
    assert approval.current_stage() == 0 and not approval.decided()


def test_an_approval_that_completes_a_stage_asks_the_next_stages_approvers():
    approval = two_stages()
    recorded = approval.record("bob", APPROVE, "ok", at=SOON)
    assert (recorded.stage, recorded.next_stage, recorded.ask_next) == (0, 1, ["admin"])
    last = approval.record("admin", APPROVE, "fine", at=SOON + timedelta(minutes=1))
    assert (last.stage, last.next_stage, last.ask_next) == (1, None, [])
    assert approval.decided() and not approval.denied()
    assert approval.last_decision_at() == SOON + timedelta(minutes=1)


def test_the_first_denial_ends_the_wait_and_asks_nobody():
    approval = two_stages(first_needs=2)
    approval.record("bob", APPROVE, "ok", at=SOON)
    recorded = approval.record("dave", DENY, "not now", at=SOON)
    assert recorded.next_stage is None and recorded.ask_next == []
    assert approval.denied() and approval.decided()
    assert refusal(approval, "admin") == "the request is not pending approval"


def test_the_decisions_land_in_the_stages_the_status_query_returns():
    approval = two_stages()
    approval.record("dave", APPROVE, "ok", at=SOON)
    decision = approval.stages[0].decisions[0]
    assert (decision.approver_id, decision.decision, decision.justification, decision.at) == ("dave", APPROVE, "ok", SOON)


@pytest.mark.parametrize(
    ("approver", "justification", "reason"),
    [
        ("alice", "ok", "nobody approves their own request"),
        ("carol", "ok", "carol is not an approver of the current stage"),
        ("admin", "ok", "admin is not an approver of the current stage"),
        ("bob", "  ", "justification: an approver's justification is required"),
        ("bob", None, "justification: an approver's justification is required"),
    ],
)
def test_who_may_not_decide_and_why(approver, justification, reason):
    assert refusal(two_stages(), approver, justification=justification) == reason


def test_an_approver_counts_once_across_stages():
    approval = Approval(
        stages=[StageStatus(approvers=["bob"], required=1), StageStatus(approvers=["bob", "admin"], required=1)],
        deciders=[["bob"], ["bob", "admin"]],
        requester_id="alice",
        deadline=DEADLINE,
    )
    approval.record("bob", APPROVE, "ok", at=SOON)
    assert refusal(approval, "bob") == "bob has already decided on this request"
    assert refusal(approval, "admin") is None


def test_nothing_counts_at_or_after_the_deadline_or_once_the_request_stopped_waiting():
    approval = two_stages()
    assert refusal(approval, "bob", at=DEADLINE) == "the approval deadline has passed"
    assert approval.refusal("bob", APPROVE, "ok", at=SOON, pending=False) == "the request is not pending approval"
    assert refusal(approval, "bob", at=DEADLINE - timedelta(seconds=1)) is None


def test_recording_without_an_open_stage_is_a_programming_error():
    approval = two_stages()
    approval.record("bob", APPROVE, "ok", at=SOON)
    approval.record("admin", APPROVE, "ok", at=SOON)
    with pytest.raises(ValueError):
        approval.record("dave", APPROVE, "ok", at=SOON)


def test_all_approvers_lists_each_decider_once_in_order():
    assert all_approvers([["dave", "bob"], ["bob", "admin"]]) == ["admin", "bob", "dave"]
