"""Optional OpenTelemetry tracing (PIM_OTEL=console|otlp; off by default).

When on, every client this process makes (the worker's, the CLI's, a service's)
carries Temporal's TracingInterceptor, which the workers of that client inherit:
starting a workflow, each workflow run, signal, update and query, and each
activity become spans, linked across processes through Temporal headers.
`console` prints spans to stderr (stdout stays the CLI's); `otlp` sends them over
OTLP/HTTP to OTEL_EXPORTER_OTLP_ENDPOINT (default http://localhost:4318), with the
other standard OTEL_* variables (OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_HEADERS...).

The OpenTelemetry packages come with the `otel` extra; the product runs without
them as long as PIM_OTEL is off."""

from __future__ import annotations

import os
import sys
from typing import Any

EXTRA_MISSING = (
    "PIM_OTEL={mode}: the OpenTelemetry packages are not installed; "
    "install the otel extra (pip install 'pim-groups[otel]') or unset PIM_OTEL"
)

_provider: Any = None  # the TracerProvider this process installed, to flush at exit


class TracingUnavailable(ValueError):
    """PIM_OTEL asks for what this installation cannot do (a configuration error)."""


def tracing_interceptors(mode: str | None) -> list:
    """The client interceptors for PIM_OTEL: none when off. The provider is made
    once per process and also installed as the global one."""
    global _provider
    if not mode or mode == "off":
        return []
    if _provider is None:
        _provider = build_provider(mode)
        from opentelemetry import trace

        trace.set_tracer_provider(_provider)
    return [interceptor_for(_provider)]


def interceptor_for(provider: Any) -> Any:
    try:
        from temporalio.contrib.opentelemetry import TracingInterceptor
    except ImportError:
        raise TracingUnavailable(EXTRA_MISSING.format(mode="on")) from None
    # Workflows started without a traced caller (the `temporal` CLI, a Schedule) get
    # spans too; after a worker restart such spans may lack their parent.
    return TracingInterceptor(provider.get_tracer("pim"), always_create_workflow_spans=True)


def build_provider(mode: str, exporter: Any = None) -> Any:
    """An SDK TracerProvider exporting as `mode` says (`exporter`: tests pass an in-memory one)."""
    try:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SimpleSpanProcessor
    except ImportError:
        raise TracingUnavailable(EXTRA_MISSING.format(mode=mode)) from None
    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "pim")}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif mode == "console":
        provider.add_span_processor(
            SimpleSpanProcessor(
                ConsoleSpanExporter(  # one line per span, beside the logs
                    out=sys.stderr, formatter=lambda span: span.to_json(indent=None) + "\n"
                )
            )
        )
    elif mode == "otlp":
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        except ImportError:
            raise TracingUnavailable(EXTRA_MISSING.format(mode=mode)) from None
        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    else:
        raise TracingUnavailable(f"PIM_OTEL={mode}: expected console, otlp or off")
    return provider


def flush(timeout_millis: int = 5000) -> None:
    """Send the spans still buffered: the CLI leaves with os._exit (pim/process.py),
    which skips the provider's own exit hook."""
    if _provider is not None:
        try:
            _provider.force_flush(timeout_millis)
        except Exception:  # noqa: BLE001 - an unreachable collector must not change the exit code
            pass
