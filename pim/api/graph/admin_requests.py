"""The administrator's actions on assignmentScheduleRequests and
eligibilityScheduleRequests (adminAssign, adminRemove, adminExtend, adminRenew):
active or eligible assignments, through the operations of
pim/operations/assignments.py, which authorize and audit them as the caller.

| action | operation | scheduleInfo.expiration |
|---|---|---|
| adminAssign | create_assignment | afterDuration: from now; afterDateTime: the end; noExpiration (or none): permanent |
| adminRemove | remove_assignment (the principal's live assignment); for an active one without any, the running activation is deactivated | ignored |
| adminExtend | extend_assignment (the live assignment) | afterDuration: how much longer; afterDateTime: the new end |
| adminRenew | renew_assignment (the last expired assignment) | afterDuration: from now; afterDateTime: the new end |

The answer is the audit line that the operation wrote, as a Graph request
(pim/api/graph/admin_history.py); its id reads back under the same resource."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Literal, TypeVar

from temporalio.service import RPCError

from pim.api.errors import ACTIVE_TOO_SHORT, POLICY_FAILED, ErrorDetail, GraphError, bad_request, from_refusal
from pim.api.graph import admin_history
from pim.api.graph.activations import AssignmentScheduleRequest, as_graph_request
from pim.api.graph.models import RequestSchedule, context
from pim.api.ids import AdminRequestRef
from pim.domain.assignments import AssignmentStatus, assignment_workflow_id
from pim.domain.models import AccessType, activation_workflow_id
from pim.operations import assignments as operations
from pim.operations import requests as flows
from pim.operations.context import AdminContext, Refused
from pim.store.tables import AssignmentRow

if TYPE_CHECKING:
    from pim.api.auth import Caller
    from pim.api.graph.requests import AssignmentScheduleRequestIn
    from pim.api.services import ApiServices

Kind = Literal["active", "eligible"]
R = TypeVar("R", bound=AssignmentScheduleRequest)
ASSIGNMENT_REQUESTS = "identityGovernance/privilegedAccess/group/assignmentScheduleRequests"
# A start this close to now (or earlier: client clocks differ) means now.
IMMEDIATE = timedelta(minutes=1)
# Refusals that are the policy's verdict, answered with Graph's code for those.
POLICY_CODES = frozenset(
    {"permanent_not_allowed", "duration_exceeds_max", "duration_too_short", "justification_required", "mfa_required"}
)
# The operation each action is, as refusals of it are audited.
ATTEMPTED = {"adminRemove": "remove_assignment", "adminExtend": "extend_assignment", "adminRenew": "renew_assignment"}
# Field names of the operations' messages, as the Graph body names them.
GRAPH_FIELDS = {
    "--permanent": "scheduleInfo.expiration",
    "duration": "scheduleInfo.expiration.duration",
    "end": "scheduleInfo.expiration.endDateTime",
    "principal": "principalId",
    "group": "groupId",
    "mfa": "mfaCode",
    "justification": "justification",
}


async def create(api: ApiServices, caller: Caller, body: AssignmentScheduleRequestIn) -> AssignmentScheduleRequest:
    """An administrator's action on active assignments (assignmentScheduleRequests)."""
    return await perform(api, caller, body, "active", AssignmentScheduleRequest, ASSIGNMENT_REQUESTS)


async def get(api: ApiServices, caller: Caller, ref: AdminRequestRef) -> AssignmentScheduleRequest:
    found = await admin_history.visible_admin_request(api, caller, ref, "active", AssignmentScheduleRequest)
    found.odata_context = context(ASSIGNMENT_REQUESTS, entity=True)
    return found


async def perform(
    api: ApiServices, caller: Caller, body: AssignmentScheduleRequestIn, kind: Kind, model: type[R], resource: str
) -> R:
    """Do the action as the caller; answer 201's body: the request it was."""
    refuse_unsupported(body)
    if body.mfaCode is not None and api.limiter.exceeded(api.mfa_failure_limit, caller.principal_id):
        api.limiter.check(api.mfa_failure_limit, caller.principal_id)  # raises 429 with Retry-After
    since = datetime.now(UTC)
    done: AssignmentRow | R
    try:
        async with api.admin(caller) as ctx:
            if body.action != "adminAssign":  # before any look-up: an outsider learns nothing of who holds what
                target_of = dict(principal_id=body.principalId, access=body.accessId)
                await ctx.require_group_manager(ATTEMPTED[body.action], body.groupId, **target_of)
            if body.action == "adminRemove":
                done = await remove(api, ctx, body, kind, model)
            else:
                done = await change(ctx, body, kind)
                await until_in_effect(api, done)
    except Refused as refused:
        if body.mfaCode is not None and refused.code.startswith("mfa_"):
            api.limiter.record(api.mfa_failure_limit, caller.principal_id)
        raise graph_refusal(refused) from None
    if isinstance(done, AssignmentRow):
        answer = await read_back(api, done, body.action, caller.principal_id, since, model)
    else:
        answer = done
    answer.odata_context = context(resource, entity=True)
    return answer


