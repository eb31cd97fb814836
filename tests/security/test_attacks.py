"""The attacks of issue 13, each tried as an attacker who reaches Temporal (or runs
a client) but holds no trusted signing key: every one is refused and audited, and
nobody's access changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.client import WorkflowUpdateFailedError

from pim.client import PimClient
from pim.domain.actors import Action
from pim.domain.assignments import AssignmentChange, AssignmentStatus, assignment_workflow_id
from pim.domain.models import AccessType, Decision, ReviewDecision, State
from pim.identity.proofs import (
    PROOF_EXPIRED,
    PROOF_INVALID,
    PROOF_MISMATCH,
    PROOF_MISSING,
    SigningKey,
    prove,
)
from pim.operations.assignments import create_assignment
from tests.conftest import TEST_SIGNER, running_worker, signed
from tests.polling import eventually
from tests.workflows.test_approval import after_signal, decisions, request_ops
from tests.workflows.test_assignment_lifecycle import Clock, until_started

MEMBER, OWNER = AccessType.member, AccessType.owner
# The same issuer and key id as the trusted test front end, and another key: a forger's.
FORGER = SigningKey.generate(TEST_SIGNER.issuer, TEST_SIGNER.key_id)


async def refused_lines(demo, request_id: str) -> list[tuple[str | None, str, str]]:
    """(actor, claimed actor, code) of the refusals audited against a request."""
    rows = [r for r in await demo.audit(request_id=request_id) if r.action == "refused"]
    return [(r.actor, r.details.get("claimed_actor", ""), r.details.get("code", "")) for r in rows]


async def is_member(demo, group: str = "grp-ops", principal: str = "alice", access=MEMBER) -> bool:
    return await demo.has_membership(group, access, principal)


# --- approving, denying and ending as someone else --------------------------------


async def test_approving_as_bob_without_bobs_proof_is_refused_by_every_path(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo)
        attacker = PimClient(time_env.client, pim.task_queue)  # no key at all
        forger = PimClient(time_env.client, pim.task_queue, signer=FORGER)

        # The update: refused before anything is written (no proof), or by the proof check.
        with pytest.raises(WorkflowUpdateFailedError) as missing:
            await attacker.review(rid, "bob", ReviewDecision.approve, "approved for INC-42")
        assert PROOF_MISSING in str(missing.value.cause)
        with pytest.raises(WorkflowUpdateFailedError) as forged:
            await forger.review(rid, "bob", ReviewDecision.approve, "approved for INC-42")
        assert PROOF_INVALID in str(forged.value.cause)
        # The signal, with no proof and with a forged one, as the `temporal` CLI would send it.
        await attacker.approve(rid, "bob", "approved for INC-42")
        await forger.approve(rid, "bob", "approved for INC-42")

        status = await after_signal(time_env, pim, rid)
        assert status.state == State.pending_approval and decisions(status) == []
        assert not await is_member(demo)
        # Audit lines are written by activities running side by side (the two signals reach
        # the workflow together): each refusal must be there, in whichever order it landed.
        assert sorted(await refused_lines(demo, rid)) == sorted(
            [("unverified", "bob", PROOF_INVALID), ("unverified", "bob", PROOF_MISSING), ("unverified", "bob", PROOF_INVALID)]
        )
        assert not [r for r in await demo.audit(request_id=rid) if r.action == "request_approved"]

        # bob himself, through the trusted front end, still decides.
        await pim.approve(rid, "bob", "approved for INC-42")
        assert (await after_signal(time_env, pim, rid)).state == State.active and await is_member(demo)
        await pim.deactivate(rid, "admin", "test over")


async def test_ending_someone_elses_access_as_admin_without_a_proof_is_refused(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo)
        await pim.approve(rid, "bob", "approved for INC-42")
        assert (await after_signal(time_env, pim, rid)).state == State.active

        attacker = PimClient(time_env.client, pim.task_queue)
        await attacker.deactivate(rid, "admin", "bye")
        await PimClient(time_env.client, pim.task_queue, signer=FORGER).deactivate(rid, "admin", "bye")
        status = await after_signal(time_env, pim, rid)
        assert status.state == State.active and await is_member(demo)
        assert sorted(line[2] for line in await refused_lines(demo, rid)) == sorted([PROOF_MISSING, PROOF_INVALID])
        await pim.deactivate(rid, "admin", "test over")
        assert (await after_signal(time_env, pim, rid)).state == State.deactivated


def approval(target: str, **overrides) -> dict:
    """bob's approval, proven by the test front end unless `overrides` say otherwise."""
    payload = Decision(approver_id="bob", justification="approved for INC-42")
    return signed(payload, overrides.get("actor", "bob"), overrides.get("action", Action.approve), overrides.get("to", target))


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("missing", PROOF_MISSING),
        ("expired", PROOF_EXPIRED),
        ("wrong key", PROOF_INVALID),
        ("another target", PROOF_MISMATCH),
        ("another action", PROOF_MISMATCH),
        ("another actor", PROOF_MISMATCH),
        ("altered after signing", PROOF_MISMATCH),
    ],
)  # a replayed proof: tests/security/test_security_rules.py (an old approval sent to the next request)
async def test_each_bad_proof_is_refused_with_its_code(time_env, demo, case, code):
    async with running_worker(time_env, demo) as pim:
        rid = await request_ops(pim, demo)
        handle = time_env.client.get_workflow_handle(rid)
        payload: dict
        if case == "missing":
            payload = Decision(approver_id="bob", justification="approved for INC-42").model_dump(mode="json")
        elif case == "expired":
            old = datetime.now(UTC) - timedelta(minutes=3)
            payload = prove(TEST_SIGNER, Decision(approver_id="bob", justification="approved for INC-42"), "bob", "approve", rid)
            payload = payload.model_copy(
                update={
                    "proof": TEST_SIGNER.sign(actor="bob", action="approve", target=rid, payload=payload.signed_part(), now=old)
                }
            ).model_dump(mode="json")
        elif case == "wrong key":
            payload = prove(FORGER, Decision(approver_id="bob", justification="approved for INC-42"), "bob", "approve", rid)
            payload = payload.model_dump(mode="json")
        elif case == "another target":
            payload = approval(rid, to="activation/grp-ops/member/carol")
        elif case == "another action":
            payload = approval(rid, action=Action.deny)
        elif case == "another actor":
            payload = {**approval(rid, actor="dave"), "approver_id": "bob"}
        else:
            payload = {**approval(rid), "justification": "something else entirely"}  # altered after signing
        await handle.signal("approve", payload)
        status = await after_signal(time_env, pim, rid)
        assert status.state == State.pending_approval and decisions(status) == []
        assert (await refused_lines(demo, rid))[-1][2] == code
        assert not await is_member(demo)


