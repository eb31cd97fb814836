"""Assignments: create, remove, extend and renew. Time-bound ones are run by an
`AssignmentLifecycle` workflow; permanent ones need none."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta

from sqlalchemy.orm import Session
from temporalio.client import WorkflowHandle, WorkflowQueryFailedError, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from pim.directories.sources import confer, withdraw
from pim.domain.actors import Action
from pim.domain.assignment_rules import Kind, check_extension, check_new_assignment, check_removal, check_renewal
from pim.domain.assignments import (
    AssignmentChange,
    AssignmentPlan,
    AssignmentStart,
    AssignmentStatus,
    assignment_workflow_id,
)
from pim.domain.models import AccessType
from pim.domain.policy import AssignmentSettings, Policy
from pim.identity.totp_check import AttemptScope, verify_totp
from pim.operations.context import AdminContext
from pim.operations.eligibility import end_dependent_activations
from pim.store.assignments import end_assignment_in
from pim.store.tables import AssignmentRow

PLAIN_MEMBERSHIP = AssignmentSettings(allow_permanent=True, max_duration=Policy().active_assignment.max_duration)


def _kind(row: AssignmentRow) -> Kind:
    """The row's kind as the rules take it (the store writes no other)."""
    if row.kind == "eligible":
        return "eligible"
    if row.kind == "active":
        return "active"
    raise ValueError(f"assignment {row.id}: unknown kind {row.kind!r}")


async def _settings(ctx: AdminContext, group_id: str, access: AccessType, kind: str) -> AssignmentSettings:
    found = await ctx.store.policy(group_id, access)
    if found is None:  # not enabled in PIM: plain, permanent membership only
        return PLAIN_MEMBERSHIP
    policy = found[0]
    return policy.eligible_assignment if kind == "eligible" else policy.active_assignment


async def mfa_verified(ctx: AdminContext, code: str | None, operation_key: str, **target: str) -> bool:
    """The actor's code, verified and used up (pim/identity/totp_check.py), for the
    operation `operation_key` starts with ("assign_active:grp-ops:..."). A locked MFA
    refuses the operation (`mfa_locked`); a wrong code leaves it unverified. `target`
    (group_id, access) names the group whose administrators hear of a lockout.
    Without a code, a multi-factor sign-in that the front end vouches for
    (`ctx.sign_in`) counts while it is at most ten minutes old."""
    if not code:
        return signed_in_with_mfa(ctx)
    action = operation_key.split(":", 1)[0]
    scope = AttemptScope(action, target.get("group_id"), target.get("access"))
    verdict = await verify_totp(ctx.store, ctx.actor, code, use_key=operation_key, at=ctx.now(), scope=scope)
    locked = [v for v in verdict.violations if v.code == "mfa_locked"]
    if locked:
        await ctx.refuse(action, "mfa_locked", locked[0].message, **target)
    return verdict.accepted


def signed_in_with_mfa(ctx: AdminContext) -> bool:
    from pim.domain.policy import ActivationSettings
    from pim.identity.oidc import check_sign_in

    evidence = ctx.sign_in
    if evidence is None or evidence.method != "signin":
        return False
    claims = {"amr": evidence.amr, "acr": evidence.acr, "auth_time": evidence.auth_time}
    return check_sign_in(claims, ActivationSettings(), ctx.now().timestamp()) is None


async def create_assignment(
    ctx: AdminContext,
    group_id: str,
    principal_id: str,
    *,
    access: AccessType,
    kind: Kind,
    ends_at: datetime | None = None,
    duration: timedelta | None = None,
    justification: str | None = None,
    mfa_code: str | None = None,
) -> str:
    """Permanent when neither `ends_at` nor `duration` (counted from now) is given."""
    action = f"assign_{kind}"
    target = dict(group_id=group_id, principal_id=principal_id, access=access.value)
    group = await ctx.require_group_manager(action, group_id, **{k: v for k, v in target.items() if k != "group_id"})
    at = ctx.now()
    if duration is not None:
        ends_at = at + duration
    facts = await ctx.store.assignment_target(group_id, access, principal_id, kind, at)
    if not facts.group_enabled and facts.group_exists and kind == "active" and ends_at is None:
        facts.group_enabled = True  # a group outside PIM still has plain, permanent members
    settings = await _settings(ctx, group_id, access, kind)
    if kind == "active" and await ctx.acts_as_owner_only(group):
        settings = settings.model_copy(update={"require_mfa": True})
    verified = (
        await mfa_verified(ctx, mfa_code, f"{action}:{group_id}:{principal_id}:{at.isoformat()}", **target)
        if settings.require_mfa
        else False
    )
    violations = check_new_assignment(
        kind, facts, settings, starts_at=at, ends_at=ends_at, justification=justification, mfa_verified=verified, at=at
    )
    await ctx.require_valid(action, violations, **target)
    if ends_at is not None and ctx.temporal is None:
        await ctx.refuse(action, "temporal_unavailable", "a time-bound assignment needs the Temporal server", **target)
    assignment_id = await ctx.store.assign(
        group_id,
        principal_id,
        access=access,
        kind=kind,
        starts_at=at,
        ends_at=ends_at,
        justification=justification,
        by=ctx.actor,
        apply_membership=False,
        created_at=at,
    )
    # Audited before the lifecycle starts, so that its "assignment_started" line comes after.
    await ctx.audit(
        "assignment_created",
        **target,
        assignment_id=assignment_id,
        kind=kind,
        ends_at=ends_at.isoformat() if ends_at else "permanent",
        justification=justification or "",
    )
    if ends_at is None:
        if kind == "active":  # its grant row was written with it
            await confer(ctx.store, ctx.directory, group_id, access, principal_id, record_source=None)
        return assignment_id
    try:
        await _start_lifecycle(ctx, AssignmentStart(assignment_id=assignment_id, starts_at=at, ends_at=ends_at))
    except Exception:
        reason = "its lifecycle workflow did not start"
        await ctx.store.end_assignment(assignment_id, at=at, removed_by=ctx.actor, reason=reason)
        await ctx.audit("assignment_removed", **target, assignment_id=assignment_id, reason=reason)
        raise
    return assignment_id


