"""A PATCH of one Graph policy rule, mapped back onto our policy: pure.

    changes = changes_for(policy, "Expiration_EndUser_Assignment", body, principals)
    updated_policy(policy, changes)         # the new policy, validated
    settings_of(changes)                    # ["activation.max_duration=\"PT4H\""] for set_policy

Each property the body gives is compared with the rule as we show it
(pim/api/graph/policy_rules.py): what equals it changes nothing, so a client may send
back the whole rule it read. A property we cannot express, or one that belongs to
another rule type, raises `RuleRejected` naming it (Graph's path, e.g.
`setting.approvalStages[0].primaryApprovers[1].userId`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, StrictInt, ValidationError, model_validator

from pim.api.graph.policy_rules import (
    DIRECTORY_ROLE_MEMBERS,
    GROUP_MEMBERS,
    JUSTIFICATION,
    MFA,
    RULES,
    SINGLE_SERVICE_PRINCIPAL,
    SINGLE_USER,
    TICKETING,
    KnownPrincipals,
    RuleSpec,
    graph_rule,
    section_of,
    timeout_days,
)
from pim.domain import authorization as authz
from pim.domain.durations import Duration, format_duration
from pim.domain.models import ID_PATTERN, violations_from_validation_error
from pim.domain.policy import ROLE_PREFIX, ActivationSettings, Policy

# Entra's rule for a stage without approvers: Global and Privileged Role Administrators approve.
DEFAULT_APPROVERS = [f"{ROLE_PREFIX}{authz.GLOBAL_ADMIN}", f"{ROLE_PREFIX}{authz.PRIVILEGED_ROLE_ADMIN}"]
Id = Annotated[str, Field(pattern=ID_PATTERN)]
Word = Annotated[str, Field(max_length=64)]
# Some clients write a type without Graph's leading `#`.
ODataType = Annotated[str, Field(max_length=200), AfterValidator(lambda t: t if t.startswith("#") else f"#{t}")]


class RuleRejected(ValueError):
    """A PATCH our policy cannot take: `property` is Graph's name of the culprit."""

    def __init__(self, property: str, message: str) -> None:
        super().__init__(f"{property}: {message}")
        self.property = property


@dataclass(frozen=True)
class Change:
    key: str  # our setting, e.g. activation.max_duration
    value: Any  # as JSON
    property: str  # Graph's property it came from


