"""On the real dev server (`start_local`): the `review` update and its validator,
search attributes, and the command line driving a request end to end."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio.client import WorkflowUpdateFailedError

from pim.client import PimClient
from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, State
from pim.identity.totp import current_code
from tests.conftest import CLI_SETTINGS, running_worker
from tests.polling import eventually, settled

PIM = str(Path(sys.executable).parent / "pim")


def ops_request(code: str, principal: str = "alice") -> ActivationRequest:
    return ActivationRequest(
        group_id="grp-ops",
        access=AccessType.member,
        principal_id=principal,
        duration=timedelta(hours=2),
        justification="INC-42 database failover",
        mfa=MfaEvidence(code=code),
    )


async def test_review_update_refuses_before_writing_and_approves(dev_env, demo):
    async with running_worker(dev_env, demo) as pim:
        request_id = await pim.start(ops_request(current_code(await demo.mfa_secret("alice"))))
        await settled(pim, request_id, State.pending_approval, timeout=10)

        refusals = {
            "alice": ("approve", "ok", "own request", "self_approval"),
            "carol": ("approve", "ok", "not an approver", "not_an_approver"),  # not listed for the stage
            "bob": ("approve", None, "justification", "justification_required"),  # approvers must justify
        }
        for approver, (decision, justification, reason, code) in refusals.items():
            with pytest.raises(WorkflowUpdateFailedError) as refused:
                await pim.review(request_id, approver, decision, justification)
            assert reason in str(refused.value.cause)
            assert refused.value.cause.type == code  # what a front end maps (403, 409, 400)
        status = await pim.status(request_id)
        assert status.state == State.pending_approval
        assert status.stages[0].decisions == []  # the validator refused before anything was written

        status = await pim.review(request_id, "bob", "approve", "approved for INC-42")
        assert status.state in (State.activating, State.active)
        assert [d.approver_id for d in status.stages[0].decisions] == ["bob"]
        await settled(pim, request_id, State.active, timeout=10)
        assert await demo.has_membership("grp-ops", AccessType.member, "alice")

        with pytest.raises(WorkflowUpdateFailedError) as refused:
            await pim.review(request_id, "bob", "deny", "too late")
        assert "not pending" in str(refused.value.cause) and refused.value.cause.type == "not_pending"
        await pim.deactivate(request_id, "admin", "test over")
        final = await pim.result(request_id)
        assert final.state == State.deactivated
        assert not await demo.has_membership("grp-ops", AccessType.member, "alice")


async def test_search_attributes_list_pending_requests(dev_env, demo):
    async with running_worker(dev_env, demo) as pim:
        await demo.assign("grp-ops", "dave", kind="eligible", by="admin")
        alice = await pim.start(ops_request(current_code(await demo.mfa_secret("alice"))))
        dave = await pim.start(ops_request(current_code(await demo.mfa_secret("dave")), "dave"))
        for request_id in (alice, dave):
            await settled(pim, request_id, State.pending_approval, timeout=10)

        async def listed_pending() -> dict:
            return {r.request_id: r for r in await pim.list(state="pending_approval", group_id="grp-ops")}

        pending = await eventually(  # visibility is eventually consistent
            listed_pending,
            until=lambda listed: {alice, dave} <= set(listed),
            what="both requests in the pending list",
            timeout=10,
            interval=0.1,
        )
        assert pending[dave].principal_id == "dave" and pending[dave].access == "member"
        assert [
            r.request_id for r in await pim.list(state="pending_approval", principal_id="alice") if r.request_id in (alice, dave)
        ] == [alice]
        another_deployment = PimClient(dev_env.client, task_queue=f"{pim.task_queue}-another")  # same namespace
        assert await another_deployment.list(state="pending_approval", group_id="grp-ops") == []
        for request_id in (alice, dave):
            await pim.cancel(request_id, "admin", "test over")
            assert (await pim.result(request_id)).state == State.canceled
        await eventually(
            lambda: pim.list(state="pending_approval"),
            until=lambda listed: not {alice, dave} & {r.request_id for r in listed},
            what="the canceled requests to leave the pending list",
            timeout=10,
            interval=0.1,
        )


async def run_cli(env: dict, *args: str) -> tuple[int, str, str]:
    """The CLI in a subprocess, without blocking the loop the worker runs on."""
    process = await asyncio.create_subprocess_exec(
        PIM, *args, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, out.decode(), err.decode()


async def test_cli_request_approve_status_members(dev_env, demo):
    async with running_worker(dev_env, demo) as pim:
        env = {
            **os.environ,
            **CLI_SETTINGS,
            "PIM_TEMPORAL_ADDRESS": dev_env.client.service_client.config.target_host,
            "PIM_TASK_QUEUE": pim.task_queue,
            "PIM_DATABASE_URL": demo.url,
        }

        code, out, _ = await run_cli(env, "mfa", "code", "alice")
        assert code == 0 and out.strip().isdigit()
        code, out, err = await run_cli(
            env,
            "request",
            "grp-ops",
            "--as",
            "alice",
            "--duration",
            "2h",
            "--justification",
            "INC-42 database failover",
            "--mfa-code",
            out.strip(),
            "--wait",
        )
        assert code == 0, err
        request_id = out.splitlines()[0].split(":")[0]
        assert request_id == "activation/grp-ops/member/alice"
        assert "pending_approval" in out

        code, _, err = await run_cli(env, "approve", request_id, "--as", "alice", "--justification", "me")
        assert code == 1 and "nobody approves their own request" in err
        code, out, err = await run_cli(env, "approve", request_id, "--as", "bob", "--justification", "ok for INC-42")
        assert code == 0, err
        assert ": active" in out

        code, out, _ = await run_cli(env, "status", request_id, "--json")
        status = json.loads(out)
        assert status["state"] == "active" and status["requested_duration"] == "PT2H"
        assert "mfa" not in out and status["stages"][0]["decisions"][0]["approver_id"] == "bob"

        code, out, _ = await run_cli(env, "members", "grp-ops", "--json")
        members = {m["principal_id"]: m for m in json.loads(out)["members"]}
        assert [s["kind"] for s in members["alice"]["sources"]] == ["activation"]
        assert [s["kind"] for s in members["carol"]["sources"]] == ["assignment"]

        code, _, err = await run_cli(env, "status", "activation/grp-ops/member/nobody")
        assert code == 1 and err.startswith("error:")
        await pim.deactivate(request_id, "admin", "test over")
        assert (await pim.result(request_id)).state == State.deactivated


async def test_a_request_being_granted_is_listed_by_its_state(dev_env, demo):
    # `activating` is a state a request passes through: its PimState stays `validating`
    # (the one it came from), and listing by `activating` reads the status of each candidate.
    async with running_worker(dev_env, demo, directory_faults="add:fail:1000") as pim:
        request = ActivationRequest(
            group_id="grp-dev",
            access=AccessType.member,
            principal_id="alice",
            duration=timedelta(hours=1),
            justification="deploy hotfix 1.2.3",
        )
        request_id = await pim.start(request)
        await settled(pim, request_id, State.activating, timeout=10)  # the grant fails and is retried
        activating = await eventually(
            lambda: pim.list(state="activating", group_id="grp-dev"),
            until=lambda listed: request_id in {r.request_id for r in listed},
            what="the request in the activating list",
            timeout=10,
            interval=0.1,
        )
        assert [r.state for r in activating if r.request_id == request_id] == ["activating"]
        listed = {r.request_id: r for r in await pim.list(state="validating", group_id="grp-dev")}
        assert listed[request_id].state == "validating" and listed[request_id].running
        assert request_id not in {r.request_id for r in await pim.list(state="revoking", group_id="grp-dev")}
        # Cancelled, the grant under way ends failed, and whatever it wrote is revoked.
        await pim.temporal.get_workflow_handle(request_id).cancel()
        assert (await pim.result(request_id)).state == State.failed
        assert not await demo.has_membership("grp-dev", AccessType.member, "alice")
