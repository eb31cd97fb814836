"""Onboarding groups into PIM and taking them out."""

from __future__ import annotations

from temporalio.client import WorkflowUpdateFailedError
from temporalio.service import RPCError

from pim.domain import authorization as authz
from pim.domain.assignments import AssignmentChange, assignment_workflow_id
from pim.operations.context import AdminContext
from pim.store.admin import StoreError

KINDS = ("security", "microsoft365", "dynamic", "synced")
NEVER_ENABLED = ("dynamic", "synced")


async def _require_room_for_role_assignable(ctx: AdminContext, action: str, group_id: str, limit: int) -> None:
    """At most `limit` role-assignable groups per tenant, enabled in PIM or not."""
    if await ctx.store.count_role_assignable() >= limit:
        await ctx.refuse(
            action,
            "role_assignable_limit",
            f"--role-assignable: the tenant already has {limit} role-assignable groups",
            group_id=group_id,
        )


async def onboard_group(
    ctx: AdminContext, group_id: str, kind: str, *, role_assignable: bool = False, max_role_assignable: int = 500
) -> None:
    """Enable a group in PIM (creating it when unknown) with the default member and owner policies."""
    action = "onboard_group"
    await ctx.require_known_actor(action)
    await ctx.require_valid_id(action, group_id)
    if kind not in KINDS:
        await ctx.refuse(action, "invalid_kind", f"--kind: {kind!r} is not one of {', '.join(KINDS)}", group_id=group_id)
    existing = await ctx.store.group(group_id)
    if existing is None and await ctx.store.principal(group_id) is not None:
        await ctx.refuse(action, "principal_exists", f"group: {group_id!r} is a user, not a group", group_id=group_id)
    stored_kind = existing.kind if existing else kind
    if stored_kind in NEVER_ENABLED:
        await ctx.refuse(
            action,
            "group_kind_not_supported",
            f"--kind: {stored_kind} groups can never be enabled in PIM (their membership is managed by "
            "rules or by the on-premises directory)",
            group_id=group_id,
        )
    if existing is not None and existing.role_assignable != role_assignable:
        await ctx.refuse(
            action,
            "role_assignable_fixed",
            f"--role-assignable: {group_id} is {'' if existing.role_assignable else 'not '}role-assignable; "
            "that is fixed when a group is created",
            group_id=group_id,
        )
    if existing is not None and existing.pim_enabled:
        await ctx.refuse(action, "already_enabled", f"group: {group_id} is already enabled in PIM", group_id=group_id)
    reason = authz.refuse_onboarding(
        ctx.actor, await ctx.roles(), group_id=group_id, role_assignable=existing.role_assignable if existing else role_assignable
    )
    if reason:
        await ctx.refuse(action, "not_authorized", reason, group_id=group_id)
    if existing is None and role_assignable:
        await _require_room_for_role_assignable(ctx, action, group_id, max_role_assignable)
    try:
        await ctx.store.onboard_group(group_id, stored_kind, role_assignable=role_assignable, by=ctx.actor)
    except StoreError as error:
        await ctx.refuse(action, error.code, str(error), group_id=group_id)
    await ctx.audit("group_onboarded", group_id=group_id, kind=stored_kind, role_assignable=role_assignable)


async def offboard_group(ctx: AdminContext, group_id: str) -> list[str]:
    """Take a group out of PIM. Refused while activations run; its eligible
    assignments end (returned). Active assignments stay as plain membership."""
    action = "offboard_group"
    group = await ctx.require_group_manager(action, group_id)
    if not group.pim_enabled:
        await ctx.refuse(action, "group_not_enabled", f"group: {group_id} is not enabled in PIM", group_id=group_id)
    running = await ctx.store.running_activations(group_id)
    if running:
        await ctx.refuse(
            action,
            "activations_running",
            f"group: activations are running ({', '.join(running)}); deactivate them first",
            group_id=group_id,
        )
    ended = await ctx.store.disable_group(group_id, by=ctx.actor, at=ctx.now())
    not_stopped = []
    for assignment_id in ended:  # time-bound ones also have a workflow to stop (no reminders, no late end)
        row = await ctx.store.assignment(assignment_id)
        if row is None or row.ends_at is None:  # permanent (or gone): no workflow
            continue
        if ctx.temporal is None:
            not_stopped.append(assignment_id)  # they end by themselves; their end keeps the removal
            continue
        handle = ctx.temporal.get_workflow_handle(assignment_workflow_id(assignment_id))
        try:
            await handle.execute_update("remove", AssignmentChange(by=ctx.actor, reason="group offboarded from PIM"))
        except (RPCError, WorkflowUpdateFailedError):  # no workflow (seeded data) or already ended
            pass
    await ctx.audit("group_offboarded", group_id=group_id, eligible_assignments_ended=ended, workflows_not_stopped=not_stopped)
    return ended


async def create_group(
    ctx: AdminContext, group_id: str, kind: str, *, role_assignable: bool = False, max_role_assignable: int = 500
) -> None:
    """A group known to the directory but not (yet) enabled in PIM; its members
    are plain, permanent active assignments."""
    action = "create_group"
    await ctx.require_known_actor(action)
    await ctx.require_valid_id(action, group_id)
    if kind not in KINDS:
        await ctx.refuse(action, "invalid_kind", f"--kind: {kind!r} is not one of {', '.join(KINDS)}", group_id=group_id)
    if await ctx.store.principal(group_id) is not None:
        await ctx.refuse(action, "principal_exists", f"group: {group_id!r} exists already", group_id=group_id)
    reason = authz.refuse_onboarding(ctx.actor, await ctx.roles(), group_id=group_id, role_assignable=role_assignable)
    if reason:
        await ctx.refuse(action, "not_authorized", reason.replace("onboard", "create"), group_id=group_id)
    if role_assignable:
        await _require_room_for_role_assignable(ctx, action, group_id, max_role_assignable)
    await ctx.store.onboard_group(group_id, kind, role_assignable=role_assignable, enable=False, by=ctx.actor)
    await ctx.audit("group_created", group_id=group_id, kind=kind, role_assignable=role_assignable)