class RuleIn(BaseModel):
    """A body: unknown properties refused; OData annotations ignored but `@odata.type`."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _drop_annotations(cls, data: Any) -> Any:
        if isinstance(data, dict):
            return {k: v for k, v in data.items() if not (isinstance(k, str) and "@" in k and k != "@odata.type")}
        return data


class RuleTargetIn(RuleIn):
    odata_type: ODataType | None = Field(default=None, alias="@odata.type")
    caller: Word | None = None
    operations: list[Word] | None = Field(default=None, max_length=10)
    level: Word | None = None
    inheritableSettings: list[Word] | None = Field(default=None, max_length=10)
    enforcedSettings: list[Word] | None = Field(default=None, max_length=10)
    targetObjects: list[dict[str, Any]] | None = Field(default=None, max_length=10)


class SubjectSetIn(RuleIn):
    odata_type: ODataType = Field(alias="@odata.type")
    userId: Id | None = None
    groupId: Id | None = None
    servicePrincipalId: Id | None = None
    roleName: Word | None = None
    description: Annotated[str, Field(max_length=256)] | None = None  # read-only: ignored


class ApprovalStageIn(RuleIn):
    odata_type: ODataType | None = Field(default=None, alias="@odata.type")
    approvalStageTimeOutInDays: StrictInt | None = Field(default=None, ge=0, le=3660)
    isApproverJustificationRequired: StrictBool | None = None
    escalationTimeInMinutes: StrictInt | None = Field(default=None, ge=0, le=527040)  # ignored without escalation
    isEscalationEnabled: StrictBool | None = None
    primaryApprovers: list[SubjectSetIn] | None = Field(default=None, max_length=50)
    escalationApprovers: list[SubjectSetIn] | None = Field(default=None, max_length=50)
    requiredApprovalCount: StrictInt | None = Field(default=None, ge=1, le=50)


class ApprovalSettingsIn(RuleIn):
    odata_type: ODataType | None = Field(default=None, alias="@odata.type")
    isApprovalRequired: StrictBool | None = None
    isApprovalRequiredForExtension: StrictBool | None = None
    isRequestorJustificationRequired: StrictBool | None = None
    approvalMode: Word | None = None
    approvalStages: list[ApprovalStageIn] | None = Field(default=None, max_length=10)


class PolicyRuleIn(RuleIn):
    """Any rule type's updatable properties (Graph's update table); each rule takes its own."""

    odata_type: ODataType = Field(
        alias="@odata.type", description="the rule's type, e.g. #microsoft.graph.unifiedRoleManagementPolicyExpirationRule"
    )
    id: Annotated[str, Field(max_length=100)] | None = None
    target: RuleTargetIn | None = None
    isExpirationRequired: StrictBool | None = None
    maximumDuration: Duration | None = None
    enabledRules: list[Word] | None = Field(default=None, max_length=10)
    setting: ApprovalSettingsIn | None = None
    isEnabled: StrictBool | None = None
    claimValue: Annotated[str, Field(min_length=1, max_length=256)] | None = None
    notificationType: Word | None = None
    recipientType: Word | None = None
    notificationLevel: Word | None = None
    isDefaultRecipientsEnabled: StrictBool | None = None
    notificationRecipients: list[Annotated[str, Field(max_length=320)]] | None = Field(default=None, max_length=50)
    # Not Graph's: the caller's current TOTP code, for an owner of a role-assignable group.
    mfaCode: Annotated[str, Field(pattern=r"^[0-9]{6}$")] | None = None


PROPERTIES_OF_KIND = {
    "Expiration": {"isExpirationRequired", "maximumDuration"},
    "Enablement": {"enabledRules"},
    "Approval": {"setting"},
    "AuthenticationContext": {"isEnabled", "claimValue"},
    "Notification": {
        "notificationType",
        "recipientType",
        "notificationLevel",
        "isDefaultRecipientsEnabled",
        "notificationRecipients",
    },
}
EVERY_RULE = {"odata_type", "id", "target", "mfaCode"}


def changes_for(policy: Policy, rule_id: str, body: PolicyRuleIn, principals: KnownPrincipals) -> list[Change]:
    """What the body changes in our policy; RuleRejected for what it cannot."""
    spec = RULES[rule_id]
    if body.odata_type != spec.odata_type:
        raise RuleRejected("@odata.type", f"rule {rule_id} is a {spec.odata_type}")
    if body.id is not None and body.id != rule_id:
        raise RuleRejected("id", f"the body is rule {rule_id}'s, the rule the URL names")
    for name in sorted(body.model_fields_set - EVERY_RULE - PROPERTIES_OF_KIND[spec.kind]):
        if getattr(body, name) is not None:
            raise RuleRejected(name, f"not a property of {spec.type_name}")
    _check_target(spec, body.target)
    if spec.kind == "Expiration":
        return _expiration(policy, spec, body)
    if spec.kind == "Enablement":
        return _enablement(policy, spec, body.enabledRules)
    if spec.kind == "Approval":
        return _approval(policy, body.setting, principals)
    if spec.kind == "AuthenticationContext":
        return _authentication_context(policy.activation, body)
    _check_notification(policy, spec, body, principals)
    return []


def updated_policy(policy: Policy, changes: list[Change]) -> Policy:
    """The policy with the changes, validated as a whole (RuleRejected naming the property)."""
    data = policy.model_dump(mode="json")
    for change in changes:
        *path, last = change.key.split(".")
        node = data
        for part in path:
            node = node[part]
        node[last] = change.value
    try:
        return Policy.model_validate(data)
    except ValidationError as error:
        message = violations_from_validation_error(error)[0].message
        culprit = next((c for c in changes if c.key in message), changes[0])
        raise RuleRejected(culprit.property, message) from None


def settings_of(changes: list[Change]) -> list[str]:
    """KEY=VALUE items, as pim.operations.policies.set_policy takes them (VALUE in JSON)."""
    return [f"{c.key}={json.dumps(c.value)}" for c in changes]


def mentioned_principals(body: PolicyRuleIn) -> set[str]:
    """The approvers a body names by id, for the caller to look up (KnownPrincipals)."""
    stages = body.setting.approvalStages if body.setting and body.setting.approvalStages else []
    subjects = [s for stage in stages for s in (stage.primaryApprovers or [])]
    return {i for s in subjects for i in (s.userId, s.groupId, s.servicePrincipalId) if i is not None}


# --- per rule type -----------------------------------------------------------------


def _check_target(spec: RuleSpec, target: RuleTargetIn | None) -> None:
    """A rule's target is what the rule is; a body may repeat it, never change it."""
    if target is None:
        return
    if target.caller is not None and target.caller != spec.caller:
        raise RuleRejected("target.caller", f"rule {spec.id} is for the caller {spec.caller}")
    if target.level is not None and target.level != spec.level:
        raise RuleRejected("target.level", f"rule {spec.id} is for the level {spec.level}")
    if target.operations is not None and {o.lower() for o in target.operations} != {"all"}:
        raise RuleRejected("target.operations", "every rule here applies to All operations")
    for name in ("inheritableSettings", "enforcedSettings", "targetObjects"):
        if getattr(target, name):
            raise RuleRejected(f"target.{name}", "not supported: policies here have no child scopes or target objects")