def refuse_unsupported(body: AssignmentScheduleRequestIn) -> None:
    """What an administrator's action cannot honour is refused, never dropped."""
    if body.isValidationOnly:
        raise bad_request(f"isValidationOnly: {body.action} has no dry run here; leave it false", "isValidationOnly")
    ticket = body.ticketInfo
    if ticket is not None and (ticket.ticketNumber or ticket.ticketSystem):
        raise bad_request(f"ticketInfo: {body.action} records no ticket; name it in the justification instead", "ticketInfo")
    start = body.scheduleInfo.startDateTime if body.scheduleInfo else None
    if start is not None and start > datetime.now(UTC) + IMMEDIATE:
        raise bad_request(
            "scheduleInfo.startDateTime: assignments take effect when they are made; a later start is not supported",
            "scheduleInfo.startDateTime",
        )


async def change(ctx: AdminContext, body: AssignmentScheduleRequestIn, kind: Kind) -> AssignmentRow:
    """adminAssign, adminExtend, adminRenew: the assignment they made or changed."""
    access = AccessType(body.accessId)
    schedule = body.scheduleInfo or RequestSchedule()
    if body.action == "adminAssign":
        duration, ends_at = window_of(schedule)
        assignment_id = await operations.create_assignment(
            ctx,
            body.groupId,
            body.principalId,
            access=access,
            kind=kind,
            ends_at=ends_at,
            duration=duration,
            justification=body.justification,
            mfa_code=body.mfaCode,
        )
        return await _row(ctx, assignment_id)
    renewing = body.action == "adminRenew"
    row = await target(ctx, body, kind, "expired" if renewing else "live")
    duration, new_end = window_of(schedule)
    if duration is None and new_end is None:
        raise bad_request(
            f"scheduleInfo.expiration: {body.action} needs afterDuration or afterDateTime", "scheduleInfo.expiration"
        )
    step = operations.renew_assignment if renewing else operations.extend_assignment
    await step(ctx, row.id, new_end=new_end, justification=body.justification, extra=duration)
    return await _row(ctx, row.id)


async def remove(
    api: ApiServices, ctx: AdminContext, body: AssignmentScheduleRequestIn, kind: Kind, model: type[R]
) -> AssignmentRow | R:
    """The principal's live assignment of this kind is removed; without one, an active
    access that comes from an activation is deactivated as this administrator."""
    live = await assignments_of(ctx, body, kind)
    if live:
        for row in live:  # the rules allow one at a time; remove whatever is there
            await operations.remove_assignment(ctx, row.id, reason=body.justification)
        return await _row(ctx, live[0].id)
    if kind == "active":
        deactivated = await deactivate(api, ctx, body)
        if deactivated is not None:
            return model.model_validate(deactivated.model_dump())
    raise no_assignment(body, kind)


async def deactivate(api: ApiServices, ctx: AdminContext, body: AssignmentScheduleRequestIn) -> AssignmentScheduleRequest | None:
    """The principal's running activation, deactivated by the caller (a manager of the
    group, checked before, and again by the workflow); None when there is none."""
    from pim.api.graph.requests import running_activation  # its module imports this one

    workflow_id = activation_workflow_id(body.groupId, body.accessId, body.principalId)
    running = await running_activation(api, workflow_id)
    if running is None or running[1].state.value != "active":
        return None
    status = await flows.deactivate(api.pim, workflow_id, ctx.actor, body.justification)
    answer = as_graph_request(running[0], status, action="adminRemove")
    # What the administrator did, in the activation's request (whose id reads it back as the activation).
    answer.createdBy = await admin_history.identity_set(api, ctx.actor)
    answer.justification = body.justification
    return answer


