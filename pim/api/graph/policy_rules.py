"""Our policy (pim/domain/policy.py) as Microsoft Graph's role management policy for
PIM for Groups: the 17 rules of a group's member or owner policy, each with Graph's
`@odata.type`, id and target. Pure: what the store knows of approvers comes in as
`KnownPrincipals`. The way back, a PATCH of one rule, is pim/api/graph/policy_rule_updates.py.

| rule id | our setting |
|---|---|
| Expiration_Admin_Eligibility | eligible_assignment.allow_permanent (not isExpirationRequired), .max_duration |
| Enablement_Admin_Eligibility | eligible_assignment.require_justification, .require_mfa |
| Expiration_Admin_Assignment | active_assignment.allow_permanent (not isExpirationRequired), .max_duration |
| Enablement_Admin_Assignment | active_assignment.require_justification, .require_mfa |
| Expiration_EndUser_Assignment | activation.max_duration (an activation always expires) |
| Enablement_EndUser_Assignment | activation.require_mfa, .require_justification, .require_ticket |
| Approval_EndUser_Assignment | activation.approval, .approval_timeout, .approver_justification_required, .require_justification |
| AuthenticationContext_EndUser_Assignment | activation.mfa_auth_context (in effect with activation.require_mfa) |
| Notification_* (9) | notifications.recipients x notifications.events (read-only here) |

Policy ids are `Group_{groupId}_{member|owner}`; a policy assignment's id is the
policy's id and its roleDefinitionId joined by `_`, as Graph writes them."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Final, Literal, Union

from pydantic import ConfigDict, Field

from pim.api.graph.models import GraphOut
from pim.domain.durations import Duration
from pim.domain.models import ID_PATTERN, AccessType
from pim.domain.policy import ROLE_PREFIX, ActivationSettings, AssignmentSettings, Policy
from pim.notifications.audience import AUDIENCE

EXPIRATION: Final = "#microsoft.graph.unifiedRoleManagementPolicyExpirationRule"
ENABLEMENT: Final = "#microsoft.graph.unifiedRoleManagementPolicyEnablementRule"
APPROVAL: Final = "#microsoft.graph.unifiedRoleManagementPolicyApprovalRule"
AUTHENTICATION_CONTEXT: Final = "#microsoft.graph.unifiedRoleManagementPolicyAuthenticationContextRule"
NOTIFICATION: Final = "#microsoft.graph.unifiedRoleManagementPolicyNotificationRule"
SINGLE_USER: Final = "#microsoft.graph.singleUser"
GROUP_MEMBERS: Final = "#microsoft.graph.groupMembers"
SINGLE_SERVICE_PRINCIPAL: Final = "#microsoft.graph.singleServicePrincipal"
# Not Graph's: whoever holds a directory role when the request is made (our `role:NAME` approver).
DIRECTORY_ROLE_MEMBERS: Final = "#pim.directoryRoleMembers"

MFA, JUSTIFICATION, TICKETING = "MultiFactorAuthentication", "Justification", "Ticketing"
DAY = timedelta(days=1)
RuleCaller = Literal["Admin", "EndUser"]
Level = Literal["Eligibility", "Assignment"]

# In the order Graph lists them.
RULE_IDS = (
    "Expiration_Admin_Eligibility",
    "Enablement_Admin_Eligibility",
    "Notification_Admin_Admin_Eligibility",
    "Notification_Requestor_Admin_Eligibility",
    "Notification_Approver_Admin_Eligibility",
    "Expiration_Admin_Assignment",
    "Enablement_Admin_Assignment",
    "Notification_Admin_Admin_Assignment",
    "Notification_Requestor_Admin_Assignment",
    "Notification_Approver_Admin_Assignment",
    "Expiration_EndUser_Assignment",
    "Enablement_EndUser_Assignment",
    "Approval_EndUser_Assignment",
    "AuthenticationContext_EndUser_Assignment",
    "Notification_Admin_EndUser_Assignment",
    "Notification_Requestor_EndUser_Assignment",
    "Notification_Approver_EndUser_Assignment",
)
TYPE_OF_KIND = {
    "Expiration": EXPIRATION,
    "Enablement": ENABLEMENT,
    "Approval": APPROVAL,
    "AuthenticationContext": AUTHENTICATION_CONTEXT,
    "Notification": NOTIFICATION,
}
# Which part of our policy a rule's (caller, level) speaks of.
SECTION: dict[tuple[str, str], str] = {
    ("Admin", "Eligibility"): "eligible_assignment",
    ("Admin", "Assignment"): "active_assignment",
    ("EndUser", "Assignment"): "activation",
}
# Graph's notification recipients, and the events of ours each rule's level covers.
AUDIENCE_OF = {"Admin": "admins", "Requestor": "requestor", "Approver": "approvers"}
EVENTS_OF_SECTION = {
    "eligible_assignment": ("assignment_eligible", "assignment_expiring_soon", "assignment_ended"),
    "active_assignment": ("assignment_active", "assignment_expiring_soon", "assignment_ended"),
    "activation": ("activation_requested", "request_approved", "request_denied", "activation_active", "activation_ended"),
}


@dataclass(frozen=True)
class RuleSpec:
    id: str
    kind: str  # Expiration | Enablement | Approval | AuthenticationContext | Notification
    caller: RuleCaller
    level: Level
    recipient: str | None = None  # Notification: Admin | Requestor | Approver

    @property
    def odata_type(self) -> str:
        return TYPE_OF_KIND[self.kind]

    @property
    def type_name(self) -> str:
        return self.odata_type.removeprefix("#microsoft.graph.")

    @property
    def section(self) -> str:
        return SECTION[(self.caller, self.level)]


def _spec(rule_id: str) -> RuleSpec:
    kind, *middle, caller, level = rule_id.split("_")
    return RuleSpec(rule_id, kind, caller, level, middle[0] if middle else None)  # type: ignore[arg-type]


RULES: dict[str, RuleSpec] = {rule_id: _spec(rule_id) for rule_id in RULE_IDS}


@dataclass(frozen=True)
class KnownPrincipal:
    kind: str  # user | group | service
    display_name: str = ""


# Approvers the store knows, by id: whether each is a user, a group or a service principal.
KnownPrincipals = Mapping[str, KnownPrincipal]


# --- ids ---------------------------------------------------------------------


def policy_id(group_id: str, access: AccessType) -> str:
    return f"Group_{group_id}_{AccessType(access).value}"


def assignment_id(group_id: str, access: AccessType) -> str:
    return f"{policy_id(group_id, access)}_{AccessType(access).value}"


def parse_policy_id(text: str) -> tuple[str, AccessType] | None:
    """(group, access) of `Group_{groupId}_{access}`; None for anything else. Group ids
    may hold `_`, the access never does: it is what follows the last one."""
    scope, _, access = text.rpartition("_")
    group_id = scope.removeprefix("Group_")
    if not scope.startswith("Group_") or access not in ("member", "owner") or not re.match(ID_PATTERN, group_id):
        return None
    return group_id, AccessType(access)


def parse_assignment_id(text: str) -> tuple[str, AccessType] | None:
    policy, _, access = text.rpartition("_")
    found = parse_policy_id(policy)
    return found if found is not None and found[1].value == access else None


# --- Graph's shapes ------------------------------------------------------------


class RuleOut(GraphOut):
    """What a rule shows: every property, always (so /openapi.json marks them required)."""

    model_config = ConfigDict(json_schema_serialization_defaults_required=True)


class RuleTarget(RuleOut):
    """unifiedRoleManagementPolicyRuleTarget: every rule here applies to all operations."""

    caller: RuleCaller
    operations: list[str] = Field(default_factory=lambda: ["All"])
    level: Level
    inheritableSettings: list[str] = Field(default_factory=list)
    enforcedSettings: list[str] = Field(default_factory=list)


class ExpirationRule(RuleOut):
    odata_type: Literal["#microsoft.graph.unifiedRoleManagementPolicyExpirationRule"] = Field(EXPIRATION, alias="@odata.type")
    id: str
    isExpirationRequired: bool
    maximumDuration: Duration
    target: RuleTarget


class EnablementRule(RuleOut):
    odata_type: Literal["#microsoft.graph.unifiedRoleManagementPolicyEnablementRule"] = Field(ENABLEMENT, alias="@odata.type")
    id: str
    enabledRules: list[str]
    target: RuleTarget


class SingleUser(RuleOut):
    odata_type: Literal["#microsoft.graph.singleUser"] = Field(SINGLE_USER, alias="@odata.type")
    userId: str
    description: str | None = None


class GroupMembers(RuleOut):
    odata_type: Literal["#microsoft.graph.groupMembers"] = Field(GROUP_MEMBERS, alias="@odata.type")
    groupId: str
    description: str | None = None


class SingleServicePrincipal(RuleOut):
    odata_type: Literal["#microsoft.graph.singleServicePrincipal"] = Field(SINGLE_SERVICE_PRINCIPAL, alias="@odata.type")
    servicePrincipalId: str
    description: str | None = None


class DirectoryRoleMembers(RuleOut):
    """Our extension: the holders of a directory role (`role:Global Administrator`)."""

    odata_type: Literal["#pim.directoryRoleMembers"] = Field(DIRECTORY_ROLE_MEMBERS, alias="@odata.type")
    roleName: str
    description: str | None = None


# Told apart by their `@odata.type` (a discriminator here would be lost in /openapi.json, nested twice).
SubjectSet = Union[SingleUser, GroupMembers, SingleServicePrincipal, DirectoryRoleMembers]


class UnifiedApprovalStage(RuleOut):
    """unifiedApprovalStage, with our `requiredApprovalCount` (Graph's stages need one approval)."""

    approvalStageTimeOutInDays: int
    isApproverJustificationRequired: bool
    escalationTimeInMinutes: int = 0
    isEscalationEnabled: bool = False
    primaryApprovers: list[SubjectSet]
    escalationApprovers: list[SubjectSet] = Field(default_factory=list)
    requiredApprovalCount: int = 1


class ApprovalSettings(RuleOut):
    isApprovalRequired: bool
    isApprovalRequiredForExtension: bool = False
    isRequestorJustificationRequired: bool
    approvalMode: Literal["SingleStage", "Serial", "Parallel", "NoApproval"]
    approvalStages: list[UnifiedApprovalStage]


class ApprovalRule(RuleOut):
    odata_type: Literal["#microsoft.graph.unifiedRoleManagementPolicyApprovalRule"] = Field(APPROVAL, alias="@odata.type")
    id: str
    target: RuleTarget
    setting: ApprovalSettings


class AuthenticationContextRule(RuleOut):
    odata_type: Literal["#microsoft.graph.unifiedRoleManagementPolicyAuthenticationContextRule"] = Field(
        AUTHENTICATION_CONTEXT, alias="@odata.type"
    )
    id: str
    isEnabled: bool
    claimValue: str | None
    target: RuleTarget


class NotificationRule(RuleOut):
    odata_type: Literal["#microsoft.graph.unifiedRoleManagementPolicyNotificationRule"] = Field(NOTIFICATION, alias="@odata.type")
    id: str
    notificationType: str = "Email"
    recipientType: Literal["Admin", "Requestor", "Approver"]
    notificationLevel: Literal["None", "Critical", "All"]
    isDefaultRecipientsEnabled: bool
    notificationRecipients: list[str] = Field(default_factory=list)
    target: RuleTarget


PolicyRule = Annotated[
    Union[ExpirationRule, EnablementRule, ApprovalRule, AuthenticationContextRule, NotificationRule],
    Field(discriminator="odata_type"),
]


# --- our policy, read as Graph's rules -------------------------------------------


def graph_rules(policy: Policy, principals: KnownPrincipals) -> list[PolicyRule]:
    return [graph_rule(policy, rule_id, principals) for rule_id in RULE_IDS]


def graph_rule(policy: Policy, rule_id: str, principals: KnownPrincipals) -> PolicyRule:
    """One rule of the policy (`rule_id` one of RULE_IDS)."""
    spec = RULES[rule_id]
    target = RuleTarget(caller=spec.caller, level=spec.level)
    if spec.kind == "Expiration":
        return _expiration(policy, spec, target)
    if spec.kind == "Enablement":
        return EnablementRule(id=rule_id, enabledRules=enabled_rules(section_of(policy, spec)), target=target)
    if spec.kind == "Approval":
        return ApprovalRule(id=rule_id, target=target, setting=approval_settings(policy.activation, principals))
    if spec.kind == "AuthenticationContext":
        activation = policy.activation
        enabled = activation.require_mfa and activation.mfa_auth_context is not None
        return AuthenticationContextRule(id=rule_id, isEnabled=enabled, claimValue=activation.mfa_auth_context, target=target)
    return _notification(policy, spec, target)


def section_of(policy: Policy, spec: RuleSpec) -> ActivationSettings | AssignmentSettings:
    found: ActivationSettings | AssignmentSettings = getattr(policy, spec.section)
    return found


def _expiration(policy: Policy, spec: RuleSpec, target: RuleTarget) -> ExpirationRule:
    settings = section_of(policy, spec)
    if isinstance(settings, ActivationSettings):  # an activation always ends
        return ExpirationRule(id=spec.id, isExpirationRequired=True, maximumDuration=settings.max_duration, target=target)
    return ExpirationRule(
        id=spec.id, isExpirationRequired=not settings.allow_permanent, maximumDuration=settings.max_duration, target=target
    )


def enabled_rules(settings: ActivationSettings | AssignmentSettings) -> list[str]:
    found = [MFA] if settings.require_mfa else []
    found += [JUSTIFICATION] if settings.require_justification else []
    if isinstance(settings, ActivationSettings) and settings.require_ticket:
        found.append(TICKETING)
    return found


def timeout_days(activation: ActivationSettings) -> int:
    """Graph counts a stage's timeout in whole days: ours, rounded up."""
    return max(1, math.ceil(activation.approval_timeout / DAY))


def approval_settings(activation: ActivationSettings, principals: KnownPrincipals) -> ApprovalSettings:
    """Without approval, Graph still shows one stage (without approvers) holding the
    timeout and the approver's justification; so here."""

    def stage(approvers: list[str], required: int) -> UnifiedApprovalStage:
        return UnifiedApprovalStage(
            approvalStageTimeOutInDays=timeout_days(activation),
            isApproverJustificationRequired=activation.approver_justification_required,
            primaryApprovers=[subject_set(a, principals) for a in approvers],
            requiredApprovalCount=required,
        )

    stages = [stage(s.approvers, s.required) for s in activation.approval] or [stage([], 1)]
    return ApprovalSettings(
        isApprovalRequired=bool(activation.approval),
        isRequestorJustificationRequired=activation.require_justification,
        approvalMode="Serial" if len(activation.approval) > 1 else "SingleStage",
        approvalStages=stages,
    )


def subject_set(
    approver: str, principals: KnownPrincipals
) -> SingleUser | GroupMembers | SingleServicePrincipal | DirectoryRoleMembers:
    if approver.startswith(ROLE_PREFIX):
        role = approver.removeprefix(ROLE_PREFIX)
        return DirectoryRoleMembers(roleName=role, description=role)
    known = principals.get(approver)
    description = (known.display_name or None) if known else None
    if known is not None and known.kind == "group":
        return GroupMembers(groupId=approver, description=description)
    if known is not None and known.kind == "service":
        return SingleServicePrincipal(servicePrincipalId=approver, description=description)
    return SingleUser(userId=approver, description=description)  # also one the store no longer knows


def _notification(policy: Policy, spec: RuleSpec, target: RuleTarget) -> NotificationRule:
    """Our notifications are one rule for the whole policy (who x which events); a
    Graph rule shows its slice: `All` when the recipient hears of every event of the
    rule's level that ever reaches them, `Critical` of some, `None` of none."""
    assert spec.recipient is not None
    audience = AUDIENCE_OF[spec.recipient]
    rule = policy.notifications
    reaching = [e for e in EVENTS_OF_SECTION[spec.section] if audience in AUDIENCE[e]]
    told = [e for e in reaching if e in rule.events] if audience in rule.recipients else []
    level: Literal["None", "Critical", "All"] = "None" if not told else "All" if told == reaching else "Critical"
    return NotificationRule(
        id=spec.id,
        recipientType=spec.recipient,
        notificationLevel=level,
        isDefaultRecipientsEnabled=audience in rule.recipients and bool(reaching),
        target=target,
    )
