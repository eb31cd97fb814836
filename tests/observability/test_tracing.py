"""OpenTelemetry tracing (PIM_OTEL): an activation's workflow and activities
become spans of one trace, started by the client that made the request."""

from __future__ import annotations

import sys
from datetime import timedelta

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from pim.domain.models import AccessType, ActivationRequest, State
from pim.runtime import tracing
from pim.runtime.temporal import find_binary, register_search_attributes
from tests.conftest import running_worker
from tests.polling import settled


async def test_an_activation_is_one_trace(demo):
    exporter = InMemorySpanExporter()
    provider = tracing.build_provider("console", exporter=exporter)
    # The client carries the interceptor; the worker made from it inherits it.
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
        interceptors=[tracing.interceptor_for(provider)],
    )
    try:
        await register_search_attributes(env.client, "default")
        async with running_worker(env, demo) as pim:
            rid = await pim.start(
                ActivationRequest(
                    group_id="grp-dev",
                    access=AccessType.member,
                    principal_id="alice",
                    duration=timedelta(hours=1),
                    justification="deploy the 1.4 hotfix",
                )
            )
            await settled(pim, rid, State.active)
            await pim.deactivate(rid, "admin", "test over")
            status = await settled(pim, rid, State.deactivated)
            assert status.state == State.deactivated
    finally:
        await env.shutdown()

    spans = exporter.get_finished_spans()
    names = {span.name for span in spans}
    assert {
        "StartWorkflow:GroupActivation",
        "RunWorkflow:GroupActivation",
        # Admission grants a request that needs no approval, with its claim.
        "RunActivity:admit_request",
        "RunActivity:close_activation",
        "HandleSignal:deactivate",
        "SignalWorkflow:deactivate",
    } <= names, names
    root = next(span for span in spans if span.name == "StartWorkflow:GroupActivation")
    activation = [span for span in spans if span.context.trace_id == root.context.trace_id]
    assert {"RunActivity:admit_request", "RunActivity:close_activation", "RunWorkflow:GroupActivation"} <= {
        span.name for span in activation
    }
    admission = next(span for span in activation if span.name == "RunActivity:admit_request")
    assert admission.attributes["temporalWorkflowID"] == rid


def test_off_means_no_interceptor():
    assert tracing.tracing_interceptors("off") == [] and tracing.tracing_interceptors(None) == []


def test_a_clear_error_without_the_otel_extra(monkeypatch):
    monkeypatch.setattr(tracing, "_provider", None)
    for name in [n for n in sys.modules if n == "opentelemetry" or n.startswith("opentelemetry.")]:
        monkeypatch.setitem(sys.modules, name, None)  # as if the extra were not installed
    with pytest.raises(tracing.TracingUnavailable, match=r"otel extra"):
        tracing.tracing_interceptors("otlp")
    assert tracing._provider is None
