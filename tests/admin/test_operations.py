"""Administrative operations against a real SQLite store: onboarding, who may
do what, assignments, policies, users and roles. Every refusal raises
`Refused` with a stable code and leaves an audit line saying what was attempted."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest

from pim.domain import authorization as authz
from pim.domain.models import AccessType, MfaEvidence
from pim.domain.policy import Policy
from pim.identity import totp as mfa
from pim.identity.totp import current_code
from pim.operations import AdminContext, Refused
from pim.operations.assignments import create_assignment, extend_assignment, remove_assignment, renew_assignment
from pim.operations.groups import create_group, offboard_group, onboard_group
from pim.operations.policies import set_policy
from pim.operations.principals import add_user, bootstrap, grant_role
from tests.conftest import TEST_SIGNER

MEMBER, OWNER = AccessType.member, AccessType.owner


async def refused(store, call, code: str, actor: str | None = None):
    """Await `call`, expect the refusal `code`, and return its audit line."""
    with pytest.raises(Refused) as caught:
        await call
    assert caught.value.code == code, str(caught.value)
    line = (await store.audit())[-1]
    assert line.action == "refused"
    assert line.details["code"] == code and line.details["reason"] == str(caught.value)
    if actor:
        assert line.actor == actor
    return line


async def tenant(store):
    """A fresh tenant: root (Global Administrator) and its TOTP secret."""
    secret = await bootstrap(store, "root")
    return AdminContext(store, "root", signer=TEST_SIGNER), secret


def later(ctx: AdminContext, minutes: float) -> AdminContext:
    at = ctx.now() + timedelta(minutes=minutes)
    return AdminContext(ctx.store, ctx.actor, clock=lambda: at, signer=TEST_SIGNER)


# --- onboarding ---------------------------------------------------------------


@pytest.mark.parametrize("kind", ["dynamic", "synced"])
async def test_dynamic_and_synced_groups_are_never_enabled(store, kind):
    root, _ = await tenant(store)
    line = await refused(store, onboard_group(root, "grp-x", kind), "group_kind_not_supported", "root")
    assert f"{kind} groups can never be enabled in PIM" in line.details["reason"]
    assert line.details["attempted"] == "onboard_group" and line.group_id == "grp-x"
    assert await store.group("grp-x") is None
    # A group that exists already with that kind stays out, whatever kind is typed.
    await create_group(root, "grp-x", kind)
    line = await refused(store, onboard_group(root, "grp-x", "security"), "group_kind_not_supported")
    assert f"{kind} groups can never be enabled" in line.details["reason"]
    assert not (await store.group("grp-x")).pim_enabled


async def test_unknown_kind_refused(store):
    root, _ = await tenant(store)
    await refused(store, onboard_group(root, "grp-x", "distribution"), "invalid_kind")


async def test_role_assignable_limit_counts_role_assignable_groups_only(store):
    root, _ = await tenant(store)
    await create_group(root, "ra-1", "security", role_assignable=True, max_role_assignable=3)  # not enabled: counts
    await onboard_group(root, "ra-2", "security", role_assignable=True, max_role_assignable=3)
    await onboard_group(root, "ra-3", "microsoft365", role_assignable=True, max_role_assignable=3)
    line = await refused(
        store, onboard_group(root, "ra-4", "security", role_assignable=True, max_role_assignable=3), "role_assignable_limit"
    )
    assert "3 role-assignable groups" in line.details["reason"]
    await refused(
        store, create_group(root, "ra-4", "security", role_assignable=True, max_role_assignable=3), "role_assignable_limit"
    )
    assert await store.group("ra-4") is None
    # Enabling the one already counted is fine, and so are ordinary groups, any number of them.
    await onboard_group(root, "ra-1", "security", role_assignable=True, max_role_assignable=3)
    for n in range(5):
        await onboard_group(root, f"plain-{n}", "security", max_role_assignable=3)
    groups = {g.id: g for g in await store.groups()}
    assert sum(g.pim_enabled for g in groups.values()) == 8
    assert sum(g.role_assignable for g in groups.values()) == 3


async def test_onboarding_creates_default_member_and_owner_policies(store):
    root, _ = await tenant(store)
    await onboard_group(root, "grp-new", "security")
    for access in AccessType:
        policy, version = await store.policy("grp-new", access)
        assert version == 1 and policy == Policy()
        a = policy.activation
        assert (a.max_duration, a.min_duration, a.approval_timeout) == (
            timedelta(hours=8),
            timedelta(minutes=5),
            timedelta(hours=24),
        )
        assert (a.require_mfa, a.require_justification, a.require_ticket, a.approval, a.approver_justification_required) == (
            False,
            True,
            False,
            [],
            True,
        )
        assert (policy.eligible_assignment.allow_permanent, policy.eligible_assignment.max_duration) == (
            False,
            timedelta(days=365),
        )
        assert (
            policy.active_assignment.allow_permanent,
            policy.active_assignment.max_duration,
            policy.active_assignment.require_justification,
            policy.active_assignment.require_mfa,
        ) == (False, timedelta(days=180), True, False)
        assert policy.notifications.recipients == ["admins", "requestor", "approvers"]
        assert policy.notifications.channels == ["log"]
    assert (await store.audit(group_id="grp-new"))[-1].action == "group_onboarded"


async def test_onboarding_twice_or_with_the_wrong_flag_is_refused(demo):
    admin = AdminContext(demo, "admin", signer=TEST_SIGNER)
    await refused(demo, onboard_group(admin, "grp-ops", "security", role_assignable=True), "already_enabled")
    line = await refused(demo, onboard_group(admin, "grp-sre", "security", role_assignable=True), "role_assignable_fixed")
    assert "grp-sre is not role-assignable" in line.details["reason"]
    await refused(demo, onboard_group(admin, "grp-ops", "security"), "role_assignable_fixed")


async def test_onboarding_a_user_id_is_refused(demo):
    admin = AdminContext(demo, "admin", signer=TEST_SIGNER)
    await refused(demo, onboard_group(admin, "alice", "security"), "principal_exists")
    assert (await demo.principal("alice")).kind == "user"
    assert await demo.group("alice") is None


@pytest.mark.parametrize("operation", [onboard_group, create_group])
async def test_a_group_id_must_be_a_valid_id(store, operation):
    root, _ = await tenant(store)
    await refused(store, operation(root, "bad id!", "security"), "invalid_id")
    assert await store.group("bad id!") is None


async def test_offboarding_ends_eligible_assignments_and_keeps_active_ones(demo):
    admin = AdminContext(demo, "admin", signer=TEST_SIGNER)
    eligible = {a.id for a in await demo.assignments(group_id="grp-ops") if a.kind == "eligible"}
    ended = await offboard_group(admin, "grp-ops")
    assert set(ended) == eligible and len(ended) == 2  # alice (member) and bob (owner)
    assert not (await demo.group("grp-ops")).pim_enabled
    left = await demo.assignments(group_id="grp-ops")
    assert [(a.principal_id, a.kind) for a in left] == [("carol", "active")]
    assert await demo.has_membership("grp-ops", MEMBER, "carol")
    line = (await demo.audit(group_id="grp-ops"))[-1]
    assert line.action == "group_offboarded" and set(line.details["eligible_assignments_ended"]) == eligible
    await refused(demo, offboard_group(admin, "grp-ops"), "group_not_enabled")


async def test_offboarding_refused_while_an_activation_runs(demo):
    admin = AdminContext(demo, "admin", signer=TEST_SIGNER)
    await demo.claim_activation("grp-ops", MEMBER, "alice", "activation/grp-ops/member/alice#1", admin.now())
    line = await refused(demo, offboard_group(admin, "grp-ops"), "activations_running")
    assert "activation/grp-ops/member/alice" in line.details["reason"]
    assert (await demo.group("grp-ops")).pim_enabled
    assert len([a for a in await demo.assignments(group_id="grp-ops") if a.kind == "eligible"]) == 2


# --- authorization -----------------------------------------------------------


async def test_groups_administrator_manages_ordinary_groups_only(demo):
    dave = AdminContext(demo, "dave", signer=TEST_SIGNER)
    await onboard_group(dave, "grp-web", "security")
    await set_policy(dave, "grp-dev", MEMBER, ["eligible_assignment.allow_permanent=true"])
    await create_assignment(dave, "grp-dev", "bob", access=MEMBER, kind="eligible")
    line = await refused(demo, onboard_group(dave, "grp-priv", "security", role_assignable=True), "not_authorized", "dave")
    assert line.details["attempted"] == "onboard_group"
    line = await refused(
        demo, create_assignment(dave, "grp-ops", "bob", access=MEMBER, kind="active", justification="x"), "not_authorized", "dave"
    )
    assert line.details["attempted"] == "assign_active" and line.group_id == "grp-ops"
    assert "may not manage role-assignable group grp-ops" in line.details["reason"]
    await refused(demo, set_policy(dave, "grp-ops", MEMBER, ["activation.require_mfa=false"]), "not_authorized")
    await refused(demo, offboard_group(dave, "grp-ops"), "not_authorized")
    alice_ops = next(a for a in await demo.assignments(group_id="grp-ops") if a.principal_id == "alice")
    await refused(demo, remove_assignment(later(dave, 10), alice_ops.id), "not_authorized")


async def test_an_owner_manages_their_role_assignable_group(demo):
    admin = AdminContext(demo, "admin", signer=TEST_SIGNER)
    await set_policy(admin, "grp-ops", OWNER, ["active_assignment.allow_permanent=true"])
    await set_policy(admin, "grp-ops", MEMBER, ["active_assignment.allow_permanent=true"])
    await create_assignment(admin, "grp-ops", "bob", access=OWNER, kind="active", justification="ops lead")
    bob = AdminContext(demo, "bob", signer=TEST_SIGNER)
    # An owner of a role-assignable group changes its policy, or makes active
    # assignments, only with MFA: ownership is no shortcut around the member policy.
    await refused(demo, set_policy(bob, "grp-ops", MEMBER, ["activation.require_mfa=false"]), "mfa_required", "bob")
    await refused(
        demo,
        create_assignment(bob, "grp-ops", "dave", access=MEMBER, kind="active", justification="on call"),
        "mfa_required",
        "bob",
    )
    code = current_code(await demo.mfa_secret("bob"))
    await set_policy(bob, "grp-ops", MEMBER, ["eligible_assignment.allow_permanent=true"], mfa_code=code)
    await create_assignment(bob, "grp-ops", "dave", access=MEMBER, kind="eligible")  # eligible: no MFA needed
    # Ownership of one group is not a role: nothing else, and no onboarding.
    await refused(demo, set_policy(bob, "grp-dev", MEMBER, ["activation.require_mfa=true"]), "not_authorized", "bob")
    await refused(demo, onboard_group(bob, "grp-bob", "security"), "not_authorized", "bob")


async def test_a_plain_user_is_refused_everywhere_and_every_refusal_is_audited(demo):
    carol = AdminContext(demo, "carol", clock=lambda: AdminContext(demo, "x").now() + timedelta(minutes=10), signer=TEST_SIGNER)
    alice_ops = next(a for a in await demo.assignments(group_id="grp-ops") if a.principal_id == "alice")
    attempts = {
        "onboard_group": onboard_group(carol, "grp-c", "security"),
        "create_group": create_group(carol, "grp-c", "security"),
        "offboard_group": offboard_group(carol, "grp-dev"),
        "assign_eligible": create_assignment(carol, "grp-dev", "carol", access=MEMBER, kind="eligible"),
        "remove_assignment": remove_assignment(carol, alice_ops.id),
        "extend_assignment": extend_assignment(carol, alice_ops.id, extra=timedelta(days=1)),
        "renew_assignment": renew_assignment(carol, alice_ops.id, extra=timedelta(days=1)),
        "set_policy": set_policy(carol, "grp-dev", MEMBER, ["activation.max_duration=PT24H"]),
        "add_user": add_user(carol, "eve"),
        "grant_role": grant_role(carol, "carol", authz.GLOBAL_ADMIN),
    }
    before = len(await demo.audit())
    for attempted, call in attempts.items():
        line = await refused(demo, call, "not_authorized", "carol")
        assert line.details["attempted"] == attempted
    assert len(await demo.audit()) == before + len(attempts)
    assert await demo.roles_of("carol") == [] and await demo.principal("eve") is None


async def test_an_unknown_actor_is_refused(demo):
    await refused(
        demo, onboard_group(AdminContext(demo, "mallory", signer=TEST_SIGNER), "grp-m", "security"), "unknown_actor", "mallory"
    )
    await refused(demo, set_policy(AdminContext(demo, "mallory", signer=TEST_SIGNER), "grp-dev", MEMBER, []), "unknown_actor")


# --- assignments -------------------------------------------------------------


async def test_permanent_eligible_only_when_the_policy_allows_it(demo):
    admin = AdminContext(demo, "admin", signer=TEST_SIGNER)
    line = await refused(
        demo, create_assignment(admin, "grp-dev", "bob", access=MEMBER, kind="eligible"), "permanent_not_allowed"
    )
    assert line.principal_id == "bob" and line.group_id == "grp-dev" and line.access == "member"
    await set_policy(admin, "grp-dev", MEMBER, ["eligible_assignment.allow_permanent=true"])
    assignment_id = await create_assignment(admin, "grp-dev", "bob", access=MEMBER, kind="eligible")
    row = await demo.assignment(assignment_id)
    assert (row.kind, row.ends_at, row.created_by) == ("eligible", None, "admin")
    assert not await demo.has_membership("grp-dev", MEMBER, "bob")  # eligible is not membership
    await refused(demo, create_assignment(admin, "grp-dev", "bob", access=MEMBER, kind="eligible"), "assignment_exists")


async def test_time_bound_assignments_checked_before_any_workflow(demo):
    admin = AdminContext(demo, "admin", signer=TEST_SIGNER)
    await refused(
        demo,
        create_assignment(admin, "grp-dev", "bob", access=MEMBER, kind="eligible", duration=timedelta(days=366)),
        "duration_exceeds_max",
    )
    await refused(
        demo,
        create_assignment(admin, "grp-dev", "bob", access=MEMBER, kind="active", justification="x", duration=timedelta(days=181)),
        "duration_exceeds_max",
    )
    await refused(
        demo,
        create_assignment(admin, "grp-dev", "bob", access=MEMBER, kind="eligible", duration=timedelta(minutes=4)),
        "duration_too_short",
    )
    await refused(
        demo,
        create_assignment(admin, "grp-dev", "bob", access=MEMBER, kind="eligible", duration=timedelta(days=30)),
        "temporal_unavailable",
    )
    assert [a.principal_id for a in await demo.assignments(group_id="grp-dev")] == ["grp-sre"]


async def test_target_refusals_through_the_operation(demo):
    admin = AdminContext(demo, "admin", signer=TEST_SIGNER)
    await refused(demo, create_assignment(admin, "grp-nope", "bob", access=MEMBER, kind="eligible"), "group_not_found")
    await refused(
        demo,
        create_assignment(admin, "grp-dev", "nobody", access=MEMBER, kind="eligible", duration=timedelta(days=1)),
        "principal_not_found",
    )
    await refused(
        demo,
        create_assignment(admin, "grp-sre", "bob", access=MEMBER, kind="eligible", duration=timedelta(days=1)),
        "group_not_enabled",
    )
    await refused(
        demo,
        create_assignment(admin, "grp-dev", "grp-dev", access=MEMBER, kind="eligible", duration=timedelta(days=1)),
        "group_self_member",
    )


async def test_active_assignment_needs_a_justification(demo):
    admin = AdminContext(demo, "admin", signer=TEST_SIGNER)
    await set_policy(admin, "grp-dev", MEMBER, ["active_assignment.allow_permanent=true"])
    await refused(demo, create_assignment(admin, "grp-dev", "bob", access=MEMBER, kind="active"), "justification_required")
    await refused(
        demo,
        create_assignment(admin, "grp-dev", "bob", access=MEMBER, kind="active", justification="  "),
        "justification_required",
    )
    await create_assignment(admin, "grp-dev", "bob", access=MEMBER, kind="active", justification="release week")
    assert await demo.has_membership("grp-dev", MEMBER, "bob")


async def test_active_assignment_with_mfa_needs_the_administrators_own_code(demo):
    admin = AdminContext(demo, "admin", signer=TEST_SIGNER)
    await set_policy(admin, "grp-dev", MEMBER, ["active_assignment.allow_permanent=true", "active_assignment.require_mfa=true"])
    code = mfa.current_code(await demo.mfa_secret("admin"))
    wrong = f"{(int(code) + 1) % 1_000_000:06d}"
    bob_code = mfa.current_code(await demo.mfa_secret("bob"))
    await refused(
        demo, create_assignment(admin, "grp-dev", "bob", access=MEMBER, kind="active", justification="on call"), "mfa_required"
    )
    await refused(
        demo,
        create_assignment(admin, "grp-dev", "bob", access=MEMBER, kind="active", justification="on call", mfa_code=wrong),
        "mfa_required",
    )
    if bob_code != code:  # someone else's code is no evidence
        await refused(
            demo,
            create_assignment(admin, "grp-dev", "bob", access=MEMBER, kind="active", justification="on call", mfa_code=bob_code),
            "mfa_required",
        )
    await create_assignment(admin, "grp-dev", "bob", access=MEMBER, kind="active", justification="on call", mfa_code=code)
    assert await demo.has_membership("grp-dev", MEMBER, "bob")
    # The same code cannot be used for a second assignment.
    await refused(
        demo,
        create_assignment(admin, "grp-dev", "carol", access=MEMBER, kind="active", justification="on call", mfa_code=code),
        "mfa_required",
    )


async def test_eligible_assignment_with_mfa_needs_the_administrators_own_code_too(demo):
    admin = AdminContext(demo, "admin", signer=TEST_SIGNER)
    await set_policy(
        admin, "grp-dev", MEMBER, ["eligible_assignment.allow_permanent=true", "eligible_assignment.require_mfa=true"]
    )
    await refused(
        demo, create_assignment(admin, "grp-dev", "bob", access=MEMBER, kind="eligible", justification="on call"), "mfa_required"
    )
    code = mfa.current_code(await demo.mfa_secret("admin"))
    await create_assignment(admin, "grp-dev", "bob", access=MEMBER, kind="eligible", justification="on call", mfa_code=code)
    assert [a.principal_id for a in await demo.assignments("grp-dev") if a.kind == "eligible"].count("bob") == 1


async def test_a_fresh_multi_factor_sign_in_vouched_for_by_the_front_end_stands_in_for_the_code(demo):
    def signed_in(minutes_ago: float, amr: list[str]) -> AdminContext:
        at = int(time.time() - minutes_ago * 60)
        evidence = MfaEvidence(method="signin", auth_time=at, amr=amr)
        return AdminContext(demo, "admin", signer=TEST_SIGNER, sign_in=evidence)

    await set_policy(
        AdminContext(demo, "admin", signer=TEST_SIGNER),
        "grp-dev",
        MEMBER,
        ["active_assignment.allow_permanent=true", "active_assignment.require_mfa=true"],
    )
    assign = dict(access=MEMBER, kind="active", justification="on call")
    await refused(demo, create_assignment(signed_in(30, ["otp", "mfa"]), "grp-dev", "bob", **assign), "mfa_required")  # stale
    await refused(demo, create_assignment(signed_in(1, ["pwd"]), "grp-dev", "bob", **assign), "mfa_required")  # one factor
    await create_assignment(signed_in(1, ["otp", "mfa"]), "grp-dev", "bob", **assign)
    assert await demo.has_membership("grp-dev", MEMBER, "bob")


async def test_group_nesting_rules(demo):
    admin = AdminContext(demo, "admin", signer=TEST_SIGNER)
    line = await refused(
        demo,
        create_assignment(admin, "grp-ops", "grp-sre", access=MEMBER, kind="active", justification="whole team"),
        "role_assignable_group_nesting",
    )
    assert "grp-ops is role-assignable" in line.details["reason"]
    await set_policy(admin, "grp-ops", MEMBER, ["eligible_assignment.allow_permanent=true"])
    await create_assignment(admin, "grp-ops", "grp-sre", access=MEMBER, kind="eligible")
    # An ordinary group may have a group as an active member.
    await create_group(admin, "grp-all", "security")
    await create_assignment(admin, "grp-all", "grp-sre", access=MEMBER, kind="active", justification="everyone")
    assert await demo.has_membership("grp-all", MEMBER, "grp-sre")


async def test_removing_a_permanent_active_assignment(store):
    root, _ = await tenant(store)
    await add_user(root, "alice")
    await onboard_group(root, "grp-a", "security")
    await set_policy(root, "grp-a", MEMBER, ["active_assignment.allow_permanent=true"])
    first = await create_assignment(root, "grp-a", "alice", access=MEMBER, kind="active", justification="team")
    assert await store.has_membership("grp-a", MEMBER, "alice")
    line = await refused(store, remove_assignment(root, first), "removal_too_early")
    assert line.details["attempted"] == "remove_assignment"
    await remove_assignment(later(root, 6), first, reason="left the team")
    assert not await store.has_membership("grp-a", MEMBER, "alice")
    assert (await store.assignment(first)).removed_by == "root"
    await refused(store, remove_assignment(later(root, 7), first), "not_removable")

    # With a second source (a running activation's grant) the membership stays.
    second = await create_assignment(root, "grp-a", "alice", access=MEMBER, kind="active", justification="back")
    await store.add_grant(
        "grp-a", MEMBER, "alice", source_kind="activation", source_id="activation/grp-a/member/alice#1", starts_at=root.now()
    )
    await remove_assignment(later(root, 6), second)
    assert await store.has_membership("grp-a", MEMBER, "alice")
    assert (await store.audit(group_id="grp-a"))[-1].action == "assignment_removed"


# --- policies ----------------------------------------------------------------


async def test_policy_validation(demo):
    admin = AdminContext(demo, "admin", signer=TEST_SIGNER)
    before = await demo.policy("grp-dev", MEMBER)
    line = await refused(demo, set_policy(admin, "grp-dev", MEMBER, ["activation.max_duration=PT30H"]), "invalid_policy")
    assert "activation.max_duration" in line.details["reason"]
    line = await refused(demo, set_policy(admin, "grp-dev", MEMBER, ["activation.max_durration=PT1H"]), "invalid_policy")
    assert "activation.max_durration: unknown setting" in line.details["reason"]
    await refused(demo, set_policy(admin, "grp-dev", MEMBER, ["nothing.here=1"]), "invalid_policy")
    line = await refused(
        demo, set_policy(admin, "grp-dev", MEMBER, ['activation.approval=[{"approvers": ["ghost"]}]']), "invalid_policy"
    )
    assert "ghost" in line.details["reason"]
    await refused(demo, set_policy(admin, "grp-dev", MEMBER, ['activation.approval=[{"approvers": []}]']), "invalid_policy")
    await refused(demo, set_policy(admin, "grp-sre", MEMBER, ["activation.require_mfa=true"]), "group_not_enabled")
    assert await demo.policy("grp-dev", MEMBER) == before  # nothing changed


async def test_policy_change_is_audited_with_old_and_new_values(demo):
    admin = AdminContext(demo, "admin", signer=TEST_SIGNER)
    _, first = await demo.policy("grp-dev", MEMBER)  # the demo seed set it once already
    version = await set_policy(
        admin, "grp-dev", MEMBER, ["activation.max_duration=PT2H", 'activation.approval=[{"approvers": ["bob", "grp-sre"]}]']
    )
    assert version == first + 1
    policy, stored = await demo.policy("grp-dev", MEMBER)
    assert stored == version and policy.activation.max_duration == timedelta(hours=2)
    line = (await demo.audit(group_id="grp-dev"))[-1]
    assert (line.action, line.actor, line.access) == ("policy_changed", "admin", "member")
    assert line.details["version"] == version
    assert line.details["changes"]["activation.max_duration"] == {"old": "PT4H", "new": "PT2H"}
    assert line.details["changes"]["activation.approval"] == {
        "old": [],
        "new": [{"approvers": ["bob", "grp-sre"], "required": 1}],
    }
    assert await set_policy(admin, "grp-dev", MEMBER, ["activation.require_mfa=true"]) == version + 1
    assert (await demo.policy("grp-dev", OWNER))[1] == 1  # the owner policy is its own


# --- users and roles ---------------------------------------------------------


async def test_bootstrap_once(store):
    secret = await bootstrap(store, "root")
    assert mfa.matching_step(secret, mfa.current_code(secret)) is not None
    assert await store.roles_of("root") == [authz.GLOBAL_ADMIN]
    with pytest.raises(Refused) as caught:
        await bootstrap(store, "root2")
    assert caught.value.code == "already_bootstrapped"
    assert await store.principal("root2") is None


async def test_users_and_roles(store):
    root, _ = await tenant(store)
    await add_user(root, "uma")
    uma = AdminContext(store, "uma", signer=TEST_SIGNER)
    await refused(store, add_user(uma, "eve"), "not_authorized", "uma")
    await grant_role(root, "uma", authz.USER_ADMIN)
    await add_user(uma, "eve")
    await refused(store, add_user(uma, "eve"), "principal_exists")
    await refused(store, grant_role(uma, "eve", authz.GROUPS_ADMIN), "not_authorized", "uma")
    await refused(store, grant_role(root, "eve", "Supreme Leader"), "unknown_role")
    await refused(store, grant_role(root, "nobody", authz.GROUPS_ADMIN), "principal_not_found")
    await grant_role(root, "uma", authz.PRIVILEGED_ROLE_ADMIN)
    await grant_role(uma, "eve", authz.GROUPS_ADMIN)
    assert await store.roles_of("eve") == [authz.GROUPS_ADMIN]
    actions = [(line.action, line.actor, line.principal_id) for line in await store.audit() if line.action != "refused"]
    assert actions == [
        ("tenant_bootstrapped", "root", "root"),
        ("user_added", "root", "uma"),
        ("role_granted", "root", "uma"),
        ("user_added", "uma", "eve"),
        ("role_granted", "root", "uma"),
        ("role_granted", "uma", "eve"),
    ]


async def test_a_user_added_with_an_email_is_told_there_and_a_bad_address_is_refused(store):
    root, _ = await tenant(store)
    await add_user(root, "erin", "Erin", email="erin@corp.example")
    assert (await store.principal("erin")).email == "erin@corp.example"
    assert await store.contacts(["erin"]) == {"erin": ("erin@corp.example", "Erin")}
    line = await refused(store, add_user(root, "frank", email="frank at corp"), "invalid_email", "root")
    assert "email:" in line.details["reason"]
    assert await store.principal("frank") is None  # nothing half-made