def _expiration(policy: Policy, spec: RuleSpec, body: PolicyRuleIn) -> list[Change]:
    settings = section_of(policy, spec)
    out = []
    required = body.isExpirationRequired
    if isinstance(settings, ActivationSettings):
        if required is False:
            raise RuleRejected("isExpirationRequired", "an activation always ends; it cannot be permanent")
    elif required is not None and required == settings.allow_permanent:
        out.append(Change(f"{spec.section}.allow_permanent", not required, "isExpirationRequired"))
    if body.maximumDuration is not None and body.maximumDuration != settings.max_duration:
        out.append(Change(f"{spec.section}.max_duration", format_duration(body.maximumDuration), "maximumDuration"))
    return out


def _enablement(policy: Policy, spec: RuleSpec, enabled: list[str] | None) -> list[Change]:
    if enabled is None:
        return []
    settings = section_of(policy, spec)
    fields = {MFA: "require_mfa", JUSTIFICATION: "require_justification"}
    if isinstance(settings, ActivationSettings):
        fields[TICKETING] = "require_ticket"
    for index, name in enumerate(enabled):
        if name not in fields:
            raise RuleRejected(f"enabledRules[{index}]", f"not one of {', '.join(fields)} (for rule {spec.id})")
    return [
        Change(f"{spec.section}.{field}", name in enabled, "enabledRules")
        for name, field in fields.items()
        if (name in enabled) != getattr(settings, field)
    ]


