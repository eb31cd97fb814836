"""What a running process needs: settings, logging, tracing, metrics, the
Temporal connection and payload codec, the reconcile schedule, health checks and
a clean process exit."""
