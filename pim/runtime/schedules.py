"""The reconciler's Temporal Schedule: created once, kept at the configured interval;
and a run on demand."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import TYPE_CHECKING

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleIntervalSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleSpec,
    ScheduleUpdate,
    ScheduleUpdateInput,
)

if TYPE_CHECKING:
    from pim.domain.reconcile import ReconcileReport

RECONCILE_SCHEDULE_ID = "pim-reconcile"


def reconcile_schedule(task_queue: str, every: timedelta) -> Schedule:
    return Schedule(
        action=ScheduleActionStartWorkflow("Reconcile", id="reconcile", task_queue=task_queue),
        spec=ScheduleSpec(intervals=[ScheduleIntervalSpec(every=every)]),
        # A slow run is never doubled: the next one waits for the following tick.
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP),
    )


async def ensure_reconcile_schedule(client: Client, task_queue: str, every: timedelta) -> None:
    """Idempotent: every worker may call it at start."""
    wanted = reconcile_schedule(task_queue, every)
    try:
        await client.create_schedule(RECONCILE_SCHEDULE_ID, wanted)
    except ScheduleAlreadyRunningError:

        async def keep_current(_: ScheduleUpdateInput) -> ScheduleUpdate:
            return ScheduleUpdate(schedule=wanted)

        await client.get_schedule_handle(RECONCILE_SCHEDULE_ID).update(keep_current)


async def schedule_state(client: Client, task_queue: str) -> str:
    """`running`, `paused` or `missing`: whether the reconcile schedule still ticks
    for this task queue (one that starts its runs elsewhere does not count)."""
    from temporalio.service import RPCError, RPCStatusCode

    try:
        description = await client.get_schedule_handle(RECONCILE_SCHEDULE_ID).describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return "missing"
        raise
    action = description.schedule.action
    if not isinstance(action, ScheduleActionStartWorkflow) or action.task_queue != task_queue:
        return "missing"
    return "paused" if description.schedule.state.paused else "running"


async def keep_the_backstop_running(client: Client, task_queue: str, every: timedelta, on_missed: Callable[[str], None]) -> None:
    """Forever (until cancelled): while the schedule is paused or missing, run the
    `Reconcile` workflow from here, every `every`, and say so (`on_missed`). One run
    at a time across workers: they share the workflow id."""
    import asyncio

    from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy

    from pim.runtime.logging import get_logger

    log = get_logger("pim.backstop")
    while True:
        await asyncio.sleep(every.total_seconds())
        try:
            state = await schedule_state(client, task_queue)
            if state == "running":
                continue
            log.warning("the reconcile schedule is not running: this worker runs the backstop itself", schedule=state)
            on_missed(state)
            await client.execute_workflow(
                "Reconcile",
                "worker",
                id=f"reconcile/worker-backstop/{task_queue}",
                task_queue=task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            )
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - the watch goes on; the next tick tries again
            log.error("backstop run failed", error=str(error))


async def reconcile_now(client: Client, task_queue: str) -> ReconcileReport:
    """Run the reconciler at once (`pim reconcile`, `POST /api/reconcile`) and return
    what it found; the schedule's runs go on as before."""
    from datetime import UTC, datetime

    from pim.domain.reconcile import ReconcileReport

    return await client.execute_workflow(
        "Reconcile",
        "manual",
        id=f"reconcile/manual-{datetime.now(UTC).strftime('%Y%m%dT%H%M%S%f')}",
        task_queue=task_queue,
        result_type=ReconcileReport,
    )
