"""Bounds on what an actor can grow (issue 14): extensions (H2), the total length
of an activation, loose coercion (L3), a start in the past, an end step for an
assignment the store does not have (L5), and the owner of a role-assignable
group (M8)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError
from temporalio.testing import ActivityEnvironment

from activities.assignments import AssignmentActivities
from pim.directories.store_directory import StoreDirectory
from pim.domain.assignments import AssignmentEnd, AssignmentPlan
from pim.domain.models import AccessType, ActivationRequest, MfaEvidence, ReviewDecision, State
from pim.domain.policy import ActivationSettings, ApprovalStage, Policy
from pim.identity.totp import current_code
from tests.conftest import running_worker
from tests.polling import settled
from tests.workflows.test_approval import after_signal

MEMBER, OWNER = AccessType.member, AccessType.owner


async def test_extensions_stop_at_the_total_limit_and_the_count_whoever_extends(time_env, demo):
    # grp-dev: an approver (bob) may extend beyond the maximum, never beyond the total limit.
    policy = Policy(
        activation=ActivationSettings(
            max_duration=timedelta(hours=4), approval=[ApprovalStage(approvers=["bob"])], max_extensions=3
        )
    )
    await demo.set_policy("grp-dev", MEMBER, policy, by="test")
    async with running_worker(time_env, demo) as pim:
        rid = await pim.start(
            ActivationRequest(
                group_id="grp-dev",
                access=MEMBER,
                principal_id="alice",
                duration=timedelta(hours=1),
                justification="deploy hotfix 1.2.3",
            )
        )
        await after_signal(time_env, pim, rid)
        await pim.review(rid, "bob", ReviewDecision.approve, "ok for the hotfix")
        active = await settled(pim, rid, State.active)
        granted = active.granted_at
        assert granted is not None

        # 800 extensions of P3660D by the approver: each refused, nothing overflows.
        for _ in range(3):
            await pim.extend(rid, "bob", timedelta(days=3660), "much longer")
        status = await after_signal(time_env, pim, rid)
        assert status.state == State.active and status.expires_at == active.expires_at
        assert all(
            "total limit of PT8H" in note for note in [e.note or "" for e in status.events if "extend refused" in (e.note or "")]
        )

        # Within the total (twice the maximum: PT8H): three times, then the count stops it.
        for _ in range(4):
            await pim.extend(rid, "bob", timedelta(hours=1), "the migration runs late")
            await after_signal(time_env, pim, rid)
        status = await pim.status(rid)
        assert status.extensions == 3 and status.expires_at == active.expires_at + timedelta(hours=3)
        assert "extended 3 times, the most the policy allows" in (status.events[-1].note or "")
        assert status.expires_at - granted <= timedelta(hours=8)
        await pim.deactivate(rid, "admin", "test over")


def test_the_total_limit_is_at_most_seven_days_and_not_below_the_maximum():
    with pytest.raises(ValidationError, match="max_total_duration"):
        ActivationSettings(max_total_duration=timedelta(days=8))
    with pytest.raises(ValidationError, match="max_total_duration"):
        ActivationSettings(max_duration=timedelta(hours=8), max_total_duration=timedelta(hours=4))
    assert ActivationSettings(max_duration=timedelta(hours=24)).total_limit == timedelta(hours=48)


@pytest.mark.parametrize(
    ("field", "value"),
    [("validate_only", "yes"), ("validate_only", 1), ("validate_only", "true")],
)
def test_no_string_or_number_passes_for_a_bool(field, value):
    with pytest.raises(ValidationError) as refused:
        ActivationRequest.model_validate({"group_id": "grp-dev", "access": "member", "principal_id": "alice", field: value})
    assert refused.value.errors()[0]["loc"] == (field,)


def test_no_string_passes_for_a_number_in_a_policy():
    with pytest.raises(ValidationError) as refused:
        ApprovalStage.model_validate({"approvers": ["bob"], "required": "2"})
    assert refused.value.errors()[0]["loc"] == ("required",)
    with pytest.raises(ValidationError):
        MfaEvidence.model_validate({"method": "totp", "code": "x" * 43, "sealed": "true"})


async def test_the_end_of_an_assignment_the_store_does_not_have_ends_at_once(time_env, demo):
    """L5: it used to retry forever; there is nothing to end, so it ends."""
    at = datetime.now(UTC)
    plan = AssignmentPlan(
        assignment_id="asg-missing",
        group_id="grp-dev",
        access=MEMBER,
        principal_id="alice",
        kind="active",
        starts_at=at - timedelta(days=1),
        ends_at=at,
        created_by="admin",
    )
    activities = AssignmentActivities(demo, StoreDirectory(demo))
    ended = await ActivityEnvironment(client=time_env.client).run(activities.assignment_end, AssignmentEnd(plan=plan, at=at))
    assert ended is True


async def test_owning_a_role_assignable_group_takes_mfa_and_an_administrators_approval(time_env, demo):
    """M8: the demo's grp-ops follows the role-assignable defaults for its owners."""
    policy, _ = await demo.policy("grp-ops", OWNER)
    assert policy.activation.require_mfa
    assert policy.activation.approval[0].approvers == ["role:Global Administrator", "role:Privileged Role Administrator"]
    async with running_worker(time_env, demo) as pim:
        code = current_code(await demo.mfa_secret("bob"))
        rid = await pim.start(
            ActivationRequest(
                group_id="grp-ops",
                access=OWNER,
                principal_id="bob",
                duration=timedelta(hours=1),
                justification="rotate the ops secrets",
                mfa=MfaEvidence(code=code),
            )
        )
        pending = await settled(pim, rid, State.pending_approval)
        assert not await demo.has_membership("grp-ops", OWNER, "bob")
        await pim.approve(rid, "admin", "secret rotation agreed")
        assert (await after_signal(time_env, pim, rid)).state == State.active
        assert pending.stages[0].approvers == ["role:Global Administrator", "role:Privileged Role Administrator"]
        await pim.deactivate(rid, "admin", "test over")
        await settled(pim, rid, State.deactivated)
        without_mfa = await pim.start(
            ActivationRequest(
                group_id="grp-ops",
                access=OWNER,
                principal_id="bob",
                duration=timedelta(hours=1),
                justification="rotate the ops secrets",
            )
        )
        refused = await settled(pim, without_mfa, State.rejected)
        assert "mfa_required" in [v.code for v in refused.violations]
