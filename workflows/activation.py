"""`GroupActivation`: one eligible principal's request for membership or
ownership of a group, from validation to revocation (docs/wire-contract.md).

validating -> [pending_approval] -> [scheduled] -> activating -> active -> revoking -> expired | deactivated
Every other way out ends in rejected, denied, approval_expired, canceled or failed,
and once access was granted the workflow never ends without revoking it.

Nobody is trusted on their word: the request, every decision and every change
carries a proof of its actor that an activity verifies before it counts
(docs/security.md), and the grant itself is re-checked against the store.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.interfaces import AccessInterface, AdmissionInterface
    from pim.domain import activation_rules as rules
    from pim.domain.actors import Action
    from pim.domain.approval import Approval, all_approvers
    from pim.domain.durations import format_duration
    from pim.domain.grant_rules import ELIGIBILITY_REMOVED
    from pim.domain.grant_rules import REFUSALS as GRANT_REFUSALS
    from pim.domain.models import (
        ActivationRequest,
        Cancel,
        Deactivate,
        Decision,
        Extend,
        Proven,
        Review,
        ReviewDecision,
        State,
        Violation,
        undecodable,
        violations_from_validation_error,
    )
    from pim.domain.policy import Policy
    from pim.domain.refusals import INVALID_STATE, NOT_EVALUATED, NOT_PENDING, Refusal
    from pim.domain.status import AccessChange, ActivationStatus, Admission, AdmitInput, StageStatus

from workflows import metrics
from workflows.failures import ACTIVITY_FAILURES, failure_message, failure_type
from workflows.gate import Gate
from workflows.journal import Journal
from workflows.options import ADMIT, CHECK, GRANT, GRANT_LOCALLY, REVOKE

# Where a request may still be ended by cancel, deactivate or a lost eligibility.
OPEN_STATES = (State.pending_approval, State.scheduled, State.activating, State.active)
ELIGIBILITY_PAUSE = timedelta(seconds=10)
# The expiry's first timer ends this long before the end; the second one, the rest (_sleep_until).
EXPIRY_LEAD = timedelta(seconds=10)
EPOCH = datetime(2000, 1, 1, tzinfo=UTC)


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
        self.end_requested: State | None = None  # the state a cancel, deactivate or lost eligibility ends in
        self.expiry_moved = False
        self.eligibility_checking = False
        self.recheck_eligibility = False
        self.last_eligibility_check: datetime | None = None
        status = ActivationStatus(request_id=info.workflow_id, state=State.validating, requested_at=workflow.now())
        not_decoded = undecodable(raw_request)
        try:
            if not_decoded:
                raise ValueError(not_decoded)
            self.request = ActivationRequest.model_validate(raw_request)
        except ValidationError as error:
            status.violations = violations_from_validation_error(error)
        except ValueError:
            status.violations = [Violation(code="undecodable", message=f"payload: could not be decoded ({not_decoded})")]
        else:
            r = self.request
            status = status.model_copy(
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
        self.status = status
        self.journal = Journal(status, self.run_key, self.request)
        self.gate = Gate(self.journal, self.run_key, info.workflow_id)

    # --- the lifecycle: request -> checks -> approval -> grant -> sleep -> revoke ---

    @workflow.run
    async def run(self, raw_request: Any) -> ActivationStatus:
        self.journal.set_state(State.validating, note="request received")
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
        await self.journal.flush()
        return self.status

    async def _lifecycle(self, request: ActivationRequest) -> None:
        policy = await self._admit(request)
        if policy is None:
            return
        if self.admission.written_at is not None:  # granted with the claim
            await self._grant_and_hold()
            return
        if policy.activation.approval and not await self._await_approval(request, policy):
            return
        if request.start_at and request.start_at > workflow.now():
            self.status.starts_at = request.start_at
            self.journal.set_state(State.scheduled, note=f"starts at {request.start_at.isoformat()}")
            self.journal.record("activation_scheduled", starts_at=request.start_at.isoformat())
            if await self._wait_or_end(request.start_at):
                await self._close(self._ended_as(State.canceled), self.status.end_reason)
                return
        await self._grant_and_hold()

    async def _admit(self, request: ActivationRequest) -> Policy | None:
        """The proof, the checks and the claim, in one local activity (one marker in
        the history). Returns the policy snapshot when the request goes on."""
        data = AdmitInput(request_id=self.status.request_id, run_key=self.run_key, request=request, at=workflow.now())
        try:
            self.admission = await workflow.execute_local_activity_method(AdmissionInterface.admit_request, data, **ADMIT)
        except ACTIVITY_FAILURES as error:
            # Fails closed. The claim, if one was taken, is released.
            await self._close(State.failed, f"admission failed: {failure_message(error)}")
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
        self.journal.set_state(State.pending_approval, note=f"{len(self.status.stages)} stage(s) to approve")
        self.journal.record("activation_pending_approval", approval_deadline=deadline.isoformat())
        ended = await self._wait_or_end(deadline, until=approval.decided)
        if approval.denied():
            await self._close(State.denied, "denied by an approver")
            return False
        if ended:
            await self._close(self._ended_as(State.canceled), self.status.end_reason)
            return False
        if approval.current_stage() is not None:
            await self._close(State.approval_expired, "no decision before the approval deadline")
            return False
        metrics.approved(self.status.requested_at, approval.last_decision_at() or workflow.now())
        return True

    async def _grant_and_hold(self) -> None:
        assert self.admission.duration is not None
        self.journal.set_state(State.activating)
        # Granted by the admission, with the claim (a request that needs no approval
        # and starts now, with the built-in directory), or granted here.
        written_at = self.admission.written_at
        granted_at = self.admission.granted_at if written_at else workflow.now()
        assert granted_at is not None
        self.status.granted_at = granted_at
        expires_at = self.status.expires_at = granted_at + self.admission.duration
        self.granted = True  # from here on, closing revokes (the grant may be partly written)
        # The expiry timer starts with the grant, in the same workflow task. Started
        # once the grant's result came back, it fired late by however long that task
        # waited for a busy worker: half a second when a hundred are granted at once.
        # A local grant runs within the task: the timer counts from when it was written.
        expiry = None if self.admission.grant_locally else self._expiry_timer()
        try:
            if written_at is None:
                # The grant re-checks the claim, eligibility, approvals and policy against the store.
                written_at = await self._grant(self._change(granted_at, for_grant=True))
        except ACTIVITY_FAILURES as error:
            if expiry is not None:
                expiry.cancel()
            refusal = failure_type(error)
            if refusal == ELIGIBILITY_REMOVED:
                await self._close(State.deactivated, ELIGIBILITY_REMOVED)
            else:
                verdict = "refused" if refusal in GRANT_REFUSALS else "failed"
                await self._close(State.failed, f"grant {verdict}: {failure_message(error)}")
            return
        if expiry is None:
            expiry = self._expiry_timer(since=written_at)
        self.journal.set_state(State.active, note=f"expires at {expires_at.isoformat()}")
        metrics.granted(self.status.starts_at or self.status.requested_at, workflow.now())
        # A durable timer that `deactivate` ends early and `extend` moves.
        while True:
            self.expiry_moved = False
            await workflow.wait_condition(partial(self._ended_moved_or_expired, expiry))
            if self.end_requested is not None:
                expiry.cancel()
                await self._close(self._ended_as(State.deactivated), self.status.end_reason)
                return
            if not self.expiry_moved:
                break
            expiry.cancel()
            expiry = self._expiry_timer()
        await self._close(State.expired, "the activation reached its end")

    def _ended_moved_or_expired(self, expiry: asyncio.Task[None]) -> bool:
        return self.end_requested is not None or self.expiry_moved or expiry.done()

    def _expiry_timer(self, since: datetime | None = None) -> asyncio.Task[None]:
        """Durable timers to the activation's current end, counted from now or from
        `since`, a later moment of this same task (a local grant's end, recorded)."""
        assert self.status.expires_at is not None
        start = max(workflow.now(), since or workflow.now())
        return asyncio.create_task(self._sleep_until(self.status.expires_at, start))

    @staticmethod
    async def _sleep_until(end: datetime, start: datetime) -> None:
        """A timer counts from when the server receives it, at the end of the task that
        starts it, and a task that grants waits for a busy worker (a hundred granted at
        once): a timer counted from `start` fired up to a second late. So the first
        timer ends EXPIRY_LEAD early, and the second is counted from the quiet task the
        first one wakes: the end is on time within that task's own few milliseconds."""
        if end - start > 2 * EXPIRY_LEAD:
            await workflow.sleep(end - start - EXPIRY_LEAD)
            start = workflow.now()
        await workflow.sleep(max(end - start, timedelta(0)))

    async def _grant(self, change: AccessChange) -> datetime:
        if self.admission.grant_locally:
            return await workflow.execute_local_activity_method(AccessInterface.grant_access, change, **GRANT_LOCALLY)
        return await workflow.execute_activity_method(AccessInterface.grant_access, change, **GRANT)

    async def _wait_or_end(self, until_time: datetime, until: Callable[[], bool] = lambda: False) -> bool:
        """Wait until `until_time` or `until()`; True when something asked to end the request."""
        timeout = until_time - workflow.now()
        if timeout > timedelta(0):
            try:
                await workflow.wait_condition(lambda: self.end_requested is not None or until(), timeout=timeout)
            except asyncio.TimeoutError:
                pass
        return self.end_requested is not None

    def _ended_as(self, default: State) -> State:
        return self.end_requested or default

    async def _close(self, final: State, reason: str | None) -> None:
        """Revoke when granted, release the claim and end. Retried until it succeeds,
        and shielded so that cancelling the workflow cannot interrupt it."""
        self.status.end_reason = reason
        if self.granted:
            self.journal.set_state(State.revoking, note=reason)
        change = self._change(workflow.now(), final_state=final, reason=reason)
        await asyncio.shield(workflow.start_activity_method(AccessInterface.close_activation, change, **REVOKE))
        self.granted = False
        self._end(final)

    def _end(self, final: State) -> None:
        self.status.ended_at = workflow.now()
        self.journal.set_state(final, note=self.status.end_reason)
        if not self.status.validate_only:  # a dry run is no activation
            metrics.activation_ended(final.value)

    # --- query, signals and update -------------------------------------------

    @workflow.query(name="status")
    def get_status(self, *args: Any) -> ActivationStatus:
        """Arguments, of any kind, are ignored: a query cannot be made to fail a task."""
        return self.status

    # Signal handlers take *args: a signal sent with no payload or with several
    # must be refused, not crash the workflow task (which would retry forever).
    @workflow.signal(name="approve")
    async def approve(self, *args: Any) -> None:
        await self._signal_decision(args, ReviewDecision.approve)

    @workflow.signal(name="deny")
    async def deny(self, *args: Any) -> None:
        await self._signal_decision(args, ReviewDecision.deny)

    async def _signal_decision(self, args: tuple[Any, ...], decision: ReviewDecision) -> None:
        name = decision.value
        payload = self.gate.parse(Decision, args, name)
        if payload is None or self.gate.refused(name, payload.approver_id, lambda: self._review_refusal(payload, decision)):
            return
        if not await self._proven(Action(name), payload.approver_id, payload, name):
            return
        # The request may have moved on while the proof was checked.
        if self.gate.refused(name, payload.approver_id, lambda: self._review_refusal(payload, decision), verified=True):
            return
        self._apply_decision(payload.approver_id, decision, payload.justification)

    @workflow.update(name="review")
    async def review(self, *args: Any) -> ActivationStatus:
        payload = Review.model_validate(args[0])  # the validator admitted exactly one well-formed argument
        refused = await self.gate.proof_refusal(Action.review, payload.approver_id, payload, "review")
        if refused:
            raise ApplicationError(refused[1], type=refused[0], non_retryable=True)
        if self.gate.refused("review", payload.approver_id, lambda: self._review_refusal(payload, payload.decision), True):
            # The state moved between validation and now.
            raise ApplicationError(self.status.events[-1].note or "refused", type="review_refused", non_retryable=True)
        self._apply_decision(payload.approver_id, payload.decision, payload.justification)
        # Answer once the decision has taken effect: the request waits for more
        # decisions, or it has moved on (granted, scheduled or denied).
        approval = self.approval
        assert approval is not None
        await workflow.wait_condition(lambda: not approval.decided() or self.status.state != State.pending_approval)
        return self.status

    @review.validator
    def validate_review(self, *args: Any) -> None:
        """Refuses before anything is written: malformed, no proof, or a decision the
        rules refuse. The proof's signature is checked by the handler's activity."""
        if len(args) != 1:
            raise ValueError(f"malformed payload: expected one argument, got {len(args)}")
        not_decoded = undecodable(args[0])
        if not_decoded:
            raise ValueError(f"malformed payload: could not be decoded ({not_decoded})")
        try:
            payload = Review.model_validate(args[0])
        except ValidationError as error:
            raise ValueError("; ".join(v.message for v in violations_from_validation_error(error))) from None
        if not payload.proof:
            raise ValueError("proof_missing: proof: required, from a front end the workers trust")
        try:
            refusal = self._review_refusal(payload, payload.decision)
        except Exception as error:  # noqa: BLE001 - an unforeseen payload is refused, never a failed task
            refusal = Refusal(NOT_EVALUATED, f"could not be evaluated ({type(error).__name__})")
        if refusal:
            # Typed, so that a front end tells a self-approval (403) from a decided stage (409).
            raise ApplicationError(str(refusal), type=refusal.code, non_retryable=True)

    def _review_refusal(self, payload: Decision | Review, decision: ReviewDecision) -> Refusal | None:
        if self.approval is None:
            return Refusal(NOT_PENDING, "the request is not pending approval")
        pending = self.status.state == State.pending_approval
        at = workflow.now()
        return self.approval.refusal(payload.approver_id, decision, payload.justification, at=at, pending=pending)

    def _apply_decision(self, approver_id: str, decision: ReviewDecision, justification: str | None) -> None:
        assert self.approval is not None
        recorded = self.approval.record(approver_id, decision, justification, at=workflow.now())
        self.journal.event(State.pending_approval, approver_id, f"stage {recorded.stage + 1}: {decision.value}")
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
        stage = str(recorded.stage + 1)
        self.journal.record(
            action, actor=approver_id, ask=recorded.ask_next, stage=stage, justification=justification or "", **facts
        )

    @workflow.signal(name="cancel")
    async def cancel(self, *args: Any) -> None:
        payload = self.gate.parse(Cancel, args, "cancel")
        if payload is None or self.gate.refused("cancel", payload.by, lambda: self._cancel_refusal(payload)):
            return
        if not await self._proven(Action.cancel, payload.by, payload, "cancel"):
            return
        if self.gate.refused("cancel", payload.by, lambda: self._cancel_refusal(payload), verified=True):
            return
        self._request_end(State.canceled, f"canceled by {payload.by}", payload.reason, payload.by, "cancel accepted")

    def _cancel_refusal(self, payload: Cancel) -> Refusal | None:
        if self.request is None or self.status.state not in (State.pending_approval, State.scheduled):
            return Refusal(INVALID_STATE, f"cannot cancel in state {self.status.state.value}")
        return rules.refuse_cancel(
            by=payload.by, requester_id=self.request.principal_id, administrators=self.admission.administrators
        )

    @workflow.signal(name="deactivate")
    async def deactivate(self, *args: Any) -> None:
        payload = self.gate.parse(Deactivate, args, "deactivate")
        if payload is None or self.gate.refused("deactivate", payload.by, lambda: self._deactivate_refusal(payload)):
            return
        if not await self._proven(Action.deactivate, payload.by, payload, "deactivate"):
            return
        if self.gate.refused("deactivate", payload.by, lambda: self._deactivate_refusal(payload), verified=True):
            return
        self._request_end(State.deactivated, f"deactivated by {payload.by}", payload.reason, payload.by, "deactivate accepted")

    def _deactivate_refusal(self, payload: Deactivate) -> Refusal | None:
        granted_at = self.status.granted_at
        if self.request is None or self.status.state != State.active or granted_at is None or self.end_requested:
            return Refusal(INVALID_STATE, f"cannot deactivate in state {self.status.state.value}")
        return rules.refuse_deactivation(
            by=payload.by,
            requester_id=self.request.principal_id,
            administrators=self.admission.administrators,
            granted_at=granted_at,
            at=workflow.now(),
        )

    def _request_end(self, state: State, what: str, reason: str | None, by: str, note: str) -> None:
        self.end_requested = state
        self.status.end_reason = what + (f": {reason}" if reason else "")
        self.journal.event(self.status.state, by, note)

    @workflow.signal(name="extend")
    async def extend(self, *args: Any) -> None:
        payload = self.gate.parse(Extend, args, "extend")
        if payload is None or self.gate.refused("extend", payload.by, lambda: self._extend_refusal(payload)):
            return
        if not await self._proven(Action.extend, payload.by, payload, "extend"):
            return
        if self.gate.refused("extend", payload.by, lambda: self._extend_refusal(payload), verified=True):
            return
        assert self.status.expires_at is not None
        new_end = self.status.expires_at + payload.duration
        # The grant's end moves first: the backstop revokes any grant past its recorded end.
        change = self._change(workflow.now(), reason=payload.justification).model_copy(
            update={"expires_at": new_end, "actor": payload.by}
        )
        await workflow.execute_activity_method(AccessInterface.extend_access, change, **REVOKE)
        if self.status.state != State.active or self.end_requested:  # it ended while the grant moved
            return
        self.status.expires_at = new_end
        self.status.extensions += 1
        self.expiry_moved = True
        self.journal.event(State.active, payload.by, f"extended to {new_end.isoformat()}")

    def _extend_refusal(self, payload: Extend) -> Refusal | None:
        granted_at, expires_at, policy = self.status.granted_at, self.status.expires_at, self.admission.policy
        state_ok = self.status.state == State.active and not self.end_requested
        if self.request is None or not state_ok or granted_at is None or expires_at is None or policy is None:
            return Refusal(INVALID_STATE, f"cannot extend in state {self.status.state.value}")
        return rules.refuse_extension(
            by=payload.by,
            extra=payload.duration,
            justification=payload.justification,
            requester_id=self.request.principal_id,
            approvers=all_approvers(self.admission.stage_deciders),
            administrators=self.admission.administrators,
            settings=policy.activation,
            granted_at=granted_at,
            expires_at=expires_at,
            extensions=self.status.extensions,
        )

    @workflow.signal(name="eligibility_changed")
    async def eligibility_changed(self, *args: Any) -> None:
        """Someone's assignment ended: is this request still eligible? Anyone may ask
        (it carries nothing); the answer comes from the store, never from the sender.
        Checks run one at a time and at most one per ELIGIBILITY_PAUSE; a request that
        arrives meanwhile is answered by one more check after it, never dropped."""
        if self.eligibility_checking or self.request is None or self.status.state not in OPEN_STATES:
            self.recheck_eligibility = self.eligibility_checking
            return
        self.eligibility_checking = True
        try:
            while True:
                self.recheck_eligibility = False
                wait = ELIGIBILITY_PAUSE - (workflow.now() - (self.last_eligibility_check or EPOCH))
                if wait > timedelta(0):
                    await workflow.sleep(wait)
                self.last_eligibility_check = workflow.now()
                change = self._change(workflow.now())
                try:
                    eligible = await workflow.execute_local_activity_method(AccessInterface.still_eligible, change, **CHECK)
                except ACTIVITY_FAILURES as error:
                    # Unanswered (the store is down): asked again after the pause, until answered.
                    workflow.logger.warning("eligibility check failed", extra={"error": failure_message(error)})
                    eligible, self.recheck_eligibility = True, True
                if not eligible or not self.recheck_eligibility or self.status.state not in OPEN_STATES:
                    break
        finally:
            self.eligibility_checking = False
        if not eligible and self.status.state in OPEN_STATES and self.end_requested is None:
            self.end_requested = State.deactivated
            self.status.end_reason = ELIGIBILITY_REMOVED
            self.journal.event(self.status.state, None, "the eligibility this request relied on has ended")

    # --- helpers -------------------------------------------------------------

    async def _proven(self, action: Action, actor: str, payload: Proven, attempted: str) -> bool:
        return await self.gate.proof_refusal(action, actor, payload, attempted) is None

    def _change(
        self, at: datetime, final_state: State | None = None, reason: str | None = None, for_grant: bool = False
    ) -> AccessChange:
        """The input of an access activity. Only the grant re-checks the request and
        its approvals: the others go without them (a smaller task and history)."""
        assert self.request is not None
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
            policy=self.admission.policy,
            policy_version=self.admission.policy_version,
            administrators=self.admission.administrators,
            request=self.request if for_grant else None,
            stages=self.status.stages if for_grant else [],
        )
