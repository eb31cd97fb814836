"""Changing a policy: validated as a whole, audited with old and new values.
Running requests keep the version they started with."""

from __future__ import annotations

import json
from typing import Any

from pydantic import ValidationError

from pim.domain import authorization as authz
from pim.domain.models import AccessType, violations_from_validation_error
from pim.domain.policy import ROLE_PREFIX, Policy
from pim.operations.assignments import mfa_verified
from pim.operations.context import AdminContext


def apply_settings(current: dict, assignments: list[str]) -> tuple[dict, dict[str, dict[str, Any]]]:
    """KEY=VALUE items (VALUE as JSON, else a string) over a policy's JSON; returns
    the new JSON and {key: {old, new}}. Raises ValueError naming the key."""
    data = json.loads(json.dumps(current))
    changes: dict[str, dict[str, Any]] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        key = key.strip()
        if not sep:
            raise ValueError(f"{item!r}: use KEY=VALUE")
        try:
            value = json.loads(raw)
        except json.JSONDecodeError:
            value = raw  # a bare string such as PT4H
        node = data
        parts = key.split(".")
        for part in parts[:-1]:
            if not isinstance(node.get(part), dict):
                raise ValueError(f"{key}: unknown setting")
            node = node[part]
        if parts[-1] not in node:
            raise ValueError(f"{key}: unknown setting")
        changes[key] = {"old": node[parts[-1]], "new": value}
        node[parts[-1]] = value
    return data, changes


async def set_policy(
    ctx: AdminContext, group_id: str, access: AccessType, assignments: list[str], mfa_code: str | None = None
) -> int:
    action = "set_policy"
    group = await ctx.require_group_manager(action, group_id, access=access.value)
    if await ctx.acts_as_owner_only(group):
        key = f"{action}:{group_id}:{access.value}:{ctx.now().isoformat()}"
        if not await mfa_verified(ctx, mfa_code, key, group_id=group_id, access=access.value):
            await ctx.refuse(
                action,
                "mfa_required",
                f"mfa: an owner of the role-assignable group {group_id} changes its policy only with MFA (--mfa-code)",
                group_id=group_id,
                access=access.value,
            )
    found = await ctx.store.policy(group_id, access)
    if found is None:
        await ctx.refuse(action, "group_not_enabled", f"group: {group_id} is not enabled in PIM", group_id=group_id)
    old = found[0].model_dump(mode="json")
    try:
        data, changes = apply_settings(old, assignments)
        policy = Policy.model_validate(data)
    except ValidationError as error:
        problems = "; ".join(v.message for v in violations_from_validation_error(error))
        await ctx.refuse(action, "invalid_policy", problems, group_id=group_id)
    except ValueError as error:
        await ctx.refuse(action, "invalid_policy", str(error), group_id=group_id)
    for index, stage in enumerate(policy.activation.approval):
        for approver in stage.approvers:
            if approver.startswith(ROLE_PREFIX):
                if approver.removeprefix(ROLE_PREFIX) not in authz.ROLES:
                    await ctx.refuse(
                        action, "invalid_policy", f"activation.approval[{index}]: unknown role in {approver!r}", group_id=group_id
                    )
                continue
            if await ctx.store.principal(approver) is None:
                await ctx.refuse(
                    action, "invalid_policy", f"activation.approval[{index}]: no principal {approver!r}", group_id=group_id
                )
    # Store the normalized new values (e.g. "PT4H" rather than what was typed).
    normalized = policy.model_dump(mode="json")
    for key, change in changes.items():
        node: Any = normalized
        for part in key.split("."):
            node = node[part]
        change["new"] = node
    version = await ctx.store.set_policy(group_id, access, policy, by=ctx.actor)
    await ctx.audit("policy_changed", group_id=group_id, access=access.value, version=version, changes=changes)
    return version
