"""`AssignmentLifecycle`: one time-bound eligible or active assignment, from its
start to its end. It takes effect at its start, sends reminders 14 days and 1
day before the end, and ends exactly at the end; `extend` moves the end and
`remove` ends it now.

It trusts only the store: it reads the assignment from there, ends it only when
the store says it is over, and accepts a change only when a proven administrator
sent it and the store already holds it (the operation writes first; see
pim/operations/assignments.py). A workflow started by hand for an assignment
that does not exist, was removed, or has another window ends without touching
anything."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.interfaces import AssignmentInterface, AuditInterface, ProofInterface
    from pim.domain.actors import Action, ActorCheck, ActorVerdict
    from pim.domain.assignments import (
        AssignmentChange,
        AssignmentEnd,
        AssignmentLoaded,
        AssignmentLookup,
        AssignmentPlan,
        AssignmentStart,
        AssignmentStatus,
    )
    from pim.domain.models import undecodable, violations_from_validation_error
    from pim.domain.status import AuditRecord

from workflows.failures import ACTIVITY_FAILURES, failure_message
from workflows.options import RECORD, REVOKE, VERIFY

REMINDERS_BEFORE_END = (timedelta(days=14), timedelta(days=1))


@workflow.defn(name="AssignmentLifecycle")
class AssignmentLifecycle:
    @workflow.init
    def __init__(self, raw_start: Any) -> None:
        # Any input is accepted here and judged below: a payload that does not decode
        # must end the workflow, not fail its task forever.
        try:
            self.start: AssignmentStart | None = AssignmentStart.model_validate(raw_start)
        except ValidationError:
            self.start = None
        start = self.start or AssignmentStart(assignment_id="?", starts_at=workflow.now(), ends_at=workflow.now())
        self.plan: AssignmentPlan | None = None
        self.removal: AssignmentChange | None = None
        self.window_moved = False
        self.ending = False
        self.checks = 0
        self.reminded: set[str] = set()  # "<end>/<days before>": an extension arms new reminders
        self.records: list[workflow.ActivityHandle[None]] = []
        self.status = AssignmentStatus(
            assignment_id=start.assignment_id, state="loading", starts_at=start.starts_at, ends_at=start.ends_at
        )

    @workflow.run
    async def run(self, raw_start: Any) -> AssignmentStatus:
        start = self.start
        if start is None:
            reason = "malformed input: expected an assignment id and its window"
            self._audit_refusal("assignment_lifecycle", "", reason)
            return await self._refused(reason)
        # The store's window, whatever the input says: an extension may have been written
        # before this first load (the operation writes the store, then tells the workflow).
        loaded = await self._load(first=True)
        if loaded.plan is None:  # audited by the activity
            return await self._refused(loaded.refusal)
        self.plan = loaded.plan
        self.status.starts_at, self.status.ends_at = loaded.plan.starts_at, loaded.plan.ends_at
        if loaded.removed:
            self._audit_refusal("assignment_lifecycle", "", "the assignment was removed")
            return await self._refused("the assignment was removed")
        self.status.kind, self.status.state = self.plan.kind, "scheduled"
        try:
            await self._live()
        except asyncio.CancelledError:
            pass  # the store decides: a cancelled workflow ends nothing the store still holds
        await workflow.wait_condition(workflow.all_handlers_finished)
        await asyncio.gather(*self.records, return_exceptions=True)
        return self.status

    async def _live(self) -> None:
        if await self._wait_until(lambda: self._plan().starts_at):
            await self._end()
            return
        event = AssignmentEnd(plan=self._plan(), at=workflow.now())
        if not await workflow.execute_activity_method(AssignmentInterface.assignment_took_effect, event, **REVOKE):
            reason = "the store no longer holds this assignment as planned"
            self._audit_refusal("assignment_lifecycle", "", reason)
            self._finish("refused", reason)
            return
        self.status.state = "active"
        while True:
            removed = await self._wait_until(self._next_moment)
            if not removed and workflow.now() < self._plan().ends_at:
                self._send_due_reminders()
                continue
            if await self._end():
                return
            # The store says it is not over: its window moved (an extension on its way). Read it again.
            await self._reload()

    def _plan(self) -> AssignmentPlan:
        assert self.plan is not None
        return self.plan

    async def _load(
        self, starts_at: datetime | None = None, ends_at: datetime | None = None, first: bool = False
    ) -> AssignmentLoaded:
        assert self.start is not None
        lookup = AssignmentLookup(
            workflow_id=workflow.info().workflow_id,
            assignment_id=self.start.assignment_id,
            starts_at=starts_at,
            ends_at=ends_at,
            at=workflow.now(),
            audit_refusal=first,
        )
        return await workflow.execute_activity_method(AssignmentInterface.load_assignment, lookup, **REVOKE)

    async def _reload(self) -> None:
        """Take the window the store holds now (an extension written there, not yet told)."""
        loaded = await self._load()
        if loaded.plan is not None and loaded.plan.ends_at != self._plan().ends_at:
            self._moved_to(loaded.plan.ends_at)
        else:  # nothing new yet: look again a little later rather than spin
            await workflow.sleep(timedelta(seconds=30))

    def _next_moment(self) -> datetime:
        due = [t for t in self._reminder_times().values() if t > workflow.now()]
        return min([*due, self._plan().ends_at])

    def _reminder_times(self) -> dict[str, datetime]:
        """Reminders that fall after the start and have not been sent."""
        plan, times = self._plan(), {}
        for before in REMINDERS_BEFORE_END:
            key = f"{plan.ends_at.isoformat()}/{before.days}"
            moment = plan.ends_at - before
            if key not in self.reminded and moment > plan.starts_at:
                times[key] = moment
        return times

    def _send_due_reminders(self) -> None:
        plan = self._plan()
        for key, moment in self._reminder_times().items():
            if moment <= workflow.now():
                self.reminded.add(key)
                self.status.reminders_sent.append(workflow.now())
                record = AuditRecord(
                    at=workflow.now(),
                    action="assignment_expiring",
                    actor=plan.created_by,
                    group_id=plan.group_id,
                    access=plan.access,
                    principal_id=plan.principal_id,
                    details={"assignment_id": plan.assignment_id, "ends_at": plan.ends_at.isoformat()},
                    dedupe_key=f"{plan.assignment_id}:{key}:reminder",
                )
                self.records.append(workflow.start_activity_method(AuditInterface.record_event, record, **RECORD))

    async def _wait_until(self, moment: Callable[[], datetime]) -> bool:
        """Wait until `moment()` (re-read when the window moves); True when removed."""
        while True:
            self.window_moved = False
            timeout = moment() - workflow.now()
            if timeout > timedelta(0):
                try:
                    await workflow.wait_condition(lambda: self.removal is not None or self.window_moved, timeout=timeout)
                except asyncio.TimeoutError:
                    pass
            if self.removal is not None:
                return True
            if not self.window_moved:
                return False

    async def _end(self) -> bool:
        """End when the store says so; False when it does not (nothing was touched)."""
        self.ending = True
        removal = self.removal
        event = AssignmentEnd(
            plan=self._plan(),
            at=workflow.now(),
            removed_by=removal.by if removal else None,
            reason=removal.reason if removal else "the assignment reached its end",
        )
        # Shielded: cancelling the workflow must not interrupt the revocation.
        ended = await asyncio.shield(workflow.start_activity_method(AssignmentInterface.assignment_end, event, **REVOKE))
        self.ending = False
        if ended:
            self._finish("removed" if removal else "expired", event.reason)
        self.removal = None if not ended else removal
        return ended

    async def _refused(self, reason: str | None) -> AssignmentStatus:
        self._finish("refused", reason)
        await asyncio.gather(*self.records, return_exceptions=True)
        return self.status

    def _finish(self, state: str, reason: str | None) -> AssignmentStatus:
        self.status.state = state  # type: ignore[assignment]  # one of AssignmentStatus's states
        self.status.ended_at, self.status.end_reason = workflow.now(), reason
        return self.status

    def _moved_to(self, ends_at: datetime) -> None:
        self.plan = self._plan().model_copy(update={"ends_at": ends_at})
        self.status.ends_at = ends_at
        self.window_moved = True

    @workflow.query(name="status")
    def get_status(self, *args: Any) -> AssignmentStatus:
        """Arguments, of any kind, are ignored: a query cannot be made to fail a task."""
        return self.status

    @workflow.update(name="extend")
    async def extend(self, raw: Any) -> AssignmentStatus:
        change = AssignmentChange.model_validate(raw)  # the validator admitted it
        await self._require_proven(Action.extend_assignment, change)
        await self._require_stored(change)
        assert change.ends_at is not None
        self._moved_to(change.ends_at)
        return self.status

    @extend.validator
    def validate_extend(self, raw: Any) -> None:
        change = _change(raw)
        self._require_open()
        if not change.proof:
            raise ValueError("proof_missing: proof: required, from a front end the workers trust")
        # Equal is a no-op, not a refusal: the store is written before the update is sent,
        # so a lifecycle that first read the store after that write already holds this end.
        if change.ends_at is None or change.ends_at < self._plan().ends_at:
            raise ValueError("ends_at: must be after the current end")

    @workflow.update(name="remove")
    async def remove(self, raw: Any) -> AssignmentStatus:
        change = AssignmentChange.model_validate(raw)  # the validator admitted it
        await self._require_proven(Action.remove_assignment, change)
        await self._require_stored(change, removed=True)
        if self.removal is None and self.status.ended_at is None:
            self.removal = change
        await workflow.wait_condition(lambda: self.status.ended_at is not None)
        return self.status

    @remove.validator
    def validate_remove(self, raw: Any) -> None:
        change = _change(raw)
        self._require_open()
        if not change.proof:
            raise ValueError("proof_missing: proof: required, from a front end the workers trust")

    def _require_open(self) -> None:
        if self.plan is None or self.status.ended_at is not None or self.removal is not None or self.ending:
            raise ValueError(f"the assignment is {'ending' if self.ending else self.status.state}")

    async def _require_proven(self, action: Action, change: AssignmentChange) -> None:
        """The administrator's proof, checked (and used up) before the change counts."""
        self.checks += 1
        info = workflow.info()
        check = ActorCheck(
            proof=change.proof,
            actor=change.by,
            action=action,
            target=info.workflow_id,
            payload=change.signed_part(),
            use_key=f"{info.workflow_id}#{info.run_id}:{self.checks}",
        )
        try:
            verdict = await workflow.execute_local_activity_method(ProofInterface.verify_actor, check, **VERIFY)
        except ACTIVITY_FAILURES as error:  # fails closed
            verdict = ActorVerdict.refused("proof_unverifiable", failure_message(error))
        if not verdict.accepted:
            code = verdict.code or "proof_invalid"
            self._audit_refusal(action.value, change.by, f"{code}: {verdict.reason}", code=code)
            raise ApplicationError(f"{code}: {verdict.reason}", type=code, non_retryable=True)

    async def _require_stored(self, change: AssignmentChange, removed: bool = False) -> None:
        """The operation writes the change to the store before it tells the workflow:
        a change the store does not hold is refused."""
        plan = self._plan()
        loaded = await (self._load() if removed else self._load(plan.starts_at, change.ends_at))
        if loaded.plan is not None and loaded.removed == removed:
            return
        attempted = "remove_assignment" if removed else "extend_assignment"
        reason = f"the store does not hold this change: {loaded.refusal or 'the assignment is not ' + ('removed' if removed else 'live')}"
        self._audit_refusal(attempted, change.by, reason, code="change_not_stored", verified=True)
        raise ApplicationError(reason, type="change_not_stored", non_retryable=True)

    def _audit_refusal(self, attempted: str, claimed: str, reason: str, code: str = "", verified: bool = False) -> None:
        """Unless its proof was verified, the actor of a refused change is only claimed."""
        plan, start = self.plan, self.start
        details = {
            "attempted": attempted,
            "reason": reason,
            "claimed_actor": claimed,
            "verified": str(verified).lower(),
            "assignment_id": start.assignment_id if start else "",
            "workflow_id": workflow.info().workflow_id,
        }
        if code:
            details["code"] = code
        self.checks += 1
        record = AuditRecord(
            at=workflow.now(),
            action="refused",
            actor=claimed if verified else "unverified",
            group_id=plan.group_id if plan else None,
            access=plan.access if plan else None,
            principal_id=plan.principal_id if plan else None,
            details=details,
            dedupe_key=f"{workflow.info().run_id}:{self.checks}:refused",
        )
        self.records.append(workflow.start_activity_method(AuditInterface.record_event, record, **RECORD))


def _change(raw: Any) -> AssignmentChange:
    """An update's payload, or ValueError naming what is wrong (the update is refused
    before anything is written; the workflow task never fails on it)."""
    not_decoded = undecodable(raw)
    if not_decoded:
        raise ValueError(f"malformed payload: could not be decoded ({not_decoded})")
    try:
        return AssignmentChange.model_validate(raw)
    except ValidationError as error:
        raise ValueError("; ".join(v.message for v in violations_from_validation_error(error))) from None
