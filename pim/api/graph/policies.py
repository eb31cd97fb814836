"""`/v1.0/policies/roleManagementPolicyAssignments` and `/v1.0/policies/roleManagementPolicies`:
each PIM-enabled group's member and owner policies as Graph's role management
policies, their rules (pim/api/graph/policy_rules.py), and a rule changed by PATCH
(pim/api/graph/policy_rule_updates.py).

Reading is for any signed-in caller, as `pim policy show` is. A PATCH is the
operation `pim policy set` runs (pim/operations/policies.py): it authorizes the
caller (403 otherwise), asks an owner of a role-assignable group for MFA (`mfaCode`),
versions the policy and audits the change."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from pim.api.auth import Caller, authenticated, services
from pim.api.errors import bad_request, not_found
from pim.api.graph.filters import parse_filter
from pim.api.graph.models import GRAPH_ROOT, GraphEntity, GraphOut, context
from pim.api.graph.policy_rule_updates import (
    PolicyRuleIn,
    RuleRejected,
    changes_for,
    mentioned_principals,
    settings_of,
    updated_policy,
)
from pim.api.graph.policy_rules import (
    RULES,
    KnownPrincipal,
    KnownPrincipals,
    PolicyRule,
    assignment_id,
    graph_rule,
    graph_rules,
    parse_assignment_id,
    parse_policy_id,
    policy_id,
)
from pim.api.native.guards import counting_mfa_failures
from pim.api.services import ApiServices
from pim.domain.models import AccessType
from pim.domain.policy import ROLE_PREFIX, Policy
from pim.operations import policies as policy_ops
from pim.store import Store

ASSIGNMENTS = "policies/roleManagementPolicyAssignments"
POLICIES = "policies/roleManagementPolicies"
router = APIRouter(prefix=f"{GRAPH_ROOT}/policies", tags=["roleManagementPolicies"])
Filter = Annotated[str | None, Query(alias="$filter", max_length=1000)]
Expand = Annotated[str | None, Query(alias="$expand", max_length=200)]
# Navigation properties, left out of an answer unless `$expand` asks for them.
NAVIGATION = ("policy", "rules", "effectiveRules")


class RoleManagementPolicy(GraphEntity):
    """unifiedRoleManagementPolicy: one group's member or owner policy."""

    id: str
    displayName: str
    description: str
    isOrganizationDefault: bool = False
    scopeId: str
    scopeType: Literal["Group"] = "Group"
    lastModifiedDateTime: datetime | None = None
    rules: list[PolicyRule] | None = None
    effectiveRules: list[PolicyRule] | None = None  # the same: no tenant-wide policy is inherited here


class RoleManagementPolicyAssignment(GraphEntity):
    """unifiedRoleManagementPolicyAssignment: roleDefinitionId is the access (member, owner)."""

    id: str
    policyId: str
    scopeId: str
    scopeType: Literal["Group"] = "Group"
    roleDefinitionId: Literal["member", "owner"]
    policy: RoleManagementPolicy | None = None


class PolicyAssignmentList(GraphOut):
    odata_context: str = Field(alias="@odata.context")
    value: list[RoleManagementPolicyAssignment]


class PolicyList(GraphOut):
    odata_context: str = Field(alias="@odata.context")
    value: list[RoleManagementPolicy]


class RuleList(GraphOut):
    odata_context: str = Field(alias="@odata.context")
    value: list[PolicyRule]


# --- reading -------------------------------------------------------------------------


