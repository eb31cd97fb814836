"""Security rules as tests (issue 5, item 6), on the time-skipping server with
the demo tenant: nobody approves their own request by any path, no approval
counts after the deadline or across requests, nobody activates for someone else
or as a group, and a running request keeps the approvers it was admitted with."""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import asynccontextmanager
from datetime import UTC, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError
from temporalio.worker import Worker

from activities.registry import build_activities
from pim.client import PimClient, RPCError
from pim.domain.actors import Action
from pim.domain.models import AccessType, ActivationRequest, Decision, MfaEvidence, ReviewDecision, State
from pim.domain.policy import ActivationSettings, ApprovalStage, Policy
from pim.identity.totp import current_code
from tests.conftest import TEST_PROOFS, TEST_SIGNER, running_worker
from tests.polling import eventually, settled
from tests.workflows.test_approval import (
    JUSTIFICATION,
    after_signal,
    decisions,
    finish,
    is_member,
    refusals,
    request_ops,
    set_ops_approval,
)
from workflows.registry import WORKFLOWS


async def refused_update(pim, rid: str, approver: str, justification: str = "looks right to me") -> str:
    """The `review` update is refused by its validator; returns the reason."""
    with pytest.raises(WorkflowUpdateFailedError) as refused:
        await pim.review(rid, approver, ReviewDecision.approve, justification)
    return str(refused.value.cause)


# --- self-approval, by every path ------------------------------------------------


async def test_the_requester_cannot_approve_by_signal_or_by_update(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo)
        await pim.approve(rid, "alice", "approving my own failover")
        await pim.deny(rid, "alice", "denying my own, to test")
        assert "nobody approves their own request" in await refused_update(pim, rid, "alice")
        st = await after_signal(time_env, pim, rid)
        assert st.state == State.pending_approval and decisions(st) == []
        assert refusals(st, "approve", "alice") == ["approve refused: nobody approves their own request"]
        assert refusals(st, "deny", "alice") == ["deny refused: nobody approves their own request"]
        assert {e.code for e in st.events if e.actor == "alice" and "refused" in (e.note or "")} == {"self_approval"}
        assert not await is_member(demo)


async def test_an_approver_group_containing_the_requester_lets_the_others_decide(time_env, demo):
    await set_ops_approval(demo, (["grp-sre"], 1))  # grp-sre: alice and dave
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo, mfa=None)
        await pim.approve(rid, "alice", "SRE approves, and I am SRE")
        assert "nobody approves their own request" in await refused_update(pim, rid, "alice")
        st = await after_signal(time_env, pim, rid)
        assert st.state == State.pending_approval and decisions(st) == []
        assert refusals(st, "approve", "alice") == ["approve refused: nobody approves their own request"]

        st = await pim.review(rid, "dave", ReviewDecision.approve, "SRE approves the failover")
        assert decisions(st) == [("dave", ReviewDecision.approve, "SRE approves the failover")]
        assert (await settled(pim, rid)).state == State.active and await is_member(demo)


@pytest.mark.parametrize("alias", ["Alice", "ALICE", "BOB", "Bob"])
async def test_an_id_differing_only_by_case_is_another_principal_and_not_an_approver(time_env, demo, alias):
    """Ids are compared exactly: "ALICE" is not alice (so not the requester) and
    "BOB" is not bob (so not the approver); neither is listed, so both are refused."""
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo)
        await pim.approve(rid, alias, "approved under another spelling")
        assert f"{alias} is not an approver of the current stage" in await refused_update(pim, rid, alias)
        st = await after_signal(time_env, pim, rid)
        assert st.state == State.pending_approval and decisions(st) == []
        assert refusals(st, "approve", alias) == [f"approve refused: {alias} is not an approver of the current stage"]
        assert not await is_member(demo)


# --- approvals after the deadline ------------------------------------------------


async def test_an_approval_arriving_after_the_deadline_is_not_applied(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo)
        await time_env.sleep(timedelta(hours=24, minutes=1))
        expired = await settled(pim, rid)
        assert expired.state == State.approval_expired
        with pytest.raises((RPCError, WorkflowUpdateFailedError)):
            await pim.review(rid, "bob", ReviewDecision.approve, "back from leave")
        with pytest.raises(RPCError):  # the workflow has ended: the server refuses the signal
            await pim.approve(rid, "bob", "back from leave")
        assert decisions(await pim.status(rid)) == [] and not await is_member(demo)


