"""Audit completeness for a scripted scenario (issue 3, item 6): every
assignment, removal, activation state change, refusal and approval decision
is one line with actor, time, target and reason, and the lines for the
scenario equal the expected list exactly."""

from __future__ import annotations

from datetime import timedelta

import pytest

from pim.domain.models import AccessType, ActivationRequest, State
from pim.operations import AdminContext, Refused
from pim.operations.assignments import create_assignment, remove_assignment
from tests.conftest import TEST_SIGNER, running_worker
from tests.polling import settled
from tests.workflows.test_approval import after_signal, refusals
from tests.workflows.test_assignment_lifecycle import Clock, lifecycle, until_started

# (action, actor) of every line about dave, in order. A refused signal names its actor
# only as claimed (details.claimed_actor): the audit's actor column says "unverified".
EXPECTED = [
    ("refused", "carol"),  # carol may not manage grp-dev: she tries to assign dave
    ("assignment_created", "admin"),  # admin assigns dave eligible for 30 days
    ("assignment_started", "admin"),  # ... and its lifecycle takes effect
    ("refused", "admin"),  # admin tries to remove it in its first 5 minutes
    ("activation_requested", "dave"),  # dave activates grp-dev (no approval)
    ("access_granted", "dave"),
    ("refused", "unverified"),  # "bob" tries to deactivate dave's activation: refused before his proof counts
    ("activation_ended", "dave"),  # dave deactivates after 6 minutes: one line per end (state deactivated)
    ("assignment_removed", "admin"),  # admin removes the assignment: one removal, one line
]


async def test_scripted_scenario_audit_lines_equal_the_expected_list(time_env, demo):
    async with running_worker(time_env, demo) as pim:
        clock = Clock(time_env)
        start = await clock.sync()
        admin = AdminContext(demo, "admin", temporal=time_env.client, task_queue=pim.task_queue, clock=clock, signer=TEST_SIGNER)
        carol = AdminContext(demo, "carol", temporal=time_env.client, task_queue=pim.task_queue, clock=clock, signer=TEST_SIGNER)

        with pytest.raises(Refused) as not_allowed:
            await create_assignment(
                carol,
                "grp-dev",
                "dave",
                access=AccessType.member,
                kind="eligible",
                duration=timedelta(days=30),
                justification="I think he needs it",
            )
        assert not_allowed.value.code == "not_authorized"

        aid = await create_assignment(
            admin,
            "grp-dev",
            "dave",
            access=AccessType.member,
            kind="eligible",
            duration=timedelta(days=30),
            justification="dev rotation for Q4",
        )
        await until_started(time_env, aid)

        with pytest.raises(Refused) as too_early:
            await remove_assignment(admin, aid, reason="oops")
        assert too_early.value.code == "removal_too_early"

        rid = await pim.start(
            ActivationRequest(
                group_id="grp-dev",
                access=AccessType.member,
                principal_id="dave",
                duration=timedelta(hours=1),
                justification="deploy hotfix 1.2.3",
            )
        )
        active = await settled(pim, rid)
        assert active.state == State.active, active.violations

        await pim.deactivate(rid, "bob", "not yours to keep")
        still = await after_signal(time_env, pim, rid)
        assert still.state == State.active
        assert refusals(still, "deactivate", "bob") == ["deactivate refused: bob may not deactivate this activation"]

        await clock.sleep(timedelta(minutes=6))
        await pim.deactivate(rid, "dave", "hotfix deployed")
        ended = await after_signal(time_env, pim, rid)
        assert ended.state == State.deactivated
        assert not await demo.has_membership("grp-dev", AccessType.member, "dave")

        await clock.sync()
        await remove_assignment(admin, aid, reason="rotation over")
        assert (await lifecycle(time_env, aid)).state == "removed"

        lines = await demo.audit(principal_id="dave")
        got = [(row.action, row.actor) for row in lines]
        # Every line names its target, its time (within the scenario), and a refusal its reason.
        for row in lines:
            assert row.group_id == "grp-dev" and row.principal_id == "dave", row
            assert start - timedelta(seconds=1) <= row.at <= clock.now + timedelta(minutes=1), row
            if row.action == "refused":
                assert row.details.get("reason") or row.details.get("note"), row
        by_action = {row.action: row for row in lines}
        assert by_action["assignment_created"].details["assignment_id"] == aid
        assert by_action["assignment_created"].details["justification"] == "dev rotation for Q4"
        assert by_action["assignment_removed"].details["reason"] == "rotation over"
        assert by_action["activation_ended"].details["state"] == "deactivated"
        assert [row.details.get("code") for row in lines if row.action == "refused"][:2] == [
            "not_authorized",
            "removal_too_early",
        ]
        assert {row.request_id for row in lines if row.action.startswith(("activation", "access"))} == {rid}
        assert got == EXPECTED, f"audit lines about dave: {got}"
