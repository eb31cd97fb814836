"""Our policy <-> Graph's role management policy rules, without HTTP: every rule read
from a policy goes back unchanged; a changed rule changes exactly the settings it
maps to; what our policy cannot express is refused, naming Graph's property."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from pim.api.graph.policy_rule_updates import (
    PolicyRuleIn,
    RuleRejected,
    changes_for,
    mentioned_principals,
    settings_of,
    updated_policy,
)
from pim.api.graph.policy_rules import (
    RULE_IDS,
    KnownPrincipal,
    assignment_id,
    graph_rule,
    graph_rules,
    parse_assignment_id,
    parse_policy_id,
    policy_id,
)
from pim.domain.models import AccessType
from pim.domain.policy import ActivationSettings, ApprovalStage, AssignmentSettings, NotificationRule, Policy, default_policy
from pim.operations.policies import apply_settings

PRINCIPALS = {
    "bob": KnownPrincipal("user", "Bob"),
    "carol": KnownPrincipal("user", "Carol"),
    "grp-sre": KnownPrincipal("group", "SRE"),
    "svc-directory-sync": KnownPrincipal("service", "Directory sync"),
}
OPS_MEMBER = Policy(activation=ActivationSettings(approval=[ApprovalStage(approvers=["bob"])], require_mfa=True))
EVERYTHING_SET = Policy(
    activation=ActivationSettings(
        max_duration=timedelta(hours=2),
        require_mfa=True,
        mfa_auth_context="c1",
        require_ticket=True,
        require_justification=False,
        approval=[
            ApprovalStage(approvers=["carol", "grp-sre"], required=2),
            ApprovalStage(approvers=["role:Global Administrator", "svc-directory-sync"]),
        ],
        approval_timeout=timedelta(hours=12),
        approver_justification_required=False,
    ),
    eligible_assignment=AssignmentSettings(allow_permanent=True, max_duration=timedelta(days=90), require_justification=True),
    active_assignment=AssignmentSettings(max_duration=timedelta(days=7), require_mfa=True),
    notifications=NotificationRule(recipients=["requestor"], events=["activation_requested", "assignment_active"]),
)
POLICIES = [OPS_MEMBER, EVERYTHING_SET, Policy(), default_policy(AccessType.owner, role_assignable=True)]


def rule(policy: Policy, rule_id: str) -> dict[str, Any]:
    return graph_rule(policy, rule_id, PRINCIPALS).model_dump(mode="json", by_alias=True)


def patched(policy: Policy, rule_id: str, **changes: Any) -> Policy:
    """The policy after a PATCH of the rule as read, with `changes` over it."""
    body = PolicyRuleIn.model_validate({**rule(policy, rule_id), **changes})
    found = changes_for(policy, rule_id, body, PRINCIPALS)
    return updated_policy(policy, found) if found else policy


def refused(policy: Policy, rule_id: str, body: dict[str, Any]) -> RuleRejected:
    with pytest.raises(RuleRejected) as raised:
        parsed = PolicyRuleIn.model_validate(body)
        updated_policy(policy, changes_for(policy, rule_id, parsed, {**PRINCIPALS, **known_from(parsed)}))
    return raised.value


def known_from(body: PolicyRuleIn) -> dict[str, KnownPrincipal]:
    return {i: PRINCIPALS[i] for i in mentioned_principals(body) if i in PRINCIPALS}


def test_policy_ids_are_url_safe_and_read_back():
    assert policy_id("grp-ops", AccessType.member) == "Group_grp-ops_member"
    assert assignment_id("grp-ops", AccessType.owner) == "Group_grp-ops_owner_owner"
    assert parse_policy_id("Group_team_a.b_owner") == ("team_a.b", AccessType.owner)
    assert parse_assignment_id("Group_grp-ops_member_member") == ("grp-ops", AccessType.member)
    for wrong in ("grp-ops_member", "Group_grp-ops_admin", "Group__member", "Group_grp/ops_member"):
        assert parse_policy_id(wrong) is None
    assert parse_assignment_id("Group_grp-ops_member_owner") is None


@pytest.mark.parametrize("policy", POLICIES, ids=["ops-member", "everything-set", "defaults", "role-assignable-owner"])
def test_every_rule_goes_back_as_it_was_read(policy):
    rules = graph_rules(policy, PRINCIPALS)
    assert [r.id for r in rules] == list(RULE_IDS)
    for read in rules:
        body = PolicyRuleIn.model_validate(read.model_dump(mode="json", by_alias=True))
        assert changes_for(policy, read.id, body, PRINCIPALS) == [], read.id


def test_the_demo_member_policy_of_grp_ops_reads_as_entra_shows_it():
    assert (rule(OPS_MEMBER, "Expiration_EndUser_Assignment")["maximumDuration"]) == "PT8H"
    assert rule(OPS_MEMBER, "Enablement_EndUser_Assignment")["enabledRules"] == ["MultiFactorAuthentication", "Justification"]
    setting = rule(OPS_MEMBER, "Approval_EndUser_Assignment")["setting"]
    assert setting["approvalStages"][0]["primaryApprovers"] == [
        {"@odata.type": "#microsoft.graph.singleUser", "userId": "bob", "description": "Bob"}
    ]
    without = rule(Policy(), "Approval_EndUser_Assignment")["setting"]
    assert (without["isApprovalRequired"], without["approvalMode"], without["approvalStages"][0]["primaryApprovers"]) == (
        False,
        "SingleStage",
        [],
    )


def test_approvers_of_every_kind_and_the_request_wide_settings():
    setting = rule(EVERYTHING_SET, "Approval_EndUser_Assignment")["setting"]
    first, second = setting["approvalStages"]
    assert setting["approvalMode"] == "Serial" and setting["isRequestorJustificationRequired"] is False
    assert [a["@odata.type"] for a in first["primaryApprovers"] + second["primaryApprovers"]] == [
        "#microsoft.graph.singleUser",
        "#microsoft.graph.groupMembers",
        "#pim.directoryRoleMembers",
        "#microsoft.graph.singleServicePrincipal",
    ]
    assert second["primaryApprovers"][0]["roleName"] == "Global Administrator"
    assert (first["requiredApprovalCount"], first["approvalStageTimeOutInDays"], first["isApproverJustificationRequired"]) == (
        2,
        1,
        False,
    )


def test_assignment_and_authentication_context_rules_read_our_settings():
    eligible = rule(EVERYTHING_SET, "Expiration_Admin_Eligibility")
    assert (eligible["isExpirationRequired"], eligible["maximumDuration"]) == (False, "P90D")
    assert rule(EVERYTHING_SET, "Enablement_Admin_Eligibility")["enabledRules"] == ["Justification"]
    assert rule(EVERYTHING_SET, "Enablement_Admin_Assignment")["enabledRules"] == ["MultiFactorAuthentication"]
    context = rule(EVERYTHING_SET, "AuthenticationContext_EndUser_Assignment")
    assert (context["isEnabled"], context["claimValue"]) == (True, "c1")


def test_notification_rules_show_who_hears_of_which_level():
    levels = {r: rule(EVERYTHING_SET, r)["notificationLevel"] for r in RULE_IDS if r.startswith("Notification_")}
    assert levels == {
        "Notification_Admin_Admin_Eligibility": "None",
        "Notification_Requestor_Admin_Eligibility": "None",
        "Notification_Approver_Admin_Eligibility": "None",
        "Notification_Admin_Admin_Assignment": "None",
        "Notification_Requestor_Admin_Assignment": "Critical",  # assignment_active, not the expiry or end
        "Notification_Approver_Admin_Assignment": "None",
        "Notification_Admin_EndUser_Assignment": "None",
        "Notification_Requestor_EndUser_Assignment": "Critical",
        "Notification_Approver_EndUser_Assignment": "None",
    }
    assert rule(Policy(), "Notification_Approver_EndUser_Assignment")["notificationLevel"] == "All"


def test_expiration_rules_change_durations_and_permanence():
    assert patched(OPS_MEMBER, "Expiration_EndUser_Assignment", maximumDuration="PT4H").activation.max_duration == timedelta(
        hours=4
    )
    eligible = patched(OPS_MEMBER, "Expiration_Admin_Eligibility", isExpirationRequired=False, maximumDuration="P30D")
    assert (eligible.eligible_assignment.allow_permanent, eligible.eligible_assignment.max_duration) == (True, timedelta(days=30))
    active = patched(EVERYTHING_SET, "Expiration_Admin_Assignment", isExpirationRequired=False)
    assert active.active_assignment.allow_permanent and active.eligible_assignment == EVERYTHING_SET.eligible_assignment


def test_enablement_rules_set_mfa_justification_and_ticket():
    activation = patched(OPS_MEMBER, "Enablement_EndUser_Assignment", enabledRules=["Ticketing"]).activation
    assert (activation.require_mfa, activation.require_justification, activation.require_ticket) == (False, False, True)
    active = patched(Policy(), "Enablement_Admin_Assignment", enabledRules=["MultiFactorAuthentication", "Justification"])
    assert active.active_assignment.require_mfa and active.active_assignment.require_justification
    assert active.activation == Policy().activation


def test_an_approval_rule_sets_stages_approvers_and_counts():
    body = {
        "setting": {
            "isApprovalRequired": True,
            "approvalMode": "Serial",
            "isRequestorJustificationRequired": False,
            "approvalStages": [
                {
                    "approvalStageTimeOutInDays": 2,
                    "isApproverJustificationRequired": False,
                    "primaryApprovers": [
                        {"@odata.type": "#microsoft.graph.groupMembers", "groupId": "grp-sre"},
                        {"@odata.type": "#microsoft.graph.singleServicePrincipal", "servicePrincipalId": "svc-directory-sync"},
                    ],
                    "requiredApprovalCount": 2,
                },
                {
                    "approvalStageTimeOutInDays": 2,
                    "primaryApprovers": [{"@odata.type": "#pim.directoryRoleMembers", "roleName": "Groups Administrator"}],
                },
            ],
        }
    }
    activation = patched(OPS_MEMBER, "Approval_EndUser_Assignment", **body).activation
    assert activation.approval == [
        ApprovalStage(approvers=["grp-sre", "svc-directory-sync"], required=2),
        ApprovalStage(approvers=["role:Groups Administrator"], required=1),
    ]
    assert (activation.approval_timeout, activation.approver_justification_required, activation.require_justification) == (
        timedelta(days=2),
        False,
        False,
    )


def test_approval_switched_off_and_on_again():
    off = patched(OPS_MEMBER, "Approval_EndUser_Assignment", setting={"isApprovalRequired": False})
    assert off.activation.approval == [] and off.activation.require_mfa
    # A stage without approvers is Entra's default: Global and Privileged Role Administrators.
    on = patched(off, "Approval_EndUser_Assignment", setting={"isApprovalRequired": True})
    assert on.activation.approval == [
        ApprovalStage(approvers=["role:Global Administrator", "role:Privileged Role Administrator"], required=1)
    ]
    # A count left out keeps the stage's own.
    kept = patched(
        EVERYTHING_SET,
        "Approval_EndUser_Assignment",
        setting={"approvalStages": [{"primaryApprovers": [{"@odata.type": "#microsoft.graph.singleUser", "userId": "bob"}]}]},
    )
    assert kept.activation.approval == [ApprovalStage(approvers=["bob"], required=2)]


def test_the_authentication_context_is_an_mfa_requirement():
    enabled = patched(Policy(), "AuthenticationContext_EndUser_Assignment", isEnabled=True, claimValue="c2").activation
    assert (enabled.mfa_auth_context, enabled.require_mfa) == ("c2", True)
    disabled = patched(EVERYTHING_SET, "AuthenticationContext_EndUser_Assignment", isEnabled=False).activation
    assert (disabled.mfa_auth_context, disabled.require_mfa) == (None, True)


def test_a_disabled_authentication_context_stays_disabled_whatever_claim_comes_with_it():
    context = "AuthenticationContext_EndUser_Assignment"
    # MFA required and no context: the rule reads disabled; a claim sent with it would enable it, so it is not kept
    for changes in ({"isEnabled": False, "claimValue": "c1"}, {"claimValue": "c1"}):
        after = patched(OPS_MEMBER, context, **changes)
        assert (after.activation.mfa_auth_context, after.activation.require_mfa) == (None, True), changes
        assert rule(after, context)["isEnabled"] is False
    # enabled, then disabled with a claim: the context goes
    disabled = patched(EVERYTHING_SET, context, isEnabled=False, claimValue="c2")
    assert (disabled.activation.mfa_auth_context, rule(disabled, context)["isEnabled"]) == (None, False)
    # without MFA the claim is kept as given, and the rule still reads disabled
    waiting = patched(Policy(), context, isEnabled=False, claimValue="c1")
    assert (waiting.activation.mfa_auth_context, waiting.activation.require_mfa) == ("c1", False)
    assert (rule(waiting, context)["isEnabled"], rule(waiting, context)["claimValue"]) == (False, "c1")


def test_changes_are_key_value_settings_for_the_operation():
    body = PolicyRuleIn.model_validate({**rule(OPS_MEMBER, "Expiration_EndUser_Assignment"), "maximumDuration": "PT90M"})
    changes = changes_for(OPS_MEMBER, "Expiration_EndUser_Assignment", body, PRINCIPALS)
    assert settings_of(changes) == ['activation.max_duration="PT1H30M"']
    data, _ = apply_settings(OPS_MEMBER.model_dump(mode="json"), settings_of(changes))
    assert Policy.model_validate(data) == updated_policy(OPS_MEMBER, changes)


EXPIRATION = "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule"
ENABLEMENT = "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule"
APPROVAL = "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule"
CONTEXT = "#microsoft.graph.unifiedRoleManagementPolicyAuthenticationContextRule"
NOTIFICATION = "#microsoft.graph.unifiedRoleManagementPolicyNotificationRule"


def stage(**properties: Any) -> dict[str, Any]:
    return {"@odata.type": APPROVAL, "setting": {"isApprovalRequired": True, "approvalStages": [properties]}}


def user(user_id: str) -> dict[str, str]:
    return {"@odata.type": "#microsoft.graph.singleUser", "userId": user_id}


@pytest.mark.parametrize(
    "rule_id, body, property",
    [
        ("Expiration_EndUser_Assignment", {"@odata.type": EXPIRATION, "maximumDuration": "PT10M"}, "maximumDuration"),
        ("Expiration_EndUser_Assignment", {"@odata.type": EXPIRATION, "isExpirationRequired": False}, "isExpirationRequired"),
        ("Expiration_Admin_Assignment", {"@odata.type": EXPIRATION, "maximumDuration": "P9000D"}, "maximumDuration"),
        ("Expiration_EndUser_Assignment", {"@odata.type": ENABLEMENT}, "@odata.type"),
        ("Expiration_EndUser_Assignment", {"@odata.type": EXPIRATION, "id": "Expiration_Admin_Assignment"}, "id"),
        ("Expiration_EndUser_Assignment", {"@odata.type": EXPIRATION, "isEnabled": True}, "isEnabled"),
        ("Expiration_EndUser_Assignment", {"@odata.type": EXPIRATION, "target": {"caller": "Admin"}}, "target.caller"),
        (
            "Expiration_EndUser_Assignment",
            {"@odata.type": EXPIRATION, "target": {"operations": ["Activate"]}},
            "target.operations",
        ),
        (
            "Expiration_EndUser_Assignment",
            {"@odata.type": EXPIRATION, "target": {"enforcedSettings": ["All"]}},
            "target.enforcedSettings",
        ),
        (
            "Enablement_EndUser_Assignment",
            {"@odata.type": ENABLEMENT, "enabledRules": ["Justification", "Fido"]},
            "enabledRules[1]",
        ),
        ("Enablement_Admin_Eligibility", {"@odata.type": ENABLEMENT, "enabledRules": ["Ticketing"]}, "enabledRules[0]"),
        ("AuthenticationContext_EndUser_Assignment", {"@odata.type": CONTEXT, "isEnabled": True}, "claimValue"),
        (
            "Approval_EndUser_Assignment",
            {"@odata.type": APPROVAL, "setting": {"approvalMode": "Parallel"}},
            "setting.approvalMode",
        ),
        (
            "Approval_EndUser_Assignment",
            {"@odata.type": APPROVAL, "setting": {"isApprovalRequired": True, "approvalMode": "NoApproval"}},
            "setting.approvalMode",
        ),
        (
            "Approval_EndUser_Assignment",
            {"@odata.type": APPROVAL, "setting": {"isApprovalRequiredForExtension": True}},
            "setting.isApprovalRequiredForExtension",
        ),
        (
            "Approval_EndUser_Assignment",
            {"@odata.type": APPROVAL, "setting": {"isApprovalRequired": True, "approvalStages": []}},
            "setting.approvalStages",
        ),
        (
            "Approval_EndUser_Assignment",
            {
                "@odata.type": APPROVAL,
                "setting": {
                    "approvalMode": "SingleStage",
                    "approvalStages": [{"primaryApprovers": [user("bob")]}, {"primaryApprovers": [user("carol")]}],
                },
            },
            "setting.approvalMode",
        ),
        (
            "Approval_EndUser_Assignment",
            {
                "@odata.type": APPROVAL,
                "setting": {"approvalStages": [{"approvalStageTimeOutInDays": 1}, {"approvalStageTimeOutInDays": 2}]},
            },
            "setting.approvalStages[1].approvalStageTimeOutInDays",
        ),
        (
            "Approval_EndUser_Assignment",
            stage(approvalStageTimeOutInDays=0),
            "setting.approvalStages[0].approvalStageTimeOutInDays",
        ),
        ("Approval_EndUser_Assignment", stage(isEscalationEnabled=True), "setting.approvalStages[0].isEscalationEnabled"),
        (
            "Approval_EndUser_Assignment",
            stage(primaryApprovers=[user("nobody")]),
            "setting.approvalStages[0].primaryApprovers[0].userId",
        ),
        (
            "Approval_EndUser_Assignment",
            stage(primaryApprovers=[user("grp-sre")]),
            "setting.approvalStages[0].primaryApprovers[0].userId",
        ),
        (
            "Approval_EndUser_Assignment",
            stage(primaryApprovers=[{"@odata.type": "#microsoft.graph.groupMembers", "userId": "bob"}]),
            "setting.approvalStages[0].primaryApprovers[0].userId",
        ),
        (
            "Approval_EndUser_Assignment",
            stage(primaryApprovers=[{"@odata.type": "#pim.directoryRoleMembers", "roleName": "Owner"}]),
            "setting.approvalStages[0].primaryApprovers[0].roleName",
        ),
        (
            "Approval_EndUser_Assignment",
            stage(primaryApprovers=[{"@odata.type": "#microsoft.graph.requestorManager"}]),
            "setting.approvalStages[0].primaryApprovers[0].@odata.type",
        ),
        (
            "Notification_Admin_Admin_Assignment",
            {"@odata.type": NOTIFICATION, "notificationLevel": "Critical"},
            "notificationLevel",
        ),
        (
            "Notification_Requestor_EndUser_Assignment",
            {"@odata.type": NOTIFICATION, "notificationRecipients": ["ops@example.com"]},
            "notificationRecipients",
        ),
        ("Notification_Approver_EndUser_Assignment", {"@odata.type": NOTIFICATION, "recipientType": "Admin"}, "recipientType"),
    ],
)
def test_what_our_policy_cannot_take_is_refused_naming_the_property(rule_id, body, property):
    rejected = refused(OPS_MEMBER, rule_id, body)
    assert rejected.property == property
    assert str(rejected).startswith(f"{property}: ")


def test_approvers_for_a_policy_without_approval_must_switch_it_on():
    body = {
        "@odata.type": APPROVAL,
        "setting": {"approvalMode": "SingleStage", "approvalStages": [{"primaryApprovers": [user("bob")]}]},
    }
    assert refused(Policy(), "Approval_EndUser_Assignment", body).property == "setting.isApprovalRequired"
    on = patched(Policy(), "Approval_EndUser_Assignment", setting={**body["setting"], "isApprovalRequired": True})
    assert on.activation.approval == [ApprovalStage(approvers=["bob"])]