async def _start_lifecycle(ctx: AdminContext, start: AssignmentStart) -> None:
    """The lifecycle reads the assignment from the store: it is written first."""
    if ctx.temporal is None:  # each caller refuses first, with its audit line
        raise RuntimeError("a time-bound assignment needs the Temporal server")
    await ctx.temporal.start_workflow(
        "AssignmentLifecycle",
        start,
        id=assignment_workflow_id(start.assignment_id),
        task_queue=ctx.task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
    )


async def _load(ctx: AdminContext, action: str, assignment_id: str) -> AssignmentRow:
    row = await ctx.store.assignment(assignment_id)
    if row is None:
        await ctx.refuse(action, "assignment_not_found", f"assignment: no assignment {assignment_id!r}")
    await ctx.require_group_manager(action, row.group_id, principal_id=row.principal_id, assignment_id=assignment_id)
    return row


async def _update(ctx: AdminContext, action: str, row: AssignmentRow, name: str, change: AssignmentChange) -> AssignmentStatus:
    """Tell the lifecycle of a change already written to the store, proven as this actor."""
    proof_action = Action.remove_assignment if name == "remove" else Action.extend_assignment
    change = ctx.prove(change, proof_action, assignment_workflow_id(row.id))
    if ctx.temporal is None:
        await ctx.refuse(
            action,
            "temporal_unavailable",
            "a time-bound assignment is changed through its workflow; the Temporal server is needed",
            group_id=row.group_id,
            principal_id=row.principal_id,
        )
    handle = ctx.temporal.get_workflow_handle(assignment_workflow_id(row.id))
    await _until_loaded(handle)
    try:
        return await handle.execute_update(name, change, result_type=AssignmentStatus)
    except WorkflowUpdateFailedError as error:
        await ctx.refuse(
            action,
            "refused_by_workflow",
            str(getattr(error.cause, "message", error.cause)),
            group_id=row.group_id,
            principal_id=row.principal_id,
        )


