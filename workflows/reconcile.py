"""`Reconcile`: run by a Temporal Schedule (every 5 minutes by default), it takes
away access whose activation or assignment has ended or whose workflow is gone
(terminated, reset by hand), releases claims of vanished requests, and reports
access that the store holds without any source."""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from activities.interfaces import ReconcileInterface
    from pim.domain.reconcile import ReconcileInput, ReconcileReport

from workflows.options import RECONCILE

TRIGGERS = ("schedule", "worker", "manual")


@workflow.defn(name="Reconcile")
class Reconcile:
    @workflow.run
    async def run(self, trigger: Any = "schedule") -> ReconcileReport:
        """`trigger`: "schedule", or "worker" when a worker runs it because the schedule
        is paused or missing (pim/runtime/schedules.py), or "manual" (`pim reconcile`)."""
        data = ReconcileInput(at=workflow.now(), trigger=trigger if trigger in TRIGGERS else "schedule")
        return await workflow.execute_activity_method(ReconcileInterface.reconcile_access, data, **RECONCILE)
