"""Where a revocation's lag goes, read from each workflow's own history: from its
`expires_at` to the timer firing, to the workflow task that handles it starting,
to the revoking activity being scheduled, to that activity starting, and (from
the benchmark's watch) to the membership row being gone. Used by
bench/revocation_lag.py for the first batch of the product and of the floor."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType

from bench.common import gather_limited, percentiles

PHASES = ("timer fired", "task started", "activity scheduled", "activity started", "row gone")


async def phases(client, workflow_ids: list[str], expires_at: list[float], gone: list[float | None]) -> dict:
    """p50/p99 of each phase's end, in seconds after expires_at, over the workflows."""
    histories = await gather_limited((client.get_workflow_handle(w).fetch_history() for w in workflow_ids), 20)
    seen: dict[str, list[float]] = {p: [] for p in PHASES}
    for history, expiry, vanished in zip(histories, expires_at, gone):
        marks = _marks(history.events)
        if marks is None:
            continue
        for name, at in zip(PHASES, [*marks, vanished]):
            if at is not None:
                seen[name].append(at - expiry)
    return {name: {k: v for k, v in percentiles(values).items() if k in ("n", "p50", "p99")} for name, values in seen.items()}


def _marks(events) -> tuple[float, float, float, float] | None:
    """Times of the last timer fired, the next workflow task started, the next activity
    scheduled and its start; None when the history has no such sequence."""

    def at(event) -> float:
        return event.event_time.seconds + event.event_time.nanos / 1e9

    fired = [i for i, e in enumerate(events) if e.event_type == EventType.EVENT_TYPE_TIMER_FIRED]
    if not fired:
        return None
    start = fired[-1]
    task = next((e for e in events[start:] if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED), None)
    scheduled_index = next(
        (i for i, e in enumerate(events) if i > start and e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED), None
    )
    if task is None or scheduled_index is None:
        return None
    scheduled = events[scheduled_index]
    started = next(
        (
            e
            for e in events[scheduled_index:]
            if e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_STARTED
            and e.activity_task_started_event_attributes.scheduled_event_id == scheduled.event_id
        ),
        None,
    )
    if started is None:
        return None
    return at(events[start]), at(task), at(scheduled), at(started)
