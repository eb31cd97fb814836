"""The approval stages of a `GroupActivation`: which stage is open, whether a
reviewer may decide, and what a decision records. A mixin, so the workflow
module reads as the lifecycle; it works on the workflow's own state."""

from __future__ import annotations

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from pim.domain import activation_rules as rules
    from pim.domain.durations import format_duration
    from pim.domain.models import ReviewDecision, State
    from pim.domain.status import StageDecision


class ApprovalBookkeeping:
    # Set by GroupActivation (workflows/activation.py).
    status: object
    admission: object
    request: object
    deadline_enforced: bool
    lean: bool

    def _current_stage(self) -> int | None:
        for index, stage in enumerate(self.status.stages):
            if not stage.satisfied:
                return index
        return None

    def _denied(self) -> bool:
        return any(d.decision == ReviewDecision.deny for s in self.status.stages for d in s.decisions)

    def _review_refusal(self, approver_id: str, decision: ReviewDecision, justification: str | None) -> str | None:
        deadline = self.status.approval_deadline
        if self.deadline_enforced and deadline is not None and workflow.now() >= deadline:
            return "the approval deadline has passed"
        index = self._current_stage() if self.status.state == State.pending_approval and not self._denied() else None
        policy = self.admission.policy
        return rules.refuse_review(
            approver_id=approver_id,
            decision=decision,
            justification=justification,
            requester_id=self.request.principal_id if self.request else "",
            stage=self.status.stages[index] if index is not None else None,
            deciders=self.admission.stage_deciders[index] if index is not None else [],
            justification_required=policy.activation.approver_justification_required if policy else True,
            decided_earlier=[d.approver_id for s in self.status.stages[: index or 0] for d in s.decisions],
        )

    def _apply_decision(self, approver_id: str, decision: ReviewDecision, justification: str | None) -> None:
        index = self._current_stage()
        assert index is not None and self.request is not None
        self.status.stages[index].decisions.append(
            StageDecision(approver_id=approver_id, decision=decision, justification=justification, at=workflow.now())
        )
        self._event(State.pending_approval, approver_id, f"stage {index + 1}: {decision.value}")
        action = "request_approved" if decision == ReviewDecision.approve else "request_denied"
        # record_event tells the requestor and the admins, and asks the next stage's approvers.
        next_stage = self._current_stage()
        ask_next = (
            self.admission.stage_deciders[next_stage]
            if decision == ReviewDecision.approve and next_stage not in (None, index)
            else []
        )
        # The next stage's approvers decide from their message alone: it carries the request's facts.
        facts = (
            dict(
                duration=format_duration(self.admission.duration) if self.admission.duration else "",
                request_justification=self.request.justification or "",
                approval_deadline=self.status.approval_deadline.isoformat() if self.status.approval_deadline else "",
                next_stage=f"{next_stage + 1} of {len(self.status.stages)}",
            )
            if ask_next
            else {}
        )
        self._record(
            action,
            actor=approver_id,
            ask=ask_next,
            notify=[] if self.lean else [self.request.principal_id],
            stage=str(index + 1),
            justification=justification or "",
            **facts,
        )

    def _approvers(self) -> list[str]:
        return sorted({u for stage in self.admission.stage_deciders for u in stage})
