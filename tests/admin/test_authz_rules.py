"""The pure rules behind administration: who may manage what (pim.domain.authorization) and
what makes an assignment valid (pim.domain.assignment_rules).

Each test is what an administrator would check: given these roles (or this
assignment), is the action allowed, and if not, which rule says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pim.domain import authorization as authz
from pim.domain.assignment_rules import (
    AssignmentTarget,
    check_conditions,
    check_extension,
    check_new_assignment,
    check_removal,
    check_renewal,
    check_target,
    check_window,
)
from pim.domain.policy import AssignmentSettings, Policy

AT = datetime(2026, 11, 28, 15, 0, tzinfo=UTC)
GA, PRA, GROUPS, USERS = authz.GLOBAL_ADMIN, authz.PRIVILEGED_ROLE_ADMIN, authz.GROUPS_ADMIN, authz.USER_ADMIN
ELIGIBLE = Policy().eligible_assignment
ACTIVE = Policy().active_assignment


def codes(violations) -> list[str]:
    return [v.code for v in violations]


# --- pim.domain.authorization: managing groups ----------------------------------------------


@pytest.mark.parametrize("role", [GA, PRA])
def test_privileged_roles_manage_a_role_assignable_group(role):
    assert authz.may_manage_group([role], is_owner=False, role_assignable=True)
    assert authz.refuse_group_management("dave", [role], is_owner=False, group_id="grp-ops", role_assignable=True) is None


@pytest.mark.parametrize("role", [GROUPS, USERS])
def test_groups_and_user_administrators_may_not_manage_a_role_assignable_group(role):
    reason = authz.refuse_group_management("dave", [role], is_owner=False, group_id="grp-ops", role_assignable=True)
    assert reason is not None
    assert "dave may not manage role-assignable group grp-ops" in reason
    assert GA in reason and PRA in reason and "owner" in reason
    assert GROUPS not in reason


def test_an_owner_manages_a_role_assignable_group_without_any_role():
    assert authz.refuse_group_management("bob", [], is_owner=True, group_id="grp-ops", role_assignable=True) is None


@pytest.mark.parametrize("role", [GA, PRA, GROUPS, USERS])
def test_every_group_role_manages_an_ordinary_group(role):
    assert authz.refuse_group_management("dave", [role], is_owner=False, group_id="grp-dev", role_assignable=False) is None


def test_a_plain_user_manages_nothing_but_what_they_own():
    for role_assignable in (True, False):
        assert not authz.may_manage_group([], is_owner=False, role_assignable=role_assignable)
        assert authz.may_manage_group([], is_owner=True, role_assignable=role_assignable)
    reason = authz.refuse_group_management(
        "carol", ["Some Other Role"], is_owner=False, group_id="grp-dev", role_assignable=False
    )
    assert reason.startswith("carol may not manage group grp-dev")


# --- pim.domain.authorization: onboarding, roles, users -------------------------------------


def test_onboarding_needs_a_role_ownership_is_not_enough():
    assert authz.refuse_onboarding("bob", [], group_id="grp-new", role_assignable=False) is not None
    assert authz.refuse_onboarding("bob", [], group_id="grp-new", role_assignable=True) is not None
    assert authz.refuse_onboarding("dave", [GROUPS], group_id="grp-new", role_assignable=False) is None
    refused = authz.refuse_onboarding("dave", [GROUPS], group_id="grp-priv", role_assignable=True)
    assert refused and "dave may not onboard grp-priv" in refused
    for role in (GA, PRA):
        assert authz.refuse_onboarding("root", [role], group_id="grp-priv", role_assignable=True) is None


@pytest.mark.parametrize("role", [GA, PRA])
def test_role_grants_by_global_and_privileged_role_administrators(role):
    for granted in authz.ROLES:
        assert authz.refuse_role_grant("root", [role], granted) is None


@pytest.mark.parametrize("roles", [[], [GROUPS], [USERS], [GROUPS, USERS]])
def test_role_grants_refused_to_everyone_else(roles):
    reason = authz.refuse_role_grant("dave", roles, GROUPS)
    assert reason is not None and "may not grant directory roles" in reason


def test_an_unknown_role_is_refused_even_for_a_global_administrator():
    reason = authz.refuse_role_grant("root", [GA], "Supreme Leader")
    assert reason is not None and reason.startswith("role: unknown role 'Supreme Leader'")


@pytest.mark.parametrize("roles,allowed", [([GA], True), ([PRA], True), ([USERS], True), ([GROUPS], False), ([], False)])
def test_user_management(roles, allowed):
    assert (authz.refuse_user_management("x", roles) is None) is allowed


# --- pim.domain.assignment_rules: the target ----------------------------------------


def target(**overrides) -> AssignmentTarget:
    return AssignmentTarget(**{"group_id": "grp-ops", "principal_id": "alice", **overrides})


@pytest.mark.parametrize(
    "overrides,code",
    [
        ({"group_exists": False}, "group_not_found"),
        ({"group_enabled": False}, "group_not_enabled"),
        ({"principal_kind": None}, "principal_not_found"),
        ({"principal_id": "grp-ops", "principal_kind": "group"}, "group_self_member"),
        ({"overlapping_assignment": "asg-1"}, "assignment_exists"),
    ],
)
def test_target_refusals(overrides, code):
    assert codes(check_target("eligible", target(**overrides))) == [code]


def test_a_group_is_never_an_active_member_of_a_role_assignable_group():
    group_in_ops = target(principal_id="grp-sre", principal_kind="group", role_assignable=True)
    refused = check_target("active", group_in_ops)
    assert codes(refused) == ["role_assignable_group_nesting"]
    assert "grp-ops is role-assignable" in refused[0].message
    assert check_target("eligible", group_in_ops) == []  # eligible nesting is fine
    assert check_target("active", target(principal_id="grp-sre", principal_kind="group", role_assignable=False)) == []
    assert check_target("active", target(role_assignable=True)) == []  # a user is fine


# --- pim.domain.assignment_rules: the window -----------------------------------------


def test_permanent_only_when_the_policy_allows_it():
    assert codes(check_window(AT, None, ELIGIBLE, "eligible", AT)) == ["permanent_not_allowed"]
    assert codes(check_window(AT, None, ACTIVE, "active", AT)) == ["permanent_not_allowed"]
    assert check_window(AT, None, ELIGIBLE.model_copy(update={"allow_permanent": True}), "eligible", AT) == []


def test_an_assignment_cannot_end_in_the_past():
    assert codes(check_window(AT - timedelta(days=1), AT, ELIGIBLE, "eligible", AT)) == ["ends_in_past"]
    assert codes(check_window(AT - timedelta(days=1), AT - timedelta(hours=1), ELIGIBLE, "eligible", AT)) == ["ends_in_past"]


def test_an_assignment_lasts_at_least_five_minutes():
    short = check_window(AT, AT + timedelta(minutes=4, seconds=59), ELIGIBLE, "eligible", AT)
    assert codes(short) == ["duration_too_short"] and "PT5M" in short[0].message
    assert check_window(AT, AT + timedelta(minutes=5), ELIGIBLE, "eligible", AT) == []


@pytest.mark.parametrize(
    "kind,settings,maximum", [("eligible", ELIGIBLE, timedelta(days=365)), ("active", ACTIVE, timedelta(days=180))]
)
def test_default_maximum_durations(kind, settings, maximum):
    assert settings.max_duration == maximum
    assert check_window(AT, AT + maximum, settings, kind, AT) == []
    too_long = check_window(AT, AT + maximum + timedelta(seconds=1), settings, kind, AT)
    assert codes(too_long) == ["duration_exceeds_max"]
    assert f"{kind} assignments" in too_long[0].message


# --- pim.domain.assignment_rules: conditions and the whole check --------------------


def test_active_assignments_need_a_justification_by_default():
    assert codes(check_conditions(ACTIVE, None, False)) == ["justification_required"]
    assert codes(check_conditions(ACTIVE, "   \n", False)) == ["justification_required"]
    assert check_conditions(ACTIVE, "team lead", False) == []
    assert check_conditions(ELIGIBLE, None, False) == []  # eligible: not by default


def test_mfa_when_the_policy_requires_it():
    with_mfa = ACTIVE.model_copy(update={"require_mfa": True})
    assert codes(check_conditions(with_mfa, "team lead", False)) == ["mfa_required"]
    assert check_conditions(with_mfa, "team lead", True) == []
    assert codes(check_conditions(with_mfa, None, False)) == ["justification_required", "mfa_required"]


def test_a_new_assignment_reports_the_target_first_then_everything_else():
    new = dict(starts_at=AT, ends_at=None, justification=None, mfa_verified=False, at=AT)
    assert codes(check_new_assignment("active", target(group_exists=False), ACTIVE, **new)) == ["group_not_found"]
    assert codes(check_new_assignment("active", target(), ACTIVE, **new)) == ["permanent_not_allowed", "justification_required"]
    ok = dict(new, ends_at=AT + timedelta(days=30), justification="on call")
    assert check_new_assignment("active", target(), ACTIVE, **ok) == []


# --- removal, extension, renewal ----------------------------------------------


def test_no_removal_in_the_first_five_minutes():
    assert codes(check_removal(AT, AT + timedelta(minutes=4, seconds=59))) == ["removal_too_early"]
    assert check_removal(AT, AT + timedelta(minutes=5)) == []


def test_extension():
    start, end = AT - timedelta(days=10), AT + timedelta(days=20)
    assert codes(check_extension("expired", start, end, end + timedelta(days=1), ELIGIBLE, "eligible", AT)) == ["not_extendable"]
    assert codes(check_extension("removed", start, end, end + timedelta(days=1), ELIGIBLE, "eligible", AT)) == ["not_extendable"]
    assert codes(check_extension("active", start, None, AT + timedelta(days=1), ELIGIBLE, "eligible", AT)) == ["not_extendable"]
    assert codes(check_extension("active", start, end, end, ELIGIBLE, "eligible", AT)) == ["ends_before_current"]
    assert codes(check_extension("active", start, end, end - timedelta(days=1), ELIGIBLE, "eligible", AT)) == [
        "ends_before_current"
    ]
    # The maximum counts from the assignment's start, not from the extension.
    assert check_extension("active", start, end, start + timedelta(days=365), ELIGIBLE, "eligible", AT) == []
    assert codes(check_extension("active", start, end, start + timedelta(days=366), ELIGIBLE, "eligible", AT)) == [
        "duration_exceeds_max"
    ]
    assert (
        check_extension(
            "scheduled", AT + timedelta(days=1), AT + timedelta(days=2), AT + timedelta(days=3), ELIGIBLE, "eligible", AT
        )
        == []
    )


def test_renewal():
    ended = AT - timedelta(days=10)
    assert codes(check_renewal("active", AT + timedelta(days=1), AT + timedelta(days=30), ELIGIBLE, "eligible", AT)) == [
        "not_renewable"
    ]
    assert codes(check_renewal("removed", ended, AT + timedelta(days=30), ELIGIBLE, "eligible", AT)) == ["not_renewable"]
    assert check_renewal("expired", ended, AT + timedelta(days=30), ELIGIBLE, "eligible", AT) == []
    assert check_renewal("expired", AT - timedelta(days=30), AT + timedelta(days=30), ELIGIBLE, "eligible", AT) == []
    late = check_renewal("expired", AT - timedelta(days=30, seconds=1), AT + timedelta(days=30), ELIGIBLE, "eligible", AT)
    assert codes(late) == ["renewal_window_passed"]
    # The renewed window starts now and obeys the policy maximum.
    assert codes(check_renewal("expired", ended, AT + timedelta(days=181), ACTIVE, "active", AT)) == ["duration_exceeds_max"]


def test_assignment_settings_are_validated():
    with pytest.raises(ValueError):
        AssignmentSettings(max_duration=timedelta(days=1), surprise=True)