@asynccontextmanager
async def worker_on(time_env, store, task_queue: str):
    """A worker without a workflow cache: no sticky queue, so the next worker on the
    task queue gets the pending workflow task at once (the test server holds its
    clock while a task waits, so a sticky queue's timeout would never pass)."""
    async with Worker(
        time_env.client,
        task_queue=task_queue,
        workflows=WORKFLOWS,
        activities=build_activities(store, TEST_PROOFS),
        max_cached_workflows=0,
    ):
        yield PimClient(time_env.client, task_queue, signer=TEST_SIGNER)


async def test_an_approval_sent_after_the_deadline_timer_fired_is_not_applied(time_env, demo):
    """The deadline timer fires while no worker runs; bob's approval is sent after
    it (its history event comes after TimerFired). When a worker comes back, both
    reach the workflow in the same task, the signal handled first: the approval
    came too late and must not grant."""
    task_queue = f"pim-sec-{uuid.uuid4().hex[:8]}"
    async with worker_on(time_env, demo, task_queue) as pim:
        rid = await request_ops(pim, demo)
        deadline = (await pim.status(rid)).approval_deadline
    handle = time_env.client.get_workflow_handle(rid)
    # The server moves to the deadline, fires the timer, and holds its clock until a worker takes the task.
    skipping = asyncio.create_task(time_env.sleep(timedelta(hours=24, minutes=5)))

    async def timers_fired() -> list:
        return [e async for e in handle.fetch_history_events() if e.HasField("timer_fired_event_attributes")]

    fired = await eventually(timers_fired, what="the deadline timer to fire", timeout=10)
    await pim.approve(rid, "bob", "sorry, was on leave")
    signaled = [e async for e in handle.fetch_history_events() if e.HasField("workflow_execution_signaled_event_attributes")]
    assert signaled[-1].event_id > fired[0].event_id
    assert signaled[-1].event_time.ToDatetime(UTC) >= deadline - timedelta(milliseconds=1)

    async with worker_on(time_env, demo, task_queue) as pim:
        await asyncio.wait_for(skipping, timeout=20)
        final = await finish(time_env, pim, rid)
    assert final.state == State.approval_expired, (final.state, decisions(final))
    assert final.granted_at is None and not await is_member(demo)
    assert decisions(final) == []


# --- replay of an old approval -----------------------------------------------------


