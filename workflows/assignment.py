"""`AssignmentLifecycle`: one time-bound eligible or active assignment, from its
start to its end. It takes effect at its start, sends reminders 14 days and 1
day before the end, and ends exactly at the end; `extend` moves the end and
`remove` ends it now. Who may do either is checked before the update is sent
(pim.operations)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.interfaces import AssignmentInterface, AuditInterface
    from pim.domain.assignments import AssignmentChange, AssignmentEnd, AssignmentPlan, AssignmentStatus, AssignmentWindow
    from pim.domain.status import AuditRecord

from workflows.options import RECORD, REVOKE

REMINDERS_BEFORE_END = (timedelta(days=14), timedelta(days=1))


@workflow.defn(name="AssignmentLifecycle")
class AssignmentLifecycle:
    @workflow.init
    def __init__(self, plan: AssignmentPlan) -> None:
        self.plan = plan
        self.removal: AssignmentChange | None = None
        self.window_moved = False
        self.ending = False
        self.reminded: set[str] = set()  # "<end>/<days before>": an extension arms new reminders
        self.records: list[workflow.ActivityHandle[None]] = []
        self.status = AssignmentStatus(
            assignment_id=plan.assignment_id, kind=plan.kind, state="scheduled", starts_at=plan.starts_at, ends_at=plan.ends_at
        )

    @workflow.run
    async def run(self, plan: AssignmentPlan) -> AssignmentStatus:
        try:
            if not await self._wait_until(lambda: self.plan.starts_at):
                event = AssignmentEnd(plan=self.plan, at=workflow.now())
                await workflow.execute_activity_method(AssignmentInterface.assignment_took_effect, event, **REVOKE)
                self.status.state = "active"
                while not await self._wait_until(self._next_moment):
                    if workflow.now() >= self.plan.ends_at:
                        break
                    self._send_due_reminders()
        except asyncio.CancelledError:
            self.removal = self.removal or AssignmentChange(by="system", reason="workflow cancelled")
        await self._end()
        await workflow.wait_condition(workflow.all_handlers_finished)
        await asyncio.gather(*self.records, return_exceptions=True)
        return self.status

    def _next_moment(self) -> datetime:
        due = [t for t in self._reminder_times().values() if t > workflow.now()]
        return min([*due, self.plan.ends_at])

    def _reminder_times(self) -> dict[str, datetime]:
        """Reminders that fall after the start and have not been sent."""
        times = {}
        for before in REMINDERS_BEFORE_END:
            key = f"{self.plan.ends_at.isoformat()}/{before.days}"
            moment = self.plan.ends_at - before
            if key not in self.reminded and moment > self.plan.starts_at:
                times[key] = moment
        return times

    def _send_due_reminders(self) -> None:
        for key, moment in self._reminder_times().items():
            if moment <= workflow.now():
                self.reminded.add(key)
                self.status.reminders_sent.append(workflow.now())
                self.records.append(
                    workflow.start_activity_method(
                        AuditInterface.record_event,
                        AuditRecord(
                            at=workflow.now(),
                            action="assignment_expiring",
                            actor=self.plan.created_by,
                            group_id=self.plan.group_id,
                            access=self.plan.access,
                            principal_id=self.plan.principal_id,
                            details={"assignment_id": self.plan.assignment_id, "ends_at": self.plan.ends_at.isoformat()},
                            dedupe_key=f"{self.plan.assignment_id}:{key}:reminder",
                        ),
                        **RECORD,
                    )
                )

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

    async def _end(self) -> None:
        self.ending = True
        removal = self.removal
        event = AssignmentEnd(
            plan=self.plan,
            at=workflow.now(),
            removed_by=removal.by if removal else None,
            reason=removal.reason if removal else "the assignment reached its end",
        )
        # Shielded: cancelling the workflow must not interrupt the revocation.
        await asyncio.shield(workflow.start_activity_method(AssignmentInterface.assignment_end, event, **REVOKE))
        self.status.state = "removed" if removal else "expired"
        self.status.ended_at, self.status.end_reason = workflow.now(), event.reason

    @workflow.query(name="status")
    def get_status(self) -> AssignmentStatus:
        return self.status

    @workflow.update(name="extend")
    async def extend(self, change: AssignmentChange) -> AssignmentStatus:
        assert change.ends_at is not None
        # Move the end first, so that the old end's timer cannot end the assignment
        # while the new window is being written.
        self.plan = self.plan.model_copy(update={"ends_at": change.ends_at})
        self.status.ends_at = change.ends_at
        self.window_moved = True
        await workflow.execute_activity_method(
            AssignmentInterface.assignment_window_changed,
            AssignmentWindow(
                assignment_id=self.plan.assignment_id,
                starts_at=self.plan.starts_at,
                ends_at=change.ends_at,
                by=change.by,
                at=workflow.now(),
            ),
            **REVOKE,
        )
        return self.status

    @extend.validator
    def validate_extend(self, change: AssignmentChange) -> None:
        if self.status.state not in ("scheduled", "active") or self.removal is not None or self.ending:
            raise ValueError(f"the assignment is {'ending' if self.ending else self.status.state}")
        if change.ends_at is None or change.ends_at <= self.plan.ends_at:
            raise ValueError("ends_at: must be after the current end")

    @workflow.update(name="remove")
    async def remove(self, change: AssignmentChange) -> AssignmentStatus:
        self.removal = change
        await workflow.wait_condition(lambda: self.status.ended_at is not None)
        return self.status

    @remove.validator
    def validate_remove(self, change: AssignmentChange) -> None:
        if self.status.ended_at is not None or self.removal is not None or self.ending:
            raise ValueError(f"the assignment is already {self.status.state}")
