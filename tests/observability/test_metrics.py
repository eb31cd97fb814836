"""Prometheus metrics (`--metrics-port`): the Temporal runtime's own and ours
(pim_*), scraped over HTTP from the runtime's endpoint on a free loopback port.

The dev server runs activations end to end in real time: one granted without
approval, one approved by a person, both deactivated by an administrator (an
activation lasts at least 5 minutes), and one rejected. Expiry and a revocation
that is retried need time to pass: that test runs on the time-skipping server."""

from __future__ import annotations

import uuid
from datetime import timedelta

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from pim.client import PimClient
from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, State
from pim.identity.totp import current_code
from pim.runtime.temporal import connect, find_binary, register_search_attributes
from tests.conftest import TEST_PROOFS, TEST_SIGNER, running_worker
from tests.observability.conftest import free_port, sample, scrape_until
from tests.polling import settled
from worker.app import serving
from worker.telemetry import metrics_runtime

WHY = "deploy the 1.4 hotfix to staging"


def dev_request(principal: str, justification: str | None = WHY) -> ActivationRequest:
    return ActivationRequest(
        group_id="grp-dev",
        access=AccessType.member,
        principal_id=principal,
        duration=timedelta(hours=1),
        justification=justification,
    )


async def test_worker_metrics_on_the_dev_server(dev_env, demo):
    port = free_port()
    runtime = metrics_runtime(port, "127.0.0.1")
    # A client made with the metrics runtime: its worker reports to that endpoint.
    client = await connect(dev_env.client.service_client.config.target_host, dev_env.client.namespace, runtime=runtime)
    task_queue = f"pim-metrics-{uuid.uuid4().hex[:8]}"
    async with serving(client, demo, task_queue, proofs=TEST_PROOFS):
        pim = PimClient(client, task_queue, signer=TEST_SIGNER)
        granted = await pim.start(dev_request("alice"))  # grp-dev: no approval
        approved = await pim.start(
            ActivationRequest(
                group_id="grp-ops",
                access=AccessType.member,
                principal_id="alice",
                duration=timedelta(hours=2),
                justification="INC-42 database failover",
                mfa=MfaEvidence(code=current_code(await demo.mfa_secret("alice"))),
            )
        )
        rejected = await pim.start(dev_request("dave", justification=None))  # justification required

        await settled(pim, approved, State.pending_approval)
        await pim.approve(approved, "bob", "approved for INC-42")
        for request_id in (granted, approved):
            await settled(pim, request_id, State.active)
            await pim.deactivate(request_id, "admin", "test over")  # an administrator may, in the first 5 minutes
            assert (await pim.result(request_id)).state == State.deactivated
        assert (await pim.result(rejected)).state == State.rejected

    text = await scrape_until(
        port,
        lambda t: (
            sample(t, "pim_activations_ended", state="rejected") == 1
            and sample(t, "pim_activations_ended", state="deactivated") == 2
        ),
    )
    assert sample(text, "pim_activations_ended", state="rejected") == 1
    assert sample(text, "pim_activations_ended", state="deactivated") == 2
    assert sample(text, "pim_activations_ended", state="expired") is None
    assert sample(text, "pim_time_to_grant_seconds_count") == 2
    assert sample(text, "pim_time_to_approval_seconds_count") == 1
    assert 0 < sample(text, "pim_time_to_approval_seconds_sum") < 60
    # Our workflow metrics carry the worker's attributes; the SDK's own are on the same endpoint.
    assert sample(text, "pim_time_to_grant_seconds_count", task_queue=task_queue, workflow_type="GroupActivation") == 2
    assert sample(text, "temporal_workflow_completed", task_queue=task_queue) >= 3
    assert sample(text, "temporal_request") > 0
    assert sample(text, "pim_revocation_lag_seconds_count") is None  # nothing expired


async def test_expiry_and_retried_revocation(demo):
    port = free_port()
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
        runtime=metrics_runtime(port, "127.0.0.1"),
    )
    try:
        await register_search_attributes(env.client, "default")
        # The first two revocations fail: close_activation succeeds on its third attempt.
        async with running_worker(env, demo, directory_faults="remove:fail:2") as pim:
            request_id = await pim.start(dev_request("alice"))
            await settled(pim, request_id, State.active)
            await env.sleep(timedelta(hours=1))  # moved with sleep: awaiting the result races the retries
            status = await settled(
                pim, request_id, State.expired, env=env, interval=timedelta(seconds=5), timeout=timedelta(seconds=500)
            )
            assert status.state == State.expired, [e.note for e in status.events]
            assert not await demo.has_membership("grp-dev", AccessType.member, "alice")
    finally:
        await env.shutdown()

    text = await scrape_until(port, lambda t: sample(t, "pim_revocation_lag_seconds_count") == 1)
    assert sample(text, "pim_revocation_lag_seconds_count") == 1  # recorded by the attempt that succeeded
    assert sample(text, "pim_revocations_retried", attempt="2") == 1
    assert sample(text, "pim_revocations_retried", attempt="3") == 1
    assert sample(text, "pim_revocations_retried", attempt="1") is None
    assert sample(text, "pim_activations_ended", state="expired") == 1
    assert sample(text, "pim_time_to_grant_seconds_count") == 1
