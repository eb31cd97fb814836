"""Metrics of the activities and the notification dispatcher, on the Temporal
runtime's meter, so that they are served on the worker's Prometheus endpoint
beside the SDK's own (`pim worker --metrics-port`). The workflows' metrics are
in workflows/metrics.py. With metrics off, every meter is a no-op."""

from __future__ import annotations

from datetime import UTC, datetime

from temporalio import activity
from temporalio.common import MetricMeter

REVOCATION_LAG = "pim_revocation_lag_seconds"
REVOCATIONS_RETRIED = "pim_revocations_retried"
NOTIFICATIONS_FAILED = "pim_notifications_failed"

BUCKETS: dict[str, list[float]] = {
    REVOCATION_LAG: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600],
}
MAX_ATTEMPT_LABEL = 10  # retries go on forever: attempts beyond this share one label ("10+")


def revocation_done(expires_at: datetime | None) -> None:
    """From the end an activation was due to the end of its revocation (wall clock):
    how late expiry takes effect. Called by the successful close_activation attempt."""
    if expires_at is None:
        return
    lag = max((datetime.now(UTC) - expires_at).total_seconds(), 0.0)
    activity.metric_meter().create_histogram_float(
        REVOCATION_LAG, "From an activation's expiry to its revocation done", "s"
    ).record(lag)


def revocation_attempt() -> None:
    """Counts the retries of close_activation (attempt 2 and later)."""
    attempt = activity.info().attempt
    if attempt > 1:
        label = str(attempt) if attempt < MAX_ATTEMPT_LABEL else f"{MAX_ATTEMPT_LABEL}+"
        activity.metric_meter().create_counter(REVOCATIONS_RETRIED, "close_activation attempts after the first").add(
            1, {"attempt": label}
        )


def notification_failed(meter: MetricMeter, channel: str, gave_up: bool) -> None:
    meter.create_counter(NOTIFICATIONS_FAILED, "Notification deliveries that failed").add(
        1, {"channel": channel, "gave_up": str(gave_up).lower()}
    )


BACKSTOP_WITHOUT_SCHEDULE = "pim_backstop_runs_without_schedule"


def backstop_ran_without_schedule(meter: MetricMeter, schedule_state: str) -> None:
    meter.create_counter(
        BACKSTOP_WITHOUT_SCHEDULE, "Reconcile runs a worker started because the schedule was paused or missing"
    ).add(1, {"schedule": schedule_state})


MFA_LOCKOUTS = "pim_mfa_lockouts"


def mfa_lockout_started(meter: MetricMeter, attempted: str) -> None:
    """A principal's MFA locked after too many wrong codes (pim/identity/totp_check.py)."""
    meter.create_counter(MFA_LOCKOUTS, "Lockouts of a principal's MFA after too many wrong TOTP codes").add(
        1, {"attempted": attempted}
    )
