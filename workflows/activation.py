"""`GroupActivation`: one eligible principal's request for membership or
ownership of a group, from validation to revocation (docs/wire-contract.md).

validating -> [pending_approval] -> [scheduled] -> activating -> active -> revoking -> expired | deactivated
Every other way out ends in rejected, denied, approval_expired, canceled or failed,
and once access was granted the workflow never ends without revoking it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import BaseModel, ValidationError

    from activities.interfaces import AccessInterface, AdmissionInterface, AuditInterface
    from pim.domain import activation_rules as rules
    from pim.domain.approval import Approval, all_approvers
    from pim.domain.durations import format_duration
    from pim.domain.models import (
        ActivationRequest,
        Cancel,
        Deactivate,
        Decision,
        Extend,
        Review,
        ReviewDecision,
        State,
        violations_from_validation_error,
    )
    from pim.domain.policy import Policy
    from pim.domain.status import (
        AccessChange,
        ActivationStatus,
        Admission,
        AdmitInput,
        AuditRecord,
        StageStatus,
        StatusEvent,
    )

from workflows import metrics
from workflows.options import ADMIT, GRANT, RECORD, REVOKE
from workflows.search_attributes import PIM_ACCESS, PIM_GROUP_ID, PIM_PRINCIPAL_ID, PIM_STATE

MAX_EVENTS = 500  # a flood of refused signals must not grow the status without bound
Payload = TypeVar("Payload", bound=BaseModel)


@workflow.defn(name="GroupActivation")
class GroupActivation:
    @workflow.init
    def __init__(self, raw_request: Any) -> None:
        info = workflow.info()
        self.run_key = f"{info.workflow_id}#{info.run_id}"
        self.request: ActivationRequest | None = None
        self.admission = Admission()
        self.approval: Approval | None = None  # while and after the request waits for approval
        self.granted = False
        self.end_requested: State | None = None  # canceled or deactivated, by signal
        self.expiry_moved = False
        self.records: list[workflow.ActivityHandle[None]] = []  # audit activities under way
        self.status = ActivationStatus(request_id=info.workflow_id, state=State.validating, requested_at=workflow.now())
        try:
            self.request = ActivationRequest.model_validate(raw_request)
        except ValidationError as error:
            self.status.violations = violations_from_validation_error(error)
        else:
            r = self.request
            self.status = self.status.model_copy(
                update=dict(
                    group_id=r.group_id,
                    access=r.access,
                    principal_id=r.principal_id,
                    justification=r.justification,
                    ticket=r.ticket,
                    requested_duration=r.duration,
                    validate_only=r.validate_only,
                )
            )

    # --- the lifecycle: request -> checks -> approval -> grant -> sleep -> revoke ---

    @workflow.run
    async def run(self, raw_request: Any) -> ActivationStatus:
        self._set_state(State.validating, note="request received")
        if self.request is None:
            self.status.end_reason = "malformed request"
            self._end(State.rejected)
            return self.status
        try:
            await self._lifecycle(self.request)
        except asyncio.CancelledError:
            # The workflow itself was cancelled: never leave access behind.
            await self._close(State.deactivated if self.granted else State.canceled, "workflow cancelled")
        await workflow.wait_condition(workflow.all_handlers_finished)
        # Audit lines must land before the workflow ends; their failures never change the outcome.
        await asyncio.gather(*self.records, return_exceptions=True)
        return self.status

    async def _lifecycle(self, request: ActivationRequest) -> None:
        policy = await self._admit(request)
        if policy is None:
            return
        if policy.activation.approval and not await self._await_approval(request, policy):
            return
        if request.start_at and request.start_at > workflow.now():
            self.status.starts_at = request.start_at
            self._set_state(State.scheduled, note=f"starts at {request.start_at.isoformat()}")
            self._record("activation_scheduled", starts_at=request.start_at.isoformat())
            if await self._wait_or_end(request.start_at):
                await self._close(State.canceled, self.status.end_reason)
                return
        await self._grant_and_hold()

    async def _admit(self, request: ActivationRequest) -> Policy | None:
        """The checks and the claim, in one local activity (one marker in the history).
        Returns the policy snapshot when the request goes on; otherwise it has ended."""
        data = AdmitInput(request_id=self.status.request_id, run_key=self.run_key, request=request, at=workflow.now())
        try:
            self.admission = await workflow.execute_local_activity_method(AdmissionInterface.admit_request, data, **ADMIT)
        except ActivityError as error:
            # Fails closed. The claim, if one was taken, is released.
            await self._close(State.failed, f"admission failed: {_cause(error)}")
            return None
        self.status.policy_version = self.admission.policy_version
        self.status.requested_duration = self.admission.duration
        if not self.admission.admitted:
            self.status.violations = self.admission.violations
            self.status.end_reason = "rejected: " + ", ".join(v.code for v in self.admission.violations)
            self._end(State.rejected)
            return None
        if request.validate_only:
            self.status.end_reason = "validate_only: every check passed, nothing granted"
            self._end(State.canceled)
            return None
        assert self.admission.policy is not None  # an admitted request always has its policy
        return self.admission.policy

    async def _await_approval(self, request: ActivationRequest, policy: Policy) -> bool:
        """True when every stage approved; otherwise the request has ended."""
        deadline = self.status.requested_at + policy.activation.approval_timeout
        self.status.stages = [StageStatus(approvers=s.approvers, required=s.required) for s in policy.activation.approval]
        self.status.approval_deadline = deadline
        approval = self.approval = Approval(
            stages=self.status.stages,
            deciders=self.admission.stage_deciders,
            requester_id=request.principal_id,
            deadline=deadline,
            justification_required=policy.activation.approver_justification_required,
        )
        self._set_state(State.pending_approval, note=f"{len(self.status.stages)} stage(s) to approve")
        self._record("activation_pending_approval", approval_deadline=deadline.isoformat())
        ended = await self._wait_or_end(deadline, until=approval.decided)
        if approval.denied():
            await self._close(State.denied, "denied by an approver")
            return False
        if ended:
            await self._close(State.canceled, self.status.end_reason)
            return False
        if approval.current_stage() is not None:
            await self._close(State.approval_expired, "no decision before the approval deadline")
            return False
        metrics.approved(self.status.requested_at, approval.last_decision_at() or workflow.now())
        return True

    async def _grant_and_hold(self) -> None:
        assert self.admission.duration is not None
        self._set_state(State.activating)
        granted_at = workflow.now()
        self.status.granted_at = granted_at
        expires_at = self.status.expires_at = granted_at + self.admission.duration
        self.granted = True  # from here on, closing revokes (the grant may be partly written)
        try:
            await workflow.execute_activity_method(AccessInterface.grant_access, self._change(granted_at), **GRANT)
        except ActivityError as error:
            await self._close(State.failed, f"grant failed: {_cause(error)}")
            return
        self._set_state(State.active, note=f"expires at {expires_at.isoformat()}")
        metrics.granted(self.status.starts_at or self.status.requested_at, workflow.now())
        # A durable timer that `deactivate` ends early and `extend` moves.
        while True:
            self.expiry_moved = False
            if await self._wait_or_end(self.status.expires_at, until=lambda: self.expiry_moved):
                await self._close(State.deactivated, self.status.end_reason)
                return
            if not self.expiry_moved and workflow.now() >= self.status.expires_at:
                break
        await self._close(State.expired, "the activation reached its end")

    async def _wait_or_end(self, until_time: datetime, until: Callable[[], bool] = lambda: False) -> bool:
        """Wait until `until_time` or `until()`; True when cancel or deactivate ended the wait."""
        timeout = until_time - workflow.now()
        if timeout > timedelta(0):
            try:
                await workflow.wait_condition(lambda: self.end_requested is not None or until(), timeout=timeout)
            except asyncio.TimeoutError:
                pass
        return self.end_requested is not None

    async def _close(self, final: State, reason: str | None) -> None:
        """Revoke when granted, release the claim and end. Retried until it succeeds,
        and shielded so that cancelling the workflow cannot interrupt it."""
        self.status.end_reason = reason
        if self.granted:
            self._set_state(State.revoking, note=reason)
        change = self._change(workflow.now(), final_state=final, reason=reason)
        await asyncio.shield(workflow.start_activity_method(AccessInterface.close_activation, change, **REVOKE))
        self.granted = False
        self._end(final)

    def _end(self, final: State) -> None:
        self.status.ended_at = workflow.now()
        self._set_state(final, note=self.status.end_reason)
        if not self.status.validate_only:  # a dry run is no activation
            metrics.activation_ended(final.value)

    # --- query, signals and update -------------------------------------------

    @workflow.query(name="status")
    def get_status(self) -> ActivationStatus:
        return self.status

    # Signal handlers take *args: a signal sent with no payload or with several
    # must be refused, not crash the workflow task (which would retry forever).
    @workflow.signal(name="approve")
    def approve(self, *args: Any) -> None:
        self._signal_decision(args, ReviewDecision.approve)

    @workflow.signal(name="deny")
    def deny(self, *args: Any) -> None:
        self._signal_decision(args, ReviewDecision.deny)

    def _signal_decision(self, args: tuple[Any, ...], decision: ReviewDecision) -> None:
        payload = self._parse(Decision, args, decision.value)
        if payload is None:
            return
        refusal = self._review_refusal(payload.approver_id, decision, payload.justification)
        if refusal:
            self._refuse(decision.value, payload.approver_id, refusal)
            return
        self._apply_decision(payload.approver_id, decision, payload.justification)

    @workflow.update(name="review")
    async def review(self, *args: Any) -> ActivationStatus:
        payload = Review.model_validate(args[0])  # the validator admitted exactly one well-formed argument
        refusal = self._review_refusal(payload.approver_id, payload.decision, payload.justification)
        if refusal:  # the state moved between validation and now
            raise ApplicationError(refusal, type="review_refused", non_retryable=True)
        self._apply_decision(payload.approver_id, payload.decision, payload.justification)
        # Answer once the decision has taken effect: the request waits for more
        # decisions, or it has moved on (granted, scheduled or denied).
        approval = self.approval
        assert approval is not None
        await workflow.wait_condition(lambda: not approval.decided() or self.status.state != State.pending_approval)
        return self.status

    @review.validator
    def validate_review(self, *args: Any) -> None:
        if len(args) != 1:
            raise ValueError(f"malformed payload: expected one argument, got {len(args)}")
        try:
            payload = Review.model_validate(args[0])
        except ValidationError as error:
            raise ValueError("; ".join(v.message for v in violations_from_validation_error(error))) from None
        refusal = self._review_refusal(payload.approver_id, payload.decision, payload.justification)
        if refusal:
            raise ValueError(refusal)

    def _review_refusal(self, approver_id: str, decision: ReviewDecision, justification: str | None) -> str | None:
        if self.approval is None:
            return "the request is not pending approval"
        pending = self.status.state == State.pending_approval
        return self.approval.refusal(approver_id, decision, justification, at=workflow.now(), pending=pending)

    def _apply_decision(self, approver_id: str, decision: ReviewDecision, justification: str | None) -> None:
        assert self.approval is not None
        recorded = self.approval.record(approver_id, decision, justification, at=workflow.now())
        self._event(State.pending_approval, approver_id, f"stage {recorded.stage + 1}: {decision.value}")
        # The next stage's approvers decide from their message alone: it carries the request's facts.
        facts: dict[str, str] = {}
        if recorded.ask_next and recorded.next_stage is not None:
            duration = self.admission.duration
            facts = dict(
                duration=format_duration(duration) if duration else "",
                request_justification=self.status.justification or "",
                approval_deadline=self.approval.deadline.isoformat(),
                next_stage=f"{recorded.next_stage + 1} of {len(self.approval.stages)}",
            )
        action = "request_approved" if decision == ReviewDecision.approve else "request_denied"
        # record_event tells the requestor and the admins, and asks the next stage's approvers.
        self._record(
            action,
            actor=approver_id,
            ask=recorded.ask_next,
            stage=str(recorded.stage + 1),
            justification=justification or "",
            **facts,
        )

    @workflow.signal(name="cancel")
    def cancel(self, *args: Any) -> None:
        payload = self._parse(Cancel, args, "cancel")
        if payload is None or self.request is None:
            return
        refusal = (
            None
            if self.status.state in (State.pending_approval, State.scheduled)
            else f"cannot cancel in state {self.status.state.value}"
        )
        refusal = refusal or rules.refuse_cancel(
            by=payload.by, requester_id=self.request.principal_id, administrators=self.admission.administrators
        )
        if refusal:
            self._refuse("cancel", payload.by, refusal)
            return
        self.end_requested = State.canceled
        self.status.end_reason = f"canceled by {payload.by}" + (f": {payload.reason}" if payload.reason else "")
        self._event(self.status.state, payload.by, "cancel accepted")

    @workflow.signal(name="deactivate")
    def deactivate(self, *args: Any) -> None:
        payload = self._parse(Deactivate, args, "deactivate")
        if payload is None or self.request is None:
            return
        if self.status.state != State.active or self.status.granted_at is None:
            self._refuse("deactivate", payload.by, f"cannot deactivate in state {self.status.state.value}")
            return
        refusal = rules.refuse_deactivation(
            by=payload.by,
            requester_id=self.request.principal_id,
            administrators=self.admission.administrators,
            granted_at=self.status.granted_at,
            at=workflow.now(),
        )
        if refusal:
            self._refuse("deactivate", payload.by, refusal)
            return
        self.end_requested = State.deactivated
        self.status.end_reason = f"deactivated by {payload.by}" + (f": {payload.reason}" if payload.reason else "")
        self._event(self.status.state, payload.by, "deactivate accepted")

    @workflow.signal(name="extend")
    def extend(self, *args: Any) -> None:
        payload = self._parse(Extend, args, "extend")
        if payload is None or self.request is None:
            return
        granted_at, expires_at, policy = self.status.granted_at, self.status.expires_at, self.admission.policy
        if self.status.state != State.active or granted_at is None or expires_at is None or policy is None:
            self._refuse("extend", payload.by, f"cannot extend in state {self.status.state.value}")
            return
        refusal = rules.refuse_extension(
            by=payload.by,
            extra=payload.duration,
            justification=payload.justification,
            requester_id=self.request.principal_id,
            approvers=all_approvers(self.admission.stage_deciders),
            administrators=self.admission.administrators,
            settings=policy.activation,
            granted_at=granted_at,
            expires_at=expires_at,
        )
        if refusal:
            self._refuse("extend", payload.by, refusal)
            return
        self.status.expires_at = expires_at + payload.duration
        self.expiry_moved = True
        self._event(State.active, payload.by, f"extended to {self.status.expires_at.isoformat()}")
        self._record(
            "activation_extended",
            actor=payload.by,
            expires_at=self.status.expires_at.isoformat(),
            justification=payload.justification or "",
        )

    # --- helpers -------------------------------------------------------------

    def _parse(self, model: type[Payload], args: tuple[Any, ...], name: str) -> Payload | None:
        if len(args) != 1:
            self._refuse(name, None, f"malformed payload: expected one argument, got {len(args)}")
            return None
        raw = args[0]
        try:
            return model.model_validate(raw)
        except ValidationError as error:
            reasons = "; ".join(v.message for v in violations_from_validation_error(error))
            actor = (raw.get("by") or raw.get("approver_id")) if isinstance(raw, dict) else None
            self._refuse(name, actor, f"malformed payload: {reasons}")
            return None

    def _refuse(self, signal: str, actor: Any, reason: str) -> None:
        actor = actor if isinstance(actor, str) and len(actor) <= 128 else None
        workflow.logger.warning("signal refused", extra={"signal": signal, "actor": actor, "reason": reason})
        self._event(self.status.state, actor, f"{signal} refused: {reason}")
        if self.request is not None:
            self._record("refused", actor=actor or "unknown", attempted=signal, reason=reason)

    def _event(self, state: State, actor: str | None, note: str | None) -> None:
        if len(self.status.events) < MAX_EVENTS:
            self.status.events.append(StatusEvent(at=workflow.now(), state=state, actor=actor, note=note))
        elif self.status.events[-1].note != "further events dropped":
            self.status.events.append(StatusEvent(at=workflow.now(), state=state, note="further events dropped"))

    def _set_state(self, state: State, note: str | None = None, actor: str | None = None) -> None:
        self.status.state = state
        self._event(state, actor, note)
        attributes = [PIM_STATE.value_set(state.value)]
        if self.request is not None:
            attributes += [
                PIM_GROUP_ID.value_set(self.request.group_id),
                PIM_ACCESS.value_set(self.request.access.value),
                PIM_PRINCIPAL_ID.value_set(self.request.principal_id),
            ]
        workflow.upsert_search_attributes(attributes)
        workflow.logger.info("activation state", extra={"state": state.value, "request_id": self.status.request_id})

    def _change(self, at: datetime, final_state: State | None = None, reason: str | None = None) -> AccessChange:
        assert self.request is not None
        policy = self.admission.policy
        return AccessChange(
            request_id=self.status.request_id,
            run_key=self.run_key,
            group_id=self.request.group_id,
            access=self.request.access,
            principal_id=self.request.principal_id,
            at=at,
            expires_at=self.status.expires_at,
            granted=self.granted,
            final_state=final_state,
            reason=reason,
            notifications=policy.notifications if policy else None,
            administrators=self.admission.administrators,
        )

    def _record(self, action: str, actor: str | None = None, ask: list[str] | None = None, **details: str) -> None:
        """Audit (and, for decisions, notify) without waiting: a slow mail server never delays access."""
        assert self.request is not None
        record = AuditRecord(
            at=workflow.now(),
            action=action,
            actor=actor or self.request.principal_id,
            request_id=self.status.request_id,
            group_id=self.request.group_id,
            access=self.request.access,
            principal_id=self.request.principal_id,
            details=details,
            ask=ask or [],
            dedupe_key=f"{self.run_key}:{len(self.status.events)}:{action}",
        )
        self.records.append(workflow.start_activity_method(AuditInterface.record_event, record, **RECORD))


def _cause(error: ActivityError) -> str:
    cause = error.cause
    return getattr(cause, "message", None) or str(cause or error)