async def test_an_old_approval_does_not_carry_over_to_a_new_request_under_the_same_id(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        first = await request_ops(pim, demo)
        old_run = (await time_env.client.get_workflow_handle(first).describe()).run_id
        # bob's approval, signed by the front end, sent as the `temporal` CLI would send it.
        old_payload = pim.prove(Decision(approver_id="bob", justification="failover approved"), "bob", Action.approve, first)
        old_payload = old_payload.model_dump(mode="json")
        await time_env.client.get_workflow_handle(first).signal("approve", old_payload)
        approved = await after_signal(time_env, pim, first)
        assert approved.state == State.active
        old_decision = approved.stages[0].decisions[0]
        await pim.deactivate(first, "admin", "failover done")
        # Polled, not awaited as a result: that could let the test server leap years ahead.
        assert (await after_signal(time_env, pim, first)).state == State.deactivated
        await time_env.sleep(timedelta(hours=1))

        # A new request under the same workflow id (the next TOTP step: a code is accepted once).
        code = current_code(await demo.mfa_secret("alice"), time.time() + 30)
        second = await request_ops(pim, demo, mfa=MfaEvidence(code=code))
        assert second == first
        fresh = await pim.status(second)
        assert fresh.state == State.pending_approval and decisions(fresh) == []
        assert not await is_member(demo)

        # Sending to the finished run does nothing; re-sending bob's signed payload from
        # the first request is a replay, refused; only a new approval by bob, now, counts.
        with pytest.raises(RPCError):
            await time_env.client.get_workflow_handle(first, run_id=old_run).signal("approve", old_payload)
        await time_env.client.get_workflow_handle(second).signal("approve", old_payload)
        st = await after_signal(time_env, pim, second)
        assert st.state == State.pending_approval and decisions(st) == []
        assert refusals(st, "approve", "bob") == ["approve refused: proof_replayed: proof: already used"]
        await pim.approve(second, "bob", "failover approved")
        st = await after_signal(time_env, pim, second)
        assert st.state == State.active
        assert decisions(st) == [("bob", ReviewDecision.approve, "failover approved")]
        new_decision = st.stages[0].decisions[0]
        assert new_decision.at >= fresh.requested_at > old_decision.at + timedelta(hours=1)
        assert st.granted_at >= new_decision.at


# --- who may activate --------------------------------------------------------------


async def test_a_user_cannot_activate_for_someone_else_with_their_own_mfa_code(time_env, demo):
    """carol names alice as the principal and proves her own identity (carol's TOTP
    code): MFA is checked against the principal's secret, so it is rejected
    mfa_invalid. For policies without MFA, the workflow has no way to tell who
    sent a request: the caller's identity comes from the deployment (SPEC section
    6), the front-end that authenticates people and is the only one, with the
    workers, to reach the Temporal namespace."""
    async with running_worker(time_env, demo) as pim:
        carols = current_code(await demo.mfa_secret("carol"))
        rid = await pim.start(
            ActivationRequest(
                group_id="grp-ops",
                access=AccessType.member,
                principal_id="alice",
                duration=timedelta(hours=2),
                justification=JUSTIFICATION,
                mfa=MfaEvidence(code=carols),
            )
        )
        final = await finish(time_env, pim, rid)
        assert final.state == State.rejected
        assert [v.code for v in final.violations] == ["mfa_invalid"]
        assert final.granted_at is None and not await is_member(demo)
        assert carols not in final.model_dump_json()


async def test_a_group_cannot_activate_even_where_it_is_eligible(time_env, demo):
    # grp-sre is an eligible member of grp-dev: its members activate, each for themselves.
    async with running_worker(time_env, demo) as pim:
        rid = await pim.start(
            ActivationRequest(
                group_id="grp-dev",
                access=AccessType.member,
                principal_id="grp-sre",
                duration=timedelta(hours=1),
                justification=JUSTIFICATION,
            )
        )
        final = await finish(time_env, pim, rid)
        assert final.state == State.rejected
        assert [v.code for v in final.violations] == ["principal_not_user"]
        assert final.violations[0].message.startswith("principal_id:")
        assert not await demo.has_membership("grp-dev", AccessType.member, "grp-sre")


# --- policy change while pending ----------------------------------------------------


async def test_a_pending_request_keeps_the_approvers_it_was_admitted_with(time_env, demo):
    """The rule: a request is decided under the policy snapshot taken at admission.
    An approver added meanwhile may not decide on it (only later requests see the
    new list); an approver removed meanwhile still may, but the grant re-checks the
    approvals against the policy in force, so that approval grants nothing."""
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo)
        await demo.set_policy(
            "grp-ops",
            AccessType.member,
            Policy(
                activation=ActivationSettings(
                    require_mfa=True, max_duration=timedelta(hours=8), approval=[ApprovalStage(approvers=["carol"])]
                )
            ),
            by="admin",
        )

        assert "carol is not an approver of the current stage" in await refused_update(pim, rid, "carol")
        await pim.approve(rid, "carol", "the new policy names me")
        st = await after_signal(time_env, pim, rid)
        assert st.state == State.pending_approval and decisions(st) == []
        assert st.stages[0].approvers == ["bob"]
        assert refusals(st, "approve", "carol") == ["approve refused: carol is not an approver of the current stage"]

        st = await pim.review(rid, "bob", ReviewDecision.approve, "approved under the policy it was made under")
        assert decisions(st) == [("bob", ReviewDecision.approve, "approved under the policy it was made under")]
        ended = await settled(pim, rid, State.failed)
        assert "policy_stricter" in (ended.end_reason or "") or "now needs" in (ended.end_reason or "")
        assert not await is_member(demo)
