"""`Reconcile`: run by a Temporal Schedule (every 5 minutes by default), it takes
away access whose activation or assignment has ended or whose workflow is gone
(terminated, reset by hand), releases claims of vanished requests, and reports
access that the store holds without any source."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from pim.domain.reconcile import ReconcileInput, ReconcileReport


@workflow.defn(name="Reconcile")
class Reconcile:
    @workflow.run
    async def run(self) -> ReconcileReport:
        return await workflow.execute_activity(
            "reconcile_access",
            ReconcileInput(at=workflow.now()),
            result_type=ReconcileReport,
            start_to_close_timeout=timedelta(minutes=4),
            retry_policy=RetryPolicy(
                initial_interval=timedelta(seconds=5), maximum_interval=timedelta(minutes=1), maximum_attempts=5
            ),
        )
