"""The reconciler's Temporal Schedule: created once, kept at the configured interval."""

from __future__ import annotations

from datetime import timedelta

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