async def _until_loaded(handle: WorkflowHandle, timeout: float = 10.0) -> None:
    """A lifecycle started a moment ago may not have read the store yet, and refuses
    changes until it has (it will read this one there). Wait for it, briefly."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if (await handle.query("status", result_type=AssignmentStatus)).state != "loading":
                return
        except (RPCError, WorkflowQueryFailedError):
            pass  # not started on a worker yet
        await asyncio.sleep(0.05)


async def remove_assignment(ctx: AdminContext, assignment_id: str, reason: str | None = None) -> None:
    action = "remove_assignment"
    row = await _load(ctx, action, assignment_id)
    at = ctx.now()
    state = row.state(at)
    if state in ("removed", "expired"):
        await ctx.refuse(
            action,
            "not_removable",
            f"assignment: {assignment_id} is already {state}",
            group_id=row.group_id,
            principal_id=row.principal_id,
        )
    # The first 5 minutes count from the creation, or from the renewal that restarted it.
    began = row.created_at if row.starts_at > at else max(row.created_at, row.starts_at)
    await ctx.require_valid(action, check_removal(began, at), group_id=row.group_id, principal_id=row.principal_id)
    if row.ends_at is not None:  # written first; the lifecycle then withdraws the access and audits the removal
        await ctx.store.end_assignment(row.id, at=at, removed_by=ctx.actor, reason=reason)
        await _update(ctx, action, row, "remove", AssignmentChange(by=ctx.actor, reason=reason))
        return

    def end_assignment(session: Session) -> None:
        end_assignment_in(session, row.id, at=at, removed_by=ctx.actor, reason=reason)

    if row.kind == "active":
        await withdraw(
            ctx.store,
            ctx.directory,
            row.group_id,
            AccessType(row.access),
            row.principal_id,
            source_id=row.id,
            at=at,
            drop_source=end_assignment,
        )
    else:
        await ctx.store.transact(end_assignment)
    await ctx.audit(
        "assignment_removed",
        group_id=row.group_id,
        access=row.access,
        principal_id=row.principal_id,
        assignment_id=assignment_id,
        reason=reason or "",
    )
    # Access follows eligibility: activations that relied on this assignment check again.
    plan = AssignmentPlan(
        assignment_id=row.id,
        group_id=row.group_id,
        access=AccessType(row.access),
        principal_id=row.principal_id,
        kind=_kind(row),
        starts_at=row.starts_at,
        ends_at=at,
        created_by=row.created_by,
    )
    await end_dependent_activations(ctx.store, ctx.temporal, plan, at)


async def extend_assignment(
    ctx: AdminContext,
    assignment_id: str,
    new_end: datetime | None = None,
    justification: str | None = None,
    extra: timedelta | None = None,
) -> datetime:
    """A new end: `new_end`, or `extra` added to the current end. Returns the new end."""
    action = "extend_assignment"
    row = await _load(ctx, action, assignment_id)
    at = ctx.now()
    if extra is not None and row.ends_at is not None:
        new_end = row.ends_at + extra
    if new_end is None:
        await ctx.refuse(
            action,
            "not_extendable",
            "a permanent assignment has no end to extend",
            group_id=row.group_id,
            principal_id=row.principal_id,
        )
    settings = await _settings(ctx, row.group_id, AccessType(row.access), row.kind)
    await ctx.require_valid(
        action,
        check_extension(row.state(at), row.starts_at, row.ends_at, new_end, settings, _kind(row), at),
        group_id=row.group_id,
        principal_id=row.principal_id,
    )
    # Written first: the lifecycle accepts only a change the store holds.
    await ctx.store.change_assignment_window(row.id, starts_at=row.starts_at, ends_at=new_end, by=ctx.actor, at=at)
    await ctx.audit(
        "assignment_extended",
        group_id=row.group_id,
        access=row.access,
        principal_id=row.principal_id,
        assignment_id=assignment_id,
        old_end=row.ends_at.isoformat() if row.ends_at else "permanent",  # refused above when permanent
        new_end=new_end.isoformat(),
        justification=justification or "",
    )
    await _update(ctx, action, row, "extend", AssignmentChange(by=ctx.actor, ends_at=new_end))
    return new_end


async def renew_assignment(
    ctx: AdminContext,
    assignment_id: str,
    new_end: datetime | None = None,
    justification: str | None = None,
    extra: timedelta | None = None,
) -> datetime:
    """An expired assignment gets a new window from now, ending at `new_end` or
    after `extra` (up to 30 days after it expired). Returns the new end."""
    action = "renew_assignment"
    row = await _load(ctx, action, assignment_id)
    at = ctx.now()
    if extra is not None:
        new_end = at + extra
    assert new_end is not None
    settings = await _settings(ctx, row.group_id, AccessType(row.access), row.kind)
    await ctx.require_valid(
        action,
        check_renewal(row.state(at), row.ends_at, new_end, settings, _kind(row), at),
        group_id=row.group_id,
        principal_id=row.principal_id,
    )
    if ctx.temporal is None:
        await ctx.refuse(action, "temporal_unavailable", "renewing needs the Temporal server")
    await ctx.store.change_assignment_window(row.id, starts_at=at, ends_at=new_end, by=ctx.actor, at=at)
    await _start_lifecycle(ctx, AssignmentStart(assignment_id=row.id, starts_at=at, ends_at=new_end))
    await ctx.audit(
        "assignment_renewed",
        group_id=row.group_id,
        access=row.access,
        principal_id=row.principal_id,
        assignment_id=assignment_id,
        old_end=row.ends_at.isoformat() if row.ends_at else "permanent",  # refused above when permanent
        new_end=new_end.isoformat(),
        justification=justification or "",
    )
    return new_end


async def start_missing_lifecycles(ctx: AdminContext) -> list[str]:
    """Time-bound assignments written straight to the store (the demo seed) get
    their lifecycle workflow; ones that have or had a workflow are left alone."""
    if ctx.temporal is None:
        raise RuntimeError("starting assignment lifecycles needs the Temporal server")
    started = []
    at = ctx.now()
    for row in await ctx.store.assignments():
        if row.ends_at is None or row.state(at) not in ("scheduled", "active"):
            continue
        start = AssignmentStart(assignment_id=row.id, starts_at=row.starts_at, ends_at=row.ends_at)
        try:
            await ctx.temporal.start_workflow(
                "AssignmentLifecycle",
                start,
                id=assignment_workflow_id(row.id),
                task_queue=ctx.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
            )
            started.append(row.id)
        except WorkflowAlreadyStartedError:
            pass
    return started
