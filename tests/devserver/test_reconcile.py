"""The reconciler on the real dev server: access whose workflow was terminated
by hand, claims of vanished requests, ended assignments, and access without any
source. The workflows are terminated with the `temporal` CLI, as an operator would."""

from __future__ import annotations

import asyncio
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, State
from pim.domain.reconcile import ReconcileReport
from pim.identity.totp import current_code
from pim.runtime.schedules import RECONCILE_SCHEDULE_ID, ensure_reconcile_schedule
from tests.conftest import running_worker
from tests.polling import eventually, settled

TEMPORAL = str(Path(sys.executable).parent / "temporal")
MEMBER = AccessType.member


async def terminate_with_cli(env, workflow_id: str) -> None:
    process = await asyncio.create_subprocess_exec(
        TEMPORAL,
        "workflow",
        "terminate",
        "--workflow-id",
        workflow_id,
        "--reason",
        "operator test",
        "--address",
        env.client.service_client.config.target_host,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await process.communicate()
    assert process.returncode == 0, err.decode()


async def reconcile(env, pim) -> ReconcileReport:
    return await env.client.execute_workflow(
        "Reconcile", id=f"reconcile/test-{uuid.uuid4().hex[:6]}", task_queue=pim.task_queue, result_type=ReconcileReport
    )


def dev_request(principal: str = "alice") -> ActivationRequest:
    return ActivationRequest(
        group_id="grp-dev", access=MEMBER, principal_id=principal, duration=timedelta(hours=1), justification="deploy release 4.2"
    )


async def test_access_of_a_terminated_activation_is_taken_away(dev_env, demo):
    async with running_worker(dev_env, demo) as pim:
        request_id = await pim.start(dev_request())
        await settled(pim, request_id, State.active)
        await terminate_with_cli(dev_env, request_id)
        assert await demo.has_membership("grp-dev", MEMBER, "alice")  # nobody revoked it: the workflow is gone

        report = await reconcile(dev_env, pim)
        assert [(f.group_id, f.principal_id) for f in report.revoked] == [("grp-dev", "alice")]
        assert "terminated" in report.revoked[0].reason
        assert [(f.group_id, f.principal_id) for f in report.released] == [("grp-dev", "alice")]
        assert not await demo.has_membership("grp-dev", MEMBER, "alice")
        assert await demo.running_activations("grp-dev") == []
        reconciled = [r for r in await demo.audit(principal_id="alice") if r.action == "access_reconciled"]
        assert len(reconciled) == 1 and "terminated" in reconciled[0].details["reason"]

        # alice is not locked out: a new request is granted as usual.
        again = await pim.start(dev_request())
        await settled(pim, again, State.active)
        assert (await reconcile(dev_env, pim)).revoked == []  # a running activation is left alone
        await pim.deactivate(again, "admin", "test over")
        # Closed before its worker goes: the dev server is shared, and a workflow left
        # open would hold alice's grp-dev activation id for the tests that follow.
        assert (await pim.result(again)).state == State.deactivated


async def test_a_request_terminated_while_pending_releases_its_claim(dev_env, demo):
    async with running_worker(dev_env, demo) as pim:
        code = current_code(await demo.mfa_secret("alice"))
        request_id = await pim.start(
            ActivationRequest(
                group_id="grp-ops",
                access=MEMBER,
                principal_id="alice",
                duration=timedelta(hours=1),
                mfa=MfaEvidence(code=code),
                justification="INC-42 database failover",
            )
        )
        await settled(pim, request_id, State.pending_approval)
        await terminate_with_cli(dev_env, request_id)
        report = await reconcile(dev_env, pim)
        assert report.revoked == [] and [f.principal_id for f in report.released] == ["alice"]
        # Its search attributes still say pending_approval; `pim list` does not list it as pending.
        await eventually(  # visibility is eventually consistent
            lambda: pim.list(state="pending_approval", principal_id="alice"),
            until=lambda pending: request_id not in [r.request_id for r in pending],
            what=f"the terminated {request_id} to leave the pending list",
            timeout=10,
            interval=0.1,
        )
        assert await demo.running_activations("grp-ops") == []


async def test_an_ended_assignment_whose_lifecycle_is_gone_is_revoked(dev_env, demo):
    now = datetime.now(UTC)
    assignment_id = await demo.assign(
        "grp-dev", "bob", kind="active", starts_at=now - timedelta(days=2), ends_at=now - timedelta(minutes=1), by="admin"
    )
    assert await demo.has_membership("grp-dev", MEMBER, "bob")
    async with running_worker(dev_env, demo) as pim:
        report = await reconcile(dev_env, pim)
    assert [(f.principal_id, f.source) for f in report.revoked] == [("bob", f"assignment {assignment_id}")]
    assert "assignment ended" in report.revoked[0].reason
    assert not await demo.has_membership("grp-dev", MEMBER, "bob")


async def test_access_without_any_source_is_removed_in_pim_and_reported_outside(dev_env, demo):
    await demo.set_membership("grp-dev", MEMBER, "carol", present=True)  # in PIM: nothing gives it
    await demo.set_membership("grp-sre", MEMBER, "carol", present=True)  # outside PIM: reported only
    async with running_worker(dev_env, demo) as pim:
        report = await reconcile(dev_env, pim)
    assert [(f.group_id, f.principal_id) for f in report.unsourced] == [("grp-dev", "carol")]
    assert [(f.group_id, f.principal_id) for f in report.reported] == [("grp-sre", "carol")]
    assert report.revoked == []
    assert not await demo.has_membership("grp-dev", MEMBER, "carol")
    assert await demo.has_membership("grp-sre", MEMBER, "carol")
    actions = [(r.action, r.group_id) for r in await demo.audit(principal_id="carol")]
    assert ("access_unsourced_removed", "grp-dev") in actions and ("access_unsourced", "grp-sre") in actions


async def test_the_schedule_runs_the_reconciler_at_its_interval(dev_env, demo):
    async with running_worker(dev_env, demo) as pim:
        await ensure_reconcile_schedule(dev_env.client, pim.task_queue, timedelta(minutes=5))
        await ensure_reconcile_schedule(dev_env.client, pim.task_queue, timedelta(minutes=5))  # idempotent
        handle = dev_env.client.get_schedule_handle(RECONCILE_SCHEDULE_ID)
        description = await handle.describe()
        assert description.schedule.spec.intervals[0].every == timedelta(minutes=5)
        await handle.trigger()

        async def scheduled_runs() -> list:
            return [
                w
                async for w in dev_env.client.list_workflows("WorkflowType = 'Reconcile' AND ExecutionStatus = 'Completed'")
                if w.id.startswith("reconcile-")
            ]  # a scheduled run: "<action id>-<time>"

        runs = await eventually(scheduled_runs, what="a completed Reconcile run of the schedule", timeout=10, interval=0.1)
        assert runs, "the triggered schedule ran no Reconcile workflow"
        await handle.delete()
