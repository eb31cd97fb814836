"""`pim_mfa_lockouts`: a lockout of a principal's MFA after five wrong codes is
counted once, by the admission activity that started it."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, State
from pim.identity.totp import current_code
from pim.runtime.temporal import find_binary, register_search_attributes
from tests.conftest import running_worker
from tests.observability.conftest import free_port, sample, scrape_until
from worker.telemetry import metrics_runtime


async def test_a_lockout_is_counted_once(demo, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PIM_MFA_SEAL_KEY", raising=False)
    port = free_port()
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=find_binary("temporal-test-server"),
        data_converter=pydantic_data_converter,
        runtime=metrics_runtime(port, "127.0.0.1"),
    )
    try:
        await register_search_attributes(env.client, "default")
        async with running_worker(env, demo) as pim:
            good = current_code(await demo.mfa_secret("alice"))
            wrong = f"{(int(good) + 1) % 10**6:06d}"
            for attempt in range(6):  # the sixth is refused unchecked: no second lockout
                rid = await pim.start(
                    ActivationRequest(
                        group_id="grp-ops",
                        access=AccessType.member,
                        principal_id="alice",
                        duration=timedelta(hours=1),
                        justification="INC-42 database failover",
                        mfa=MfaEvidence(code=wrong),
                    )
                )
                status = await asyncio.wait_for(pim.result(rid), timeout=15)
                assert status.state == State.rejected
                assert [v.code for v in status.violations] == ["mfa_locked" if attempt == 5 else "mfa_invalid"]
    finally:
        await env.shutdown()

    text = await scrape_until(port, lambda t: sample(t, "pim_mfa_lockouts") == 1)
    assert sample(text, "pim_mfa_lockouts", attempted="request") == 1
