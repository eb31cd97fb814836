"""The Temporal runtime that serves Prometheus metrics (`--metrics-port`,
PIM_METRICS_PORT): the SDK's own metrics (temporal_*) and ours (pim_*, emitted
through the same runtime's meter), on http://HOST:PORT/metrics.

The runtime binds the port when it is created, and every client made with it
(so every worker of that client) reports there: one per process."""

from __future__ import annotations

from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig

from pim.runtime import metrics as activity_metrics
from workflows import metrics as workflow_metrics

BUCKETS = {**workflow_metrics.BUCKETS, **activity_metrics.BUCKETS}


class MetricsUnavailable(RuntimeError):
    pass


def metrics_runtime(port: int, host: str = "0.0.0.0") -> Runtime:
    """A runtime exporting to Prometheus on host:port; fails when the port is taken."""
    try:
        return Runtime(
            telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"{host}:{port}", histogram_bucket_overrides=BUCKETS))
        )
    except Exception as error:  # the core reports a taken port as a plain RuntimeError
        raise MetricsUnavailable(f"metrics: cannot serve Prometheus on {host}:{port}: {error}") from error