@router.get(
    "/roleManagementPolicyAssignments",
    response_model=PolicyAssignmentList,
    summary="A group's policy assignments ($filter on scopeId and scopeType 'Group', optionally roleDefinitionId)",
)
async def list_policy_assignments(
    filter_: Filter = None, expand: Expand = None, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> JSONResponse:
    wanted = parse_filter(filter_, {"scopeId", "scopeType", "roleDefinitionId"})
    group_id = _group_scope(wanted)
    expanded = _expansions(expand, {"policy", "policy/rules", "policy/effectiveRules"})
    found = []
    for access in AccessType:
        if wanted.get("roleDefinitionId") in (None, access.value):
            policy = await _stored_policy(api.store, group_id, access)
            if policy is not None:
                found.append(await _assignment(api.store, group_id, access, policy, expanded))
    return _answer(PolicyAssignmentList.model_validate({"@odata.context": context(ASSIGNMENTS), "value": found}))


@router.get(
    "/roleManagementPolicyAssignments/{assignment_id}",
    response_model=RoleManagementPolicyAssignment,
    summary="A policy assignment (id Group_{groupId}_{access}_{access})",
)
async def get_policy_assignment(
    assignment_id: str, expand: Expand = None, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> JSONResponse:
    parsed = parse_assignment_id(assignment_id)
    policy = await _stored_policy(api.store, *parsed) if parsed else None
    if parsed is None or policy is None:
        raise not_found("no such policy assignment (ids are Group_{groupId}_member_member and Group_{groupId}_owner_owner)")
    expanded = _expansions(expand, {"policy", "policy/rules", "policy/effectiveRules"})
    found = await _assignment(api.store, *parsed, policy, expanded)
    found.odata_context = context(ASSIGNMENTS, entity=True)
    return _answer(found)


@router.get(
    "/roleManagementPolicies",
    response_model=PolicyList,
    summary="A group's member and owner policies ($filter on scopeId and scopeType 'Group')",
)
async def list_policies(
    filter_: Filter = None, expand: Expand = None, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> JSONResponse:
    group_id = _group_scope(parse_filter(filter_, {"scopeId", "scopeType"}))
    expanded = _expansions(expand, {"rules", "effectiveRules"})
    found = []
    for access in AccessType:
        policy = await _stored_policy(api.store, group_id, access)
        if policy is not None:
            found.append(await _policy_out(api.store, group_id, access, policy, expanded))
    return _answer(PolicyList.model_validate({"@odata.context": context(POLICIES), "value": found}))


@router.get(
    "/roleManagementPolicies/{policy_id}",
    response_model=RoleManagementPolicy,
    summary="A policy (id Group_{groupId}_{member|owner}); $expand=rules for its rules",
)
async def get_policy(
    policy_id: str, expand: Expand = None, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> JSONResponse:
    group_id, access, policy = await _policy_named(api.store, policy_id)
    found = await _policy_out(api.store, group_id, access, policy, _expansions(expand, {"rules", "effectiveRules"}))
    found.odata_context = context(POLICIES, entity=True)
    return _answer(found)


@router.get(
    "/roleManagementPolicies/{policy_id}/rules",
    response_model=RuleList,
    summary="A policy's rules",
)
async def list_rules(
    policy_id: str, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> JSONResponse:
    _, _, policy = await _policy_named(api.store, policy_id)
    rules = graph_rules(policy, await known_principals(api.store, policy))
    return _answer(RuleList.model_validate({"@odata.context": context(f"{POLICIES}('{policy_id}')/rules"), "value": rules}))


@router.get("/roleManagementPolicies/{policy_id}/rules/{rule_id}", response_model=PolicyRule, summary="A rule of a policy")
async def get_rule(
    policy_id: str, rule_id: str, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> JSONResponse:
    _, _, policy = await _policy_named(api.store, policy_id)
    _require_rule(rule_id)
    rule = graph_rule(policy, rule_id, await known_principals(api.store, policy))
    body = {
        "@odata.context": context(f"{POLICIES}('{policy_id}')/rules", entity=True),
        **rule.model_dump(mode="json", by_alias=True),
    }
    return JSONResponse(body)


# --- changing ------------------------------------------------------------------------


@router.patch(
    "/roleManagementPolicies/{policy_id}/rules/{rule_id}",
    status_code=204,
    response_class=Response,
    summary="Change a rule: the policy gets a new version (running requests keep theirs)",
)
async def update_rule(
    policy_id: str,
    rule_id: str,
    body: PolicyRuleIn,
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> Response:
    group_id, access, policy = await _policy_named(api.store, policy_id)
    _require_rule(rule_id)
    action = "set_policy"
    with counting_mfa_failures(api, caller, body.mfaCode):
        async with api.admin(caller) as ctx:
            # Authorized first: who may not change the policy learns nothing from its checks.
            await ctx.require_group_manager(action, group_id, access=access.value)
            principals = await known_principals(api.store, policy, mentioned_principals(body))
            try:
                changes = changes_for(policy, rule_id, body, principals)
                if changes:
                    updated_policy(policy, changes)
            except RuleRejected as rejected:
                await ctx.audit(
                    "refused",
                    attempted=action,
                    code="invalid_policy",
                    reason=str(rejected),
                    group_id=group_id,
                    access=access.value,
                )
                raise bad_request(str(rejected), rejected.property, "invalid_policy") from None
            if changes:  # a rule sent back as it was changes nothing, and makes no new version
                await policy_ops.set_policy(ctx, group_id, access, settings_of(changes), body.mfaCode)
    return Response(status_code=204)


# --- helpers -------------------------------------------------------------------------


async def known_principals(store: Store, policy: Policy, more: set[str] | None = None) -> KnownPrincipals:
    """The store's facts about the policy's approvers (and `more` ids)."""
    ids = {a for stage in policy.activation.approval for a in stage.approvers if not a.startswith(ROLE_PREFIX)}
    found: dict[str, KnownPrincipal] = {}
    for principal_id in sorted(ids | (more or set())):
        row = await store.principal(principal_id)
        if row is not None:
            found[principal_id] = KnownPrincipal(row.kind, row.display_name)
    return found


async def _stored_policy(store: Store, group_id: str, access: AccessType) -> Policy | None:
    found = await store.policy(group_id, access)
    return found[0] if found else None


async def _policy_named(store: Store, text: str) -> tuple[str, AccessType, Policy]:
    parsed = parse_policy_id(text)
    policy = await _stored_policy(store, *parsed) if parsed else None
    if parsed is None or policy is None:
        raise not_found("no such policy (ids are Group_{groupId}_member and Group_{groupId}_owner)")
    return parsed[0], parsed[1], policy


def _require_rule(rule_id: str) -> None:
    if rule_id not in RULES:
        raise not_found(f"no such rule (rules: {', '.join(RULES)})")


def _group_scope(wanted: dict[str, str | None]) -> str:
    """Graph requires both: `scopeId eq '{groupId}' and scopeType eq 'Group'`."""
    if not wanted.get("scopeId") or not wanted.get("scopeType"):
        raise bad_request("$filter: give scopeId and scopeType (scopeId eq '{groupId}' and scopeType eq 'Group')", "$filter")
    if wanted["scopeType"] != "Group":
        raise bad_request("$filter: scopeType: only 'Group' policies (PIM for Groups) are served here", "$filter")
    return str(wanted["scopeId"])


EXPAND_ITEM = re.compile(r"^([A-Za-z]+)(?:\(\$expand=([A-Za-z,]+)\))?$")


def _expansions(text: str | None, allowed: set[str]) -> frozenset[str]:
    """What `$expand` asks for, as paths: `policy($expand=rules)` is policy and policy/rules."""
    found: set[str] = set()
    for item in re.split(r",(?![^(]*\))", (text or "").replace(" ", "")):
        if not item:
            continue
        match = EXPAND_ITEM.match(item)
        if match is None:
            raise bad_request(f"$expand: supported: {', '.join(sorted(allowed))}", "$expand")
        name, nested = match.groups()
        found |= {name, *(f"{name}/{n}" for n in (nested or "").split(",") if n)}
    if not found <= allowed:
        raise bad_request(f"$expand: supported: {', '.join(sorted(allowed))}", "$expand")
    return frozenset(found)


async def _policy_out(
    store: Store, group_id: str, access: AccessType, policy: Policy, expanded: frozenset[str]
) -> RoleManagementPolicy:
    rules = graph_rules(policy, await known_principals(store, policy)) if expanded & {"rules", "effectiveRules"} else None
    return RoleManagementPolicy(
        id=policy_id(group_id, access),
        displayName="Group",
        description=f"PIM for Groups: {access.value} policy of {group_id}",
        scopeId=group_id,
        rules=rules if "rules" in expanded else None,
        effectiveRules=rules if "effectiveRules" in expanded else None,
    )


async def _assignment(
    store: Store, group_id: str, access: AccessType, policy: Policy, expanded: frozenset[str]
) -> RoleManagementPolicyAssignment:
    nested = frozenset(e.removeprefix("policy/") for e in expanded if e.startswith("policy/"))
    return RoleManagementPolicyAssignment(
        id=assignment_id(group_id, access),
        policyId=policy_id(group_id, access),
        scopeId=group_id,
        roleDefinitionId=access.value,
        policy=await _policy_out(store, group_id, access, policy, nested) if "policy" in expanded else None,
    )


def _answer(model: GraphOut) -> JSONResponse:
    """Graph's JSON: navigation properties only when expanded."""
    return JSONResponse(_without_unexpanded(model.model_dump(mode="json", by_alias=True)))


def _without_unexpanded(data: Any) -> Any:
    if isinstance(data, list):
        return [_without_unexpanded(item) for item in data]
    if isinstance(data, dict):
        return {k: _without_unexpanded(v) for k, v in data.items() if not (k in NAVIGATION and v is None)}
    return data
