"""`GroupActivation`: one eligible principal's request for membership or
ownership of a group, from validation to revocation (SPEC section 3).

validating -> [pending_approval] -> [scheduled] -> activating -> active -> revoking -> expired | deactivated
Every other way out ends in rejected, denied, approval_expired, canceled or failed,
and once access was granted the workflow never ends without revoking it.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ActivityError, ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from pim.domain import activation_rules as rules
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
    from pim.domain.status import (
        AccessChange,
        ActivationStatus,
        Admission,
        AdmitInput,
        AuditRecord,
        StageStatus,
        StatusEvent,
    )
    from workflows.options import ADMIT, GRANT, PIM_ACCESS, PIM_GROUP_ID, PIM_PRINCIPAL_ID, PIM_STATE, RECORD, REVOKE

from workflows import metrics
from workflows.approval import ApprovalBookkeeping

MAX_EVENTS = 500  # a flood of refused signals must not grow the status without bound


@workflow.defn(name="GroupActivation")
class GroupActivation(ApprovalBookkeeping):
    @workflow.init
    def __init__(self, raw_request: Any) -> None:
        info = workflow.info()
        self.run_key = f"{info.workflow_id}#{info.run_id}"
        self.request: ActivationRequest | None = None
        self.admission = Admission()
        self.granted = False
        self.end_requested: State | None = None  # canceled or deactivated, by signal
        self.expiry_moved = False
        self.deadline_enforced = False
        self.lean = False  # patch "lean-history": local admission, notifications queued by the activities
        self.records: list[asyncio.Future] = []  # audit and notification activities under way
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

    # --- the lifecycle ---------------------------------------------------------

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
        # Admission only reads the store and takes a claim: as a local activity it
        # costs one marker in the history instead of three events and a workflow task.
        self.lean = workflow.patched("lean-history")
        admit = workflow.execute_local_activity if self.lean else workflow.execute_activity
        try:
            self.admission = await admit(
                "admit_request",
                AdmitInput(request_id=self.status.request_id, run_key=self.run_key, request=request, at=workflow.now()),
                result_type=Admission,
                **ADMIT,
            )
        except ActivityError as error:
            # Fails closed. The claim, if one was taken, is released.
            await self._close(State.failed, f"admission failed: {_cause(error)}")
            return
        self.status.policy_version = self.admission.policy_version
        self.status.requested_duration = self.admission.duration
        if not self.admission.admitted:
            self.status.violations = self.admission.violations
            self.status.end_reason = "rejected: " + ", ".join(v.code for v in self.admission.violations)
            self._end(State.rejected)
            return
        if request.validate_only:
            self.status.end_reason = "validate_only: every check passed, nothing granted"
            self._end(State.canceled)
            return
        policy = self.admission.policy
        assert policy is not None
        if not self.lean:  # histories from before admit_request queued its own notifications
            self._record("activation_requested", notify=self._approvers(), dedupe_key=f"{self.run_key}:requested")

        if policy.activation.approval and not await self._await_approval():
            return
        if request.start_at and request.start_at > workflow.now():
            self.status.starts_at = request.start_at
            self._set_state(State.scheduled, note=f"starts at {request.start_at.isoformat()}")
            self._audit_transition("activation_scheduled", starts_at=request.start_at.isoformat())
            if await self._wait_or_end(request.start_at):
                await self._close(State.canceled, self.status.end_reason)
                return
        await self._grant_and_hold()

    async def _await_approval(self) -> bool:
        """True when every stage approved; otherwise the request has ended."""
        policy = self.admission.policy
        assert policy is not None
        self.status.stages = [StageStatus(approvers=s.approvers, required=s.required) for s in policy.activation.approval]
        deadline = self.status.requested_at + policy.activation.approval_timeout
        self.status.approval_deadline = deadline
        # A decision that reaches the workflow together with the deadline's timer (say,
        # after a worker outage) must not count: handlers run before timers in a task.
        self.deadline_enforced = workflow.patched("refuse-decisions-past-deadline")
        self._set_state(State.pending_approval, note=f"{len(self.status.stages)} stage(s) to approve")
        self._audit_transition("activation_pending_approval", approval_deadline=deadline.isoformat())
        ended = await self._wait_or_end(deadline, until=lambda: self._current_stage() is None or self._denied())
        if self._denied():
            await self._close(State.denied, "denied by an approver")
            return False
        if ended:
            await self._close(State.canceled, self.status.end_reason)
            return False
        if self._current_stage() is not None:
            await self._close(State.approval_expired, "no decision before the approval deadline")
            return False
        metrics.approved(
            self.status.requested_at, max((d.at for s in self.status.stages for d in s.decisions), default=workflow.now())
        )
        return True

    async def _grant_and_hold(self) -> None:
        assert self.request is not None and self.admission.duration is not None
        self._set_state(State.activating)
        granted_at = workflow.now()
        self.status.granted_at, self.status.expires_at = granted_at, granted_at + self.admission.duration
        self.granted = True  # from here on, closing revokes (the grant may be partly written)
        try:
            await workflow.execute_activity("grant_access", self._change(granted_at), **GRANT)
        except ActivityError as error:
            await self._close(State.failed, f"grant failed: {_cause(error)}")
            return
        self._set_state(State.active, note=f"expires at {self.status.expires_at.isoformat()}")
        metrics.granted(self.status.starts_at or self.status.requested_at, workflow.now())
        if not self.lean:  # histories from before grant_access queued its own notifications
            self._record("access_granted", notify=[self.request.principal_id], dedupe_key=f"{self.run_key}:granted")
        # A durable timer that `deactivate` ends early and `extend` moves.
        while True:
            self.expiry_moved = False
            if await self._wait_or_end(self.status.expires_at, until=lambda: self.expiry_moved):
                await self._close(State.deactivated, self.status.end_reason)
                return
            if not self.expiry_moved and workflow.now() >= self.status.expires_at:
                break
        await self._close(State.expired, "the activation reached its end")

    async def _wait_or_end(self, until_time: datetime, until=lambda: False) -> bool:
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
        assert self.request is not None
        self.status.end_reason = reason
        if self.granted:
            self._set_state(State.revoking, note=reason)
        change = self._change(workflow.now(), final_state=final, reason=reason)
        await asyncio.shield(asyncio.ensure_future(workflow.execute_activity("close_activation", change, **REVOKE)))
        self.granted = False
        self._end(final)
        if not self.lean:  # histories from before close_activation queued its own notifications
            self._record(
                f"activation_{final.value}",
                notify=[self.request.principal_id],
                reason=reason or "",
                dedupe_key=f"{self.run_key}:ended",
            )

    def _end(self, final: State) -> None:
        self.status.ended_at = workflow.now()
        self._set_state(final, note=self.status.end_reason)
        if not self.status.validate_only:  # a dry run is no activation
            metrics.activation_ended(final.value)

    # --- signals, update and query -------------------------------------------

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

    def _signal_decision(self, args: tuple, decision: ReviewDecision) -> None:
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
        stage = self._current_stage()
        self._apply_decision(payload.approver_id, payload.decision, payload.justification)
        # Answer once the decision has taken effect: next stage, or the request moved on.
        await workflow.wait_condition(
            lambda: self.status.state != State.pending_approval or self._current_stage() not in (stage, None)
        )
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
        if self.status.state != State.active or self.status.expires_at is None or self.status.granted_at is None:
            self._refuse("extend", payload.by, f"cannot extend in state {self.status.state.value}")
            return
        policy = self.admission.policy
        assert policy is not None
        refusal = rules.refuse_extension(
            by=payload.by,
            extra=payload.duration,
            justification=payload.justification,
            requester_id=self.request.principal_id,
            approvers=self._approvers(),
            administrators=self.admission.administrators,
            settings=policy.activation,
            granted_at=self.status.granted_at,
            expires_at=self.status.expires_at,
        )
        if refusal:
            self._refuse("extend", payload.by, refusal)
            return
        self.status.expires_at = self.status.expires_at + payload.duration
        self.expiry_moved = True
        self._event(State.active, payload.by, f"extended to {self.status.expires_at.isoformat()}")
        self._record(
            "activation_extended",
            actor=payload.by,
            notify=[self.request.principal_id],
            expires_at=self.status.expires_at.isoformat(),
            justification=payload.justification or "",
        )

    # --- helpers -------------------------------------------------------------

    def _parse(self, model, args: tuple, name: str):
        if len(args) != 1:
            self._refuse(name, None, f"malformed payload: expected one argument, got {len(args)}")
            return None
        raw = args[0]
        try:
            return model.model_validate(raw)
        except ValidationError as error:
            reasons = "; ".join(v.message for v in violations_from_validation_error(error))
            self._refuse(
                name, raw.get("by") or raw.get("approver_id") if isinstance(raw, dict) else None, f"malformed payload: {reasons}"
            )
            return None

    def _refuse(self, signal: str, actor: Any, reason: str) -> None:
        actor = actor if isinstance(actor, str) and len(actor) <= 128 else None
        workflow.logger.warning("signal refused", extra={"signal": signal, "actor": actor, "reason": reason})
        self._event(self.status.state, actor, f"{signal} refused: {reason}")
        if self.request is not None:
            self._audit_transition("refused", actor=actor or "unknown", attempted=signal, reason=reason)

    def _audit_transition(self, action: str, actor: str | None = None, **details: str) -> None:
        """Audit lines added after the first recorded histories: behind a patch, so
        workflows that started before it replay as they ran."""
        if workflow.patched("audit-every-transition"):
            self._record(action, actor=actor, **details)

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
            notifications=policy.notifications if policy and self.lean else None,
            administrators=self.admission.administrators if self.lean else [],
        )

    def _record(
        self,
        action: str,
        actor: str | None = None,
        notify: list[str] = (),
        dedupe_key: str | None = None,
        ask: list[str] = (),
        **details: str,
    ) -> None:
        """Audit and notify without waiting: a slow mail server never delays access."""
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
            notify=list(notify),
            ask=list(ask),
            dedupe_key=dedupe_key or f"{self.run_key}:{len(self.status.events)}:{action}",
        )
        self.records.append(workflow.start_activity("record_event", record, **RECORD))


def _cause(error: ActivityError) -> str:
    cause = error.cause
    return getattr(cause, "message", None) or str(cause or error)