def _authentication_context(activation: ActivationSettings, body: PolicyRuleIn) -> list[Change]:
    """Our authentication context is the `acr` an OIDC sign-in must carry when MFA is
    required: enabling it also requires MFA. While MFA is required, a context is in
    effect, so a disabled rule has none: disabling it forgets the claim, and a
    claimValue sent for a disabled rule is not kept. Without MFA the context waits,
    as given, for MFA to be required."""
    enabled_now = activation.require_mfa and activation.mfa_auth_context is not None
    claim = body.claimValue if body.claimValue is not None else activation.mfa_auth_context
    enable = body.isEnabled if body.isEnabled is not None else enabled_now
    if enable:
        if claim is None:
            raise RuleRejected("claimValue", "required when isEnabled is true")
        out = [] if claim == activation.mfa_auth_context else [Change("activation.mfa_auth_context", claim, "claimValue")]
        return out + ([] if activation.require_mfa else [Change("activation.require_mfa", True, "isEnabled")])
    if activation.require_mfa:  # the rule stays (or becomes) disabled: no context
        return [] if activation.mfa_auth_context is None else [Change("activation.mfa_auth_context", None, "isEnabled")]
    return [] if claim == activation.mfa_auth_context else [Change("activation.mfa_auth_context", claim, "claimValue")]


def _check_notification(policy: Policy, spec: RuleSpec, body: PolicyRuleIn, principals: KnownPrincipals) -> None:
    """Our notifications are set for the whole policy (notifications.recipients and
    .events), not per Graph rule: these rules are read-only; sending them back is fine."""
    shown = graph_rule(policy, spec.id, principals).model_dump()
    for name in sorted(PROPERTIES_OF_KIND["Notification"]):
        given = getattr(body, name)
        if given is not None and given != shown[name]:
            if name == "notificationRecipients":
                raise RuleRejected(name, "additional recipients are not supported")
            raise RuleRejected(
                name, "notification rules are read-only here; set notifications.recipients and .events of the policy"
            )


# --- approval ----------------------------------------------------------------------


def _approval(policy: Policy, setting: ApprovalSettingsIn | None, principals: KnownPrincipals) -> list[Change]:
    if setting is None:
        return []
    activation = policy.activation
    if setting.isApprovalRequiredForExtension:
        raise RuleRejected(
            "setting.isApprovalRequiredForExtension", "extensions are never approved here (an approver extends freely)"
        )
    mode = setting.approvalMode
    if mode is not None and mode not in ("SingleStage", "Serial", "NoApproval"):
        raise RuleRejected("setting.approvalMode", "one of SingleStage, Serial (stages are decided in order) or NoApproval")
    required = setting.isApprovalRequired
    if required is None:  # Graph shows SingleStage without approval too: the mode alone does not switch it on
        required = mode != "NoApproval" and bool(activation.approval)
        if not required and any(s.primaryApprovers for s in setting.approvalStages or []):
            raise RuleRejected("setting.isApprovalRequired", "approval is off: set it to true with the approvers")
    if required and mode == "NoApproval":
        raise RuleRejected("setting.approvalMode", "NoApproval contradicts isApprovalRequired")
    out = []
    if setting.isRequestorJustificationRequired not in (None, activation.require_justification):
        out.append(
            Change(
                "activation.require_justification",
                setting.isRequestorJustificationRequired,
                "setting.isRequestorJustificationRequired",
            )
        )
    stages = setting.approvalStages
    if stages is not None:
        out += _shared_stage_settings(activation, stages)
    approval = _stages(activation, stages, mode, principals) if required else []
    if approval != [s.model_dump(mode="json") for s in activation.approval]:
        out.append(Change("activation.approval", approval, "setting.approvalStages"))
    return out


def _shared_stage_settings(activation: ActivationSettings, stages: list[ApprovalStageIn]) -> list[Change]:
    """Our approval has one timeout for the whole request and one rule for approvers'
    justifications: every stage must give the same, and escalation does not exist."""
    out = []
    for name, key, current in (
        ("approvalStageTimeOutInDays", "activation.approval_timeout", timeout_days(activation)),
        (
            "isApproverJustificationRequired",
            "activation.approver_justification_required",
            activation.approver_justification_required,
        ),
    ):
        values = [(i, getattr(s, name)) for i, s in enumerate(stages) if getattr(s, name) is not None]
        for index, value in values[1:]:
            if value != values[0][1]:
                raise RuleRejected(
                    f"setting.approvalStages[{index}].{name}", "every stage must give the same value (one for the request)"
                )
        if values and values[0][1] != current:
            value = format_duration(timedelta(days=values[0][1])) if name == "approvalStageTimeOutInDays" else values[0][1]
            out.append(Change(key, value, f"setting.approvalStages[{values[0][0]}].{name}"))
    for index, stage in enumerate(stages):
        if stage.isEscalationEnabled or stage.escalationApprovers:
            name = "isEscalationEnabled" if stage.isEscalationEnabled else "escalationApprovers"
            raise RuleRejected(f"setting.approvalStages[{index}].{name}", "escalation is not supported")
    return out


