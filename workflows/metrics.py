"""Metrics the workflows emit, through `workflow.metric_meter()`.

Replay-safe: the meter records nothing while a workflow replays, so a workflow
rebuilt from its history (cache eviction, another worker) counts each end once.
Metrics add no command and no history event, so emitting them needs no patch.
This module imports only the workflow API: it runs inside the sandbox."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow

ACTIVATIONS_ENDED = "pim_activations_ended"
TIME_TO_APPROVAL = "pim_time_to_approval_seconds"
TIME_TO_GRANT = "pim_time_to_grant_seconds"

# Prometheus buckets (seconds): approvals wait for people, grants for the directory.
BUCKETS: dict[str, list[float]] = {
    TIME_TO_APPROVAL: [10, 30, 60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400],
    TIME_TO_GRANT: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600, 14400, 86400],
}


def activation_ended(state: str) -> None:
    workflow.metric_meter().create_counter(ACTIVATIONS_ENDED, "Activations that ended, by final state").add(1, {"state": state})


def approved(requested_at: datetime, approved_at: datetime) -> None:
    workflow.metric_meter().create_histogram_float(
        TIME_TO_APPROVAL, "From the request to the approval of its last stage", "s"
    ).record(_seconds(requested_at, approved_at))


def granted(since: datetime, granted_at: datetime) -> None:
    workflow.metric_meter().create_histogram_float(
        TIME_TO_GRANT, "From the request (or its scheduled start) to access granted", "s"
    ).record(_seconds(since, granted_at))


def _seconds(start: datetime, end: datetime) -> float:
    return max((end - start).total_seconds(), 0.0)
