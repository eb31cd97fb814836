"""The approval stages of one request: which stage is open, whether a reviewer
may decide, and what a decision records.

`GroupActivation` owns one `Approval` while its request waits for approval. It
is pure bookkeeping over the request's `StageStatus` list (the same objects the
`status` query returns) and takes the time as an argument, so it is tested
without Temporal."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pim.domain.activation_rules import refuse_review
from pim.domain.models import ReviewDecision
from pim.domain.refusals import DEADLINE_PASSED, Refusal
from pim.domain.status import StageDecision, StageStatus


@dataclass(frozen=True)
class RecordedDecision:
    stage: int  # index of the stage the decision counted in
    next_stage: int | None  # the stage open now; None once every stage approved or one denied
    ask_next: list[str]  # approvers to ask now: the next stage's, when this approval opened it


@dataclass
class Approval:
    stages: list[StageStatus]
    # Per stage, the users who may decide (approver groups expanded, requester removed).
    deciders: list[list[str]]
    requester_id: str
    deadline: datetime
    justification_required: bool = True

    def current_stage(self) -> int | None:
        """The first stage still short of approvals; None when all are satisfied."""
        for index, stage in enumerate(self.stages):
            if not stage.satisfied:
                return index
        return None

    def denied(self) -> bool:
        return any(d.decision == ReviewDecision.deny for s in self.stages for d in s.decisions)

    def decided(self) -> bool:
        """Every stage approved, or one denial: the wait for approval is over."""
        return self.denied() or self.current_stage() is None

    def refusal(
        self, approver_id: str, decision: ReviewDecision, justification: str | None, *, at: datetime, pending: bool
    ) -> Refusal | None:
        """Why this decision cannot count, or None when it can. `pending`: the request
        is still waiting for approval (not canceled, not expired)."""
        # A decision that reaches the workflow together with the deadline's timer (say,
        # after a worker outage) must not count: handlers run before timers in a task.
        if at >= self.deadline:
            return Refusal(DEADLINE_PASSED, "the approval deadline has passed")
        index = self.current_stage() if pending and not self.denied() else None
        return refuse_review(
            approver_id=approver_id,
            decision=decision,
            justification=justification,
            requester_id=self.requester_id,
            stage=self.stages[index] if index is not None else None,
            deciders=self.deciders[index] if index is not None else [],
            justification_required=self.justification_required,
            decided_earlier=[d.approver_id for s in self.stages[: index or 0] for d in s.decisions],
        )

    def record(self, approver_id: str, decision: ReviewDecision, justification: str | None, *, at: datetime) -> RecordedDecision:
        """Count a decision that `refusal` admitted."""
        index = self.current_stage()
        if index is None:
            raise ValueError("no stage is open: check refusal() first")
        self.stages[index].decisions.append(
            StageDecision(approver_id=approver_id, decision=decision, justification=justification, at=at)
        )
        next_stage = None if self.denied() else self.current_stage()
        opened = decision == ReviewDecision.approve and next_stage not in (None, index)
        return RecordedDecision(
            stage=index,
            next_stage=next_stage,
            ask_next=list(self.deciders[next_stage]) if opened and next_stage is not None else [],
        )

    def last_decision_at(self) -> datetime | None:
        return max((d.at for s in self.stages for d in s.decisions), default=None)


def all_approvers(deciders: list[list[str]]) -> list[str]:
    """Everyone who may decide at some stage, once each."""
    return sorted({user for stage in deciders for user in stage})