def _stages(
    activation: ActivationSettings, stages: list[ApprovalStageIn] | None, mode: str | None, principals: KnownPrincipals
) -> list[dict[str, Any]]:
    """Our stages (as JSON) for an approval that is required. Without stages in the
    body the current ones stay; a stage without approvers gets Entra's default
    approvers; a stage without requiredApprovalCount keeps its current count (else 1)."""
    if stages is None:
        current = [s.model_dump(mode="json") for s in activation.approval]
        return current or [{"approvers": DEFAULT_APPROVERS, "required": 1}]
    if not stages:
        raise RuleRejected("setting.approvalStages", "give at least one stage when approval is required")
    if mode == "SingleStage" and len(stages) > 1:
        raise RuleRejected("setting.approvalMode", "SingleStage takes one stage; several are Serial")
    out = []
    for index, stage in enumerate(stages):
        where = f"setting.approvalStages[{index}].primaryApprovers"
        approvers = [_approver(s, f"{where}[{j}]", principals) for j, s in enumerate(stage.primaryApprovers or [])]
        count = stage.requiredApprovalCount
        if count is None:
            count = activation.approval[index].required if index < len(activation.approval) else 1
        out.append({"approvers": list(dict.fromkeys(approvers)) or DEFAULT_APPROVERS, "required": count})
    return out


SUBJECT_ID = {
    SINGLE_USER: ("userId", "user"),
    GROUP_MEMBERS: ("groupId", "group"),
    SINGLE_SERVICE_PRINCIPAL: ("servicePrincipalId", "service"),
}
SUBJECT_PROPERTIES = ("userId", "groupId", "servicePrincipalId", "roleName")


def _approver(subject: SubjectSetIn, where: str, principals: KnownPrincipals) -> str:
    """Our approver id for a Graph subject set: a user, a group's members, a service
    principal, or (our extension) a directory role's holders as `role:NAME`."""
    own = SUBJECT_ID[subject.odata_type][0] if subject.odata_type in SUBJECT_ID else "roleName"
    if subject.odata_type not in SUBJECT_ID and subject.odata_type != DIRECTORY_ROLE_MEMBERS:
        kinds = ", ".join([*SUBJECT_ID, DIRECTORY_ROLE_MEMBERS])
        raise RuleRejected(f"{where}.@odata.type", f"approvers are one of {kinds}")
    for name in SUBJECT_PROPERTIES:
        if name != own and getattr(subject, name) is not None:
            raise RuleRejected(f"{where}.{name}", f"not a property of {subject.odata_type}")
    value = getattr(subject, own)
    if value is None:
        raise RuleRejected(f"{where}.{own}", "required")
    if own == "roleName":
        if value not in authz.ROLES:
            raise RuleRejected(f"{where}.roleName", f"one of {', '.join(authz.ROLES)}")
        return f"{ROLE_PREFIX}{value}"
    kind = SUBJECT_ID[subject.odata_type][1]
    known = principals.get(value)
    if known is None or known.kind != kind:
        raise RuleRejected(f"{where}.{own}", f"not a {kind} of this tenant")
    return str(value)


__all__ = ["PolicyRuleIn", "RuleRejected", "Change", "changes_for", "updated_policy", "settings_of", "mentioned_principals"]