# --- forged and altered assignments ------------------------------------------------


async def test_a_forged_assignment_workflow_grants_nothing(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        now = await time_env.get_current_time()
        far = "2199-01-01T00:00:00Z"
        alice = next(a for a in await demo.assignments("grp-ops") if a.principal_id == "alice")
        forged = {
            # carol owner of the role-assignable grp-ops until 2199, in the old plan shape
            "assignment/asg-forged-1": {
                "assignment_id": "asg-forged-1",
                "group_id": "grp-ops",
                "access": "owner",
                "principal_id": "carol",
                "kind": "active",
                "starts_at": now.isoformat(),
                "ends_at": far,
                "created_by": "admin",
            },
            # mallory, who does not exist, a member
            "assignment/asg-forged-2": {"assignment_id": "asg-forged-2", "starts_at": now.isoformat(), "ends_at": far},
            # a real assignment under another workflow id, and with another window
            "assignment/evil": {"assignment_id": alice.id, "starts_at": now.isoformat(), "ends_at": far},
            # nothing that decodes
            "assignment/asg-forged-3": {"oops": True},
        }
        for workflow_id, payload in forged.items():
            handle = await time_env.client.start_workflow(
                "AssignmentLifecycle", payload, id=workflow_id, task_queue=pim.task_queue, result_type=AssignmentStatus
            )
            final = await eventually(
                lambda handle=handle: handle.query("status", result_type=AssignmentStatus),
                until=lambda status: status.ended_at is not None,
                what=f"{workflow_id} to end",
            )
            assert final.state == "refused", (workflow_id, final)
        assert not await is_member(demo, principal="carol", access=OWNER)
        assert not await demo.has_membership("grp-ops", MEMBER, "mallory")
        refused = [
            r for r in await demo.audit() if r.action == "refused" and r.details.get("attempted") == "assignment_lifecycle"
        ]
        assert {r.details["workflow_id"] for r in refused} >= {
            "assignment/asg-forged-1",
            "assignment/asg-forged-2",
            "assignment/evil",
        }
        assert all(r.actor == "unverified" for r in refused)
        assert not [r for r in await demo.audit() if r.action == "assignment_started"]


async def test_extending_an_assignment_behind_the_policys_back_is_refused(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        clock = Clock(time_env)
        await clock.sync()
        from pim.operations import AdminContext

        ctx = AdminContext(demo, "admin", temporal=time_env.client, task_queue=pim.task_queue, clock=clock, signer=TEST_SIGNER)
        aid = await create_assignment(
            ctx,
            "grp-dev",
            "carol",
            access=MEMBER,
            kind="eligible",
            duration=timedelta(days=30),
            justification="covering the release",
        )
        before = await until_started(time_env, aid)
        handle = time_env.client.get_workflow_handle(assignment_workflow_id(aid))
        far = datetime(2199, 1, 1, tzinfo=UTC)
        unproven = AssignmentChange(by="admin", ends_at=far)
        with pytest.raises(WorkflowUpdateFailedError) as missing:
            await handle.execute_update("extend", unproven, result_type=AssignmentStatus)
        assert PROOF_MISSING in str(missing.value.cause)
        # Proven, even: the store does not hold that end, so the workflow does not either.
        proven = prove(TEST_SIGNER, unproven, "admin", Action.extend_assignment.value, handle.id)
        with pytest.raises(WorkflowUpdateFailedError) as not_stored:
            await handle.execute_update("extend", proven, result_type=AssignmentStatus)
        assert "store does not hold" in str(not_stored.value.cause)

        row = await demo.assignment(aid)
        assert row is not None and row.ends_at == before.ends_at
        assert (await handle.query("status", result_type=AssignmentStatus)).ends_at == before.ends_at

        # The proven administrator is named; the change the store does not hold is what was refused.
        # (The workflow audits without waiting: the line lands a moment after the refusal.)
        async def refusals() -> list:
            rows = [r for r in await demo.audit() if r.action == "refused" and r.details.get("assignment_id") == aid]
            return [(r.actor, r.details["code"]) for r in rows]

        assert await eventually(refusals, what="the refusal's audit line") == [("admin", "change_not_stored")]
        await handle.terminate("test over")


# --- access follows eligibility ------------------------------------------------------


async def carol_eligible_for_dev(time_env, demo, pim):
    """carol made eligible for grp-dev (no approval there) by admin; returns (ctx, clock, assignment id)."""
    from pim.operations import AdminContext

    clock = Clock(time_env)
    await clock.sync()
    ctx = AdminContext(demo, "admin", temporal=time_env.client, task_queue=pim.task_queue, clock=clock, signer=TEST_SIGNER)
    aid = await create_assignment(
        ctx, "grp-dev", "carol", access=MEMBER, kind="eligible", duration=timedelta(days=30), justification="release duty"
    )
    await until_started(time_env, aid)
    return ctx, clock, aid


def dev_request(**overrides):
    from pim.domain.models import ActivationRequest

    fields = dict(
        group_id="grp-dev", access=MEMBER, principal_id="carol", duration=timedelta(hours=2), justification="deploy hotfix 1.2.3"
    )
    return ActivationRequest(**{**fields, **overrides})


@pytest.mark.parametrize("when", ["active", "scheduled"])
async def test_removing_the_eligibility_ends_the_activation_that_relied_on_it(time_env, demo, when):
    from pim.operations.assignments import remove_assignment
    from tests.polling import settled

    async with running_worker(time_env, demo) as pim:
        ctx, clock, aid = await carol_eligible_for_dev(time_env, demo, pim)
        await clock.sleep(timedelta(minutes=6))  # past the first 5 minutes, when removal is allowed
        start_at = await time_env.get_current_time() + timedelta(hours=1) if when == "scheduled" else None
        rid = await pim.start(dev_request(start_at=start_at))
        status = await settled(pim, rid)
        assert status.state == State(when), status.violations
        assert await is_member(demo, "grp-dev", "carol") is (when == "active")

        await remove_assignment(ctx, aid, reason="carol left the release rota")
        ended = await eventually(lambda: pim.status(rid), until=lambda s: s.state.terminal, what=f"{rid} to end", env=time_env)
        assert ended.state == State.deactivated and ended.end_reason == "eligibility_removed"
        assert ended.granted_at is None if when == "scheduled" else ended.granted_at is not None
        assert not await is_member(demo, "grp-dev", "carol")
        assert not [
            g for g in await demo.live_grants("grp-dev", MEMBER, await time_env.get_current_time()) if g.principal_id == "carol"
        ]


async def test_leaving_the_group_that_made_someone_eligible_ends_their_activation(time_env, demo):
    """Nesting: alice may activate grp-dev as an active member of grp-sre; when her
    membership of grp-sre is removed, her grp-dev activation ends."""
    from pim.operations import AdminContext
    from pim.operations.assignments import remove_assignment
    from tests.polling import settled

    async with running_worker(time_env, demo) as pim:
        clock = Clock(time_env)
        await clock.sync()
        await clock.sleep(timedelta(minutes=6))  # past the first 5 minutes of the seeded membership
        ctx = AdminContext(demo, "admin", temporal=time_env.client, task_queue=pim.task_queue, clock=clock, signer=TEST_SIGNER)
        rid = await pim.start(dev_request(principal_id="alice"))
        assert (await settled(pim, rid)).state == State.active
        sre = next(a for a in await demo.assignments("grp-sre") if a.principal_id == "alice")
        await remove_assignment(ctx, sre.id, reason="moved teams")
        ended = await eventually(lambda: pim.status(rid), until=lambda s: s.state.terminal, what=f"{rid} to end", env=time_env)
        assert (ended.state, ended.end_reason) == (State.deactivated, "eligibility_removed")
        assert not await is_member(demo, "grp-dev", "alice")


# --- replaying an ended activation by resetting it ----------------------------------


async def test_resetting_an_ended_activation_at_any_point_never_grants_again(dev_env, demo):
    import uuid

    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.enums.v1 import EventType
    from temporalio.api.workflowservice.v1 import ResetWorkflowExecutionRequest

    from tests.polling import settled

    client = dev_env.client
    async with running_worker(dev_env, demo) as pim:
        rid = await request_ops(pim, demo)
        await pim.approve(rid, "bob", "approved for INC-42")
        assert (await settled(pim, rid, State.active)).granted_at is not None
        await pim.deactivate(rid, "admin", "failover done")
        assert (await pim.result(rid)).state == State.deactivated
        handle = client.get_workflow_handle(rid)
        original = (await handle.describe()).run_id
        history = await handle.fetch_history()
        points = [e.event_id for e in history.events if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED]
        assert len(points) >= 3  # after admission, after the approval, after the grant, ...

        for point in points:
            reset = await client.workflow_service.reset_workflow_execution(
                ResetWorkflowExecutionRequest(
                    namespace=client.namespace,
                    workflow_execution=WorkflowExecution(workflow_id=rid, run_id=original),
                    reason="replaying an old approval",
                    workflow_task_finish_event_id=point,
                    request_id=str(uuid.uuid4()),
                )
            )
            run = client.get_workflow_handle(rid, run_id=reset.run_id)
            status = await eventually(
                lambda run=run: run.query("status"),
                until=lambda s: s["state"] not in ("validating", "activating", "revoking"),
                what=f"the run reset at event {point} to settle",
            )
            assert not await is_member(demo), f"reset at event {point} ({status['state']}) granted access"
            await _stop(run)
        granted = [r for r in await demo.audit(request_id=rid) if r.action == "access_granted"]
        assert len(granted) == 1  # the original grant only
        assert not await is_member(demo)
        assert await demo.claims(principal_id="alice") == []


# --- the backstop ------------------------------------------------------------------


async def test_the_backstop_revokes_a_terminated_activation_with_the_schedule_paused(dev_env, demo):
    """An attacker terminates an activation and pauses the reconcile schedule: the
    worker runs the backstop itself, and the access goes within seconds."""
    from pim.runtime.schedules import RECONCILE_SCHEDULE_ID, ensure_reconcile_schedule
    from tests.polling import settled

    async with running_worker(dev_env, demo, backstop_every=timedelta(seconds=1), backstop_grace=timedelta(seconds=1)) as pim:
        await ensure_reconcile_schedule(dev_env.client, pim.task_queue, timedelta(hours=1))
        schedule = dev_env.client.get_schedule_handle(RECONCILE_SCHEDULE_ID)
        await schedule.pause(note="an attacker stops the backstop")
        rid = await pim.start(dev_request(principal_id="alice"))
        try:
            assert (await settled(pim, rid, State.active)).state == State.active
            await dev_env.client.get_workflow_handle(rid).terminate("an attacker cuts the timer")
            # Unsourced: membership nobody granted, in a PIM-enabled group (removed) and outside PIM (reported).
            await demo.set_membership("grp-dev", MEMBER, "bob", present=True)
            await demo.set_membership("grp-sre", MEMBER, "bob", present=True)

            await eventually(
                lambda: is_member(demo, "grp-dev", "alice"),
                until=lambda held: not held,
                timeout=20,
                what="the terminated activation's access to be revoked",
            )
            await eventually(
                lambda: is_member(demo, "grp-dev", "bob"),
                until=lambda held: not held,
                timeout=20,
                what="the unsourced membership to be removed",
            )
            assert await is_member(demo, "grp-sre", "bob")  # outside PIM: reported, left alone
            expected = {
                ("access_reconciled", "alice", "grp-dev"),
                ("access_unsourced_removed", "bob", "grp-dev"),
                ("access_unsourced", "bob", "grp-sre"),
            }

            async def audited() -> set:
                return {(r.action, r.principal_id, r.group_id) for r in await demo.audit() if r.actor == "reconciler"}

            await eventually(audited, until=lambda lines: expected <= lines, what="the backstop's audit lines")
        finally:
            await schedule.delete()
            await _stop(dev_env.client.get_workflow_handle(rid))


async def test_the_backstop_revokes_a_grant_past_its_end_whatever_its_workflow_says(dev_env, demo):
    """No reconcile schedule for this worker's task queue: the worker runs the backstop itself."""
    from tests.polling import settled

    async with running_worker(dev_env, demo, backstop_every=timedelta(seconds=1), backstop_grace=timedelta(seconds=1)) as pim:
        rid = await pim.start(dev_request(principal_id="dave"))
        try:
            assert (await settled(pim, rid, State.active)).state == State.active
            # The grant's recorded end is in the past, while its workflow still runs (as a stuck one would).
            now = datetime.now(UTC)
            grant = next(g for g in await demo.live_grants("grp-dev", MEMBER, now) if g.principal_id == "dave")
            await demo.set_grant_end("activation", grant.source_id, now - timedelta(minutes=1))
            await eventually(
                lambda: is_member(demo, "grp-dev", "dave"),
                until=lambda held: not held,
                timeout=20,
                what="the overdue grant to be revoked",
            )

            # The membership goes first, then the audit line is written.
            async def reconciled() -> list[str]:
                return [r.details["reason"] for r in await demo.audit() if r.action == "access_reconciled"]

            reasons = await eventually(reconciled, what="the backstop's audit line")
            assert any("overdue" in reason for reason in reasons), reasons
            assert (await pim.status(rid)).state == State.active  # its workflow still runs; the access is gone
        finally:
            await _stop(dev_env.client.get_workflow_handle(rid))


async def _stop(handle) -> None:
    """Terminate a workflow a test left running (it may end on its own meanwhile)."""
    from temporalio.service import RPCError

    try:
        await handle.terminate("test over")
    except RPCError:
        pass  # already ended