async def until_in_effect(api: ApiServices, row: AssignmentRow) -> None:
    """A time-bound assignment takes effect through its lifecycle workflow, which loads it
    from the store first: answer Provisioned once it has (or at the settle timeout).
    A change sent while it is still loading would be refused by it."""
    if row.ends_at is None:
        return  # permanent: in effect as written
    handle = api.pim.temporal.get_workflow_handle(assignment_workflow_id(row.id))
    deadline = time.monotonic() + api.settings.api_settle_timeout
    while time.monotonic() < deadline:
        try:
            status = await handle.query("status", result_type=AssignmentStatus)
        except RPCError:
            status = None  # not started yet, as far as the server can tell
        if status is not None and status.state not in ("loading", "scheduled"):
            return
        await asyncio.sleep(0.05)


def window_of(schedule: RequestSchedule) -> tuple[timedelta | None, datetime | None]:
    """(duration, end) from scheduleInfo.expiration; neither for noExpiration."""
    expiration = schedule.expiration
    if expiration is None or expiration.type in ("notSpecified", "noExpiration"):
        return None, None
    if expiration.type == "afterDuration":
        return expiration.duration, None
    return None, expiration.endDateTime


async def assignments_of(ctx: AdminContext, body: AssignmentScheduleRequestIn, kind: Kind) -> list[AssignmentRow]:
    """The principal's live (or scheduled) assignments of this kind, group and access."""
    at = ctx.now()
    rows = await ctx.store.assignments(body.groupId, body.principalId)
    return [row for row in rows if row.kind == kind and row.access == body.accessId and row.state(at) in ("active", "scheduled")]


async def target(ctx: AdminContext, body: AssignmentScheduleRequestIn, kind: Kind, state: str) -> AssignmentRow:
    """The assignment an extension (live) or a renewal (expired: the last one) applies to."""
    if state == "live":
        found = await assignments_of(ctx, body, kind)
    else:
        at = ctx.now()
        rows = await ctx.store.assignments(body.groupId, body.principalId)
        found = sorted(
            (r for r in rows if r.kind == kind and r.access == body.accessId and r.state(at) == "expired"),
            key=lambda r: r.ends_at or at,
            reverse=True,
        )
    if not found:
        raise no_assignment(body, kind, "expired " if state == "expired" else "")
    return found[0]


def no_assignment(body: AssignmentScheduleRequestIn, kind: Kind, which: str = "") -> GraphError:
    message = f"principalId: {body.principalId} has no {which}{kind} {body.accessId} assignment of {body.groupId}"
    return GraphError(
        400,
        "RoleAssignmentDoesNotExist",
        message,
        [ErrorDetail(code="assignment_not_found", message=message, target="principalId")],
    )


async def _row(ctx: AdminContext, assignment_id: str) -> AssignmentRow:
    row = await ctx.store.assignment(assignment_id)
    assert row is not None  # the operation just wrote it
    return row


async def read_back(api: ApiServices, row: AssignmentRow, action: str, actor: str, since: datetime, model: type[R]) -> R:
    """The request that the change was: the audit line the operation wrote."""
    line = await admin_history.recorded_line(api, row, admin_history.LINE_OF_ACTION[action], actor, since)
    if line is None:  # the change is made; only its record is missing: say so rather than invent one
        raise GraphError(
            503, "ServiceUnavailable", f"{action} was done, but its audit line cannot be read yet; list the schedules"
        )
    return await admin_history.as_admin_request(api, row, line, model)


def graph_refusal(refused: Refused) -> GraphError:
    """The operations' refusal in Graph's terms: its fields named as the body names them,
    the policy's verdicts with Graph's code for those."""
    error = from_refusal(refused)
    parts = []
    for part in error.message.split("; "):
        field, sep, reason = part.partition(": ")
        parts.append(f"{GRAPH_FIELDS[field]}: {reason}" if sep and field in GRAPH_FIELDS else part)
    error.message = "; ".join(parts)
    head = error.message.partition(": ")[0]
    for detail in error.details:
        detail.message = error.message
        detail.target = head if head in GRAPH_FIELDS.values() else None
    if refused.code in POLICY_CODES:
        error.code = POLICY_FAILED
    elif refused.code == "removal_too_early":
        error.code = ACTIVE_TOO_SHORT
    elif refused.code == "assignment_exists":
        error.code = "RoleAssignmentExists"
    return error
