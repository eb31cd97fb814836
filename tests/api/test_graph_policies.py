"""A group's policies as Microsoft Graph's role management policies, over real HTTP:
anyone signed in reads them as Graph rules; an administrator changes a rule and the
policy gets a new version, as `pim policy set` would make it; who may not change
the policy is refused, and a rule our policy cannot express is a 400 naming the
property."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pyotp

from pim.domain.models import AccessType
from pim.domain.policy import ApprovalStage
from tests.api.test_api_auth import assert_graph_error
from tests.identity.loopback import SERVICE_PRINCIPAL

POLICIES = "/v1.0/policies/roleManagementPolicies"
ASSIGNMENTS = "/v1.0/policies/roleManagementPolicyAssignments"
OPS_SCOPE = "scopeId eq 'grp-ops' and scopeType eq 'Group'"
OPS_MEMBER = f"{POLICIES}/Group_grp-ops_member"
EXPIRATION = "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule"
APPROVAL = "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule"


def by_id(rules: list[dict]) -> dict[str, dict]:
    return {rule["id"]: rule for rule in rules}


def as_sent(rule: dict) -> dict:
    """A rule as read, ready to send back (a client drops the context annotation)."""
    return {k: v for k, v in rule.items() if k != "@odata.context"}


async def version_of(store, group: str = "grp-ops", access: AccessType = AccessType.member) -> int:
    found = await store.policy(group, access)
    assert found is not None
    return found[1]


async def test_an_administrator_reads_the_demo_policies_of_grp_ops_as_graph_rules(api):
    admin = await api.sign_in("admin")

    listed = await api.get(admin, ASSIGNMENTS, params={"$filter": OPS_SCOPE})
    assert listed.status_code == 200, listed.text
    assert [(a["id"], a["policyId"], a["scopeId"], a["scopeType"], a["roleDefinitionId"]) for a in listed.json()["value"]] == [
        ("Group_grp-ops_member_member", "Group_grp-ops_member", "grp-ops", "Group", "member"),
        ("Group_grp-ops_owner_owner", "Group_grp-ops_owner", "grp-ops", "Group", "owner"),
    ]
    assert "policy" not in listed.json()["value"][0]  # only when expanded

    expanded = await api.get(
        admin,
        ASSIGNMENTS,
        params={"$filter": f"{OPS_SCOPE} and roleDefinitionId eq 'member'", "$expand": "policy($expand=rules)"},
    )
    assert expanded.status_code == 200, expanded.text
    [assignment] = expanded.json()["value"]
    assert (assignment["policy"]["id"], assignment["policy"]["scopeType"]) == ("Group_grp-ops_member", "Group")
    rules = by_id(assignment["policy"]["rules"])
    assert len(rules) == 17

    # SPEC section 8: one approval stage (bob, one approval), MFA, justification, at most PT8H.
    activation = rules["Expiration_EndUser_Assignment"]
    assert (activation["@odata.type"], activation["isExpirationRequired"], activation["maximumDuration"]) == (
        EXPIRATION,
        True,
        "PT8H",
    )
    assert sorted(rules["Enablement_EndUser_Assignment"]["enabledRules"]) == ["Justification", "MultiFactorAuthentication"]
    setting = rules["Approval_EndUser_Assignment"]["setting"]
    assert (setting["isApprovalRequired"], setting["approvalMode"], setting["isRequestorJustificationRequired"]) == (
        True,
        "SingleStage",
        True,
    )
    [stage] = setting["approvalStages"]
    assert stage["primaryApprovers"] == [{"@odata.type": "#microsoft.graph.singleUser", "userId": "bob", "description": "Bob"}]
    assert (stage["approvalStageTimeOutInDays"], stage["isApproverJustificationRequired"], stage["requiredApprovalCount"]) == (
        1,
        True,
        1,
    )
    assert rules["AuthenticationContext_EndUser_Assignment"]["isEnabled"] is False
    # Assignments keep the defaults: eligible up to a year, active up to 180 days with a justification.
    assert (
        rules["Expiration_Admin_Eligibility"]["isExpirationRequired"],
        rules["Expiration_Admin_Eligibility"]["maximumDuration"],
    ) == (
        True,
        "P365D",
    )
    assert rules["Expiration_Admin_Assignment"]["maximumDuration"] == "P180D"
    assert rules["Enablement_Admin_Assignment"]["enabledRules"] == ["Justification"]

    # The owner policy of a role-assignable group: MFA, and the approval of Global or Privileged Role Administrators.
    owner = await api.get(admin, f"{POLICIES}/Group_grp-ops_owner", params={"$expand": "rules"})
    assert owner.status_code == 200, owner.text
    owner_rules = by_id(owner.json()["rules"])
    assert "MultiFactorAuthentication" in owner_rules["Enablement_EndUser_Assignment"]["enabledRules"]
    approvers = owner_rules["Approval_EndUser_Assignment"]["setting"]["approvalStages"][0]["primaryApprovers"]
    assert [(a["@odata.type"], a["roleName"]) for a in approvers] == [
        ("#pim.directoryRoleMembers", "Global Administrator"),
        ("#pim.directoryRoleMembers", "Privileged Role Administrator"),
    ]


async def test_anyone_signed_in_reads_policies_and_rules(api):
    alice = await api.sign_in("alice")
    policies = await api.get(alice, POLICIES, params={"$filter": OPS_SCOPE})
    assert policies.status_code == 200, policies.text
    assert [p["id"] for p in policies.json()["value"]] == ["Group_grp-ops_member", "Group_grp-ops_owner"]
    assert all("rules" not in p for p in policies.json()["value"])

    listed = await api.get(alice, f"{OPS_MEMBER}/rules")
    assert listed.status_code == 200, listed.text
    assert [r["id"] for r in listed.json()["value"]][:2] == ["Expiration_Admin_Eligibility", "Enablement_Admin_Eligibility"]
    one = await api.get(alice, f"{OPS_MEMBER}/rules/Expiration_EndUser_Assignment")
    assert (one.json()["id"], one.json()["maximumDuration"]) == ("Expiration_EndUser_Assignment", "PT8H")
    assignment = await api.get(alice, f"{ASSIGNMENTS}/Group_grp-ops_owner_owner", params={"$expand": "policy"})
    assert assignment.status_code == 200, assignment.text
    assert (assignment.json()["policy"]["id"], "rules" in assignment.json()["policy"]) == ("Group_grp-ops_owner", False)
    effective = await api.get(alice, OPS_MEMBER, params={"$expand": "effectiveRules"})
    assert [r["id"] for r in effective.json()["effectiveRules"]] == [r["id"] for r in listed.json()["value"]]

    dev = await api.get(await api.service_token(), f"{POLICIES}/Group_grp-dev_member", params={"$expand": "rules"})
    assert by_id(dev.json()["rules"])["Expiration_EndUser_Assignment"]["maximumDuration"] == "PT4H"  # SPEC section 8
    assert by_id(dev.json()["rules"])["Approval_EndUser_Assignment"]["setting"]["isApprovalRequired"] is False


async def test_an_administrator_shortens_activations_and_changes_the_approvers(api):
    admin = await api.sign_in("admin")
    before = await version_of(api.store)

    expiration = f"{OPS_MEMBER}/rules/Expiration_EndUser_Assignment"
    read = (await api.get(admin, expiration)).json()
    changed = await api.patch(admin, expiration, json={**as_sent(read), "maximumDuration": "PT4H"})
    assert changed.status_code == 204, changed.text
    policy, version = await api.store.policy("grp-ops", AccessType.member)  # what `pim policy show` prints
    assert (policy.activation.max_duration, version) == (timedelta(hours=4), before + 1)
    assert (await api.get(admin, expiration)).json()["maximumDuration"] == "PT4H"

    approval = f"{OPS_MEMBER}/rules/Approval_EndUser_Assignment"
    two_stages = {
        "@odata.type": APPROVAL,
        "id": "Approval_EndUser_Assignment",
        "setting": {
            "isApprovalRequired": True,
            "approvalMode": "Serial",
            "approvalStages": [
                {
                    "approvalStageTimeOutInDays": 1,
                    "primaryApprovers": [
                        {"@odata.type": "#microsoft.graph.singleUser", "userId": "carol"},
                        {"@odata.type": "#microsoft.graph.groupMembers", "groupId": "grp-sre"},
                    ],
                },
                {"primaryApprovers": [{"@odata.type": "#pim.directoryRoleMembers", "roleName": "Privileged Role Administrator"}]},
            ],
        },
    }
    changed = await api.patch(admin, approval, json=two_stages)
    assert changed.status_code == 204, changed.text
    policy, version = await api.store.policy("grp-ops", AccessType.member)
    assert policy.activation.approval == [
        ApprovalStage(approvers=["carol", "grp-sre"], required=1),
        ApprovalStage(approvers=["role:Privileged Role Administrator"], required=1),
    ]
    assert version == before + 2 and policy.activation.max_duration == timedelta(hours=4)
    changes = [
        e.details for e in await api.store.audit(group_id="grp-ops") if e.action == "policy_changed" and e.actor == "admin"
    ]
    assert [sorted(c["changes"]) for c in changes] == [["activation.max_duration"], ["activation.approval"]]

    # The rule sent back as read changes nothing: no new version.
    read = (await api.get(admin, approval)).json()
    assert [a.get("groupId") for a in read["setting"]["approvalStages"][0]["primaryApprovers"]] == [None, "grp-sre"]
    assert (await api.patch(admin, approval, json=as_sent(read))).status_code == 204
    assert await version_of(api.store) == before + 2


async def test_who_may_not_manage_the_group_may_not_change_its_policy(api):
    body = {"@odata.type": EXPIRATION, "id": "Expiration_EndUser_Assignment", "maximumDuration": "PT1H"}
    before = await version_of(api.store)
    refused = await api.patch(await api.sign_in("alice"), f"{OPS_MEMBER}/rules/Expiration_EndUser_Assignment", json=body)
    error = assert_graph_error(refused, 403, "Authorization_RequestDenied")
    assert error["details"][0]["code"] == "not_authorized"

    # A Groups Administrator manages grp-dev, not the role-assignable grp-ops.
    dave = await api.sign_in("dave")
    assert_graph_error(
        await api.patch(dave, f"{OPS_MEMBER}/rules/Expiration_EndUser_Assignment", json=body), 403, "Authorization_RequestDenied"
    )
    assert await version_of(api.store) == before
    allowed = await api.patch(dave, f"{POLICIES}/Group_grp-dev_member/rules/Expiration_EndUser_Assignment", json=body)
    assert allowed.status_code == 204, allowed.text
    found = await api.store.policy("grp-dev", AccessType.member)
    assert found is not None and found[0].activation.max_duration == timedelta(hours=1)


async def test_a_rule_our_policy_cannot_take_is_a_400_naming_the_property(api):
    admin = await api.sign_in("admin")
    before = await version_of(api.store)
    expiration = f"{OPS_MEMBER}/rules/Expiration_EndUser_Assignment"
    refusals = [
        (expiration, {"@odata.type": EXPIRATION, "maximumDuration": "P2D"}, "maximumDuration"),
        (expiration, {"@odata.type": EXPIRATION, "isExpirationRequired": False}, "isExpirationRequired"),
        (expiration, {"@odata.type": APPROVAL, "id": "Expiration_EndUser_Assignment"}, "@odata.type"),
        (expiration, {"@odata.type": EXPIRATION, "id": "Expiration_Admin_Assignment"}, "id"),
        (expiration, {"@odata.type": EXPIRATION, "enabledRules": ["Justification"]}, "enabledRules"),
        (expiration, {"maximumDuration": "PT4H"}, "@odata.type"),
        (
            f"{OPS_MEMBER}/rules/Enablement_Admin_Assignment",
            {"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule", "enabledRules": ["Ticketing"]},
            "enabledRules[0]",
        ),
        (
            f"{OPS_MEMBER}/rules/Approval_EndUser_Assignment",
            {"@odata.type": APPROVAL, "setting": {"isApprovalRequired": True, "approvalMode": "Parallel"}},
            "setting.approvalMode",
        ),
        (
            f"{OPS_MEMBER}/rules/Approval_EndUser_Assignment",
            {
                "@odata.type": APPROVAL,
                "setting": {
                    "approvalStages": [
                        {"primaryApprovers": [{"@odata.type": "#microsoft.graph.singleUser", "userId": "grp-sre"}]}
                    ]
                },
            },
            "setting.approvalStages[0].primaryApprovers[0].userId",
        ),
        (
            f"{OPS_MEMBER}/rules/Notification_Admin_EndUser_Assignment",
            {"@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyNotificationRule", "notificationLevel": "None"},
            "notificationLevel",
        ),
    ]
    for path, body, target in refusals:
        refused = await api.patch(admin, path, json=body)
        error = assert_graph_error(refused, 400, "BadRequest")
        assert error["details"][0]["target"] == target, (body, error)
        assert error["message"].startswith(target), error
    assert await version_of(api.store) == before

    assert_graph_error(
        await api.patch(admin, f"{OPS_MEMBER}/rules/Expiration_Nobody", json={"@odata.type": EXPIRATION}), 404, "ResourceNotFound"
    )
    assert_graph_error(await api.get(admin, f"{POLICIES}/Group_grp-nope_member"), 404, "ResourceNotFound")
    assert_graph_error(await api.get(admin, ASSIGNMENTS), 400, "BadRequest")
    directory = await api.get(admin, ASSIGNMENTS, params={"$filter": "scopeId eq '/' and scopeType eq 'Directory'"})
    assert assert_graph_error(directory, 400, "BadRequest")["details"][0]["target"] == "$filter"


async def test_an_owner_of_a_role_assignable_group_changes_its_policy_only_with_mfa(api):
    """Owning a role-assignable group is not enough to rewrite its rules: the owner needs
    MFA, by a fresh MFA sign-in or a code. A service owner (no MFA in its token) is refused;
    carol, who signed in with her TOTP code, may."""
    now = datetime.now(UTC)
    for owner in ("carol", SERVICE_PRINCIPAL):
        await api.store.assign(
            "grp-ops", owner, access=AccessType.owner, kind="active", starts_at=now, justification="lead", by="admin"
        )
    rule = f"{OPS_MEMBER}/rules/Enablement_EndUser_Assignment"
    body = {
        "@odata.type": "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule",
        "enabledRules": ["MultiFactorAuthentication", "Justification", "Ticketing"],
    }
    before = await version_of(api.store)

    without = await api.patch(await api.service_token(), rule, json=body)
    assert without.status_code == 400 and without.json()["error"]["details"][0]["code"] == "mfa_required", without.text
    assert await version_of(api.store) == before

    carol = await api.sign_in("carol")
    code = pyotp.TOTP(await api.store.mfa_secret("carol")).at(time.time() + 30)  # the sign-in used up the current step
    signed_in = await api.patch(carol, rule, json={**body, "mfaCode": code})
    assert signed_in.status_code == 204, signed_in.text
    policy, version = await api.store.policy("grp-ops", AccessType.member)
    assert (policy.activation.require_ticket, version) == (True, before + 1)
    assert code not in str([e.details for e in await api.store.audit(group_id="grp-ops")])
