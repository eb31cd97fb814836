"""Administrators' requests as Graph reads them back: adminAssign, adminRemove,
adminExtend and adminRenew of an assignment are no workflow run but a change the
operation made and audited. The audit line is the request (pim/api/ids.py gives
its id): who, when, which assignment, why, and the window it set.

| audit line | action | status |
|---|---|---|
| assignment_created | adminAssign | Provisioned |
| assignment_extended | adminExtend | Provisioned |
| assignment_renewed | adminRenew | Provisioned |
| assignment_removed | adminRemove | Revoked |

The same shape serves assignmentScheduleRequests (active assignments) and
eligibilityScheduleRequests (eligible ones)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from pim.api.auth import Caller
from pim.api.errors import forbidden, not_found
from pim.api.graph.activations import AssignmentScheduleRequest
from pim.api.graph.filters import same_value
from pim.api.graph.models import Identity, IdentitySet, ScheduleOut, expiration_out
from pim.api.ids import AdminRequestRef
from pim.api.services import ApiServices
from pim.store.tables import AssignmentRow, AuditRow

ACTION_OF_LINE = {
    "assignment_created": "adminAssign",
    "assignment_extended": "adminExtend",
    "assignment_renewed": "adminRenew",
    "assignment_removed": "adminRemove",
}
LINE_OF_ACTION = {action: line for line, action in ACTION_OF_LINE.items()}
LIST_LIMIT = 200
# The audit line is dated by the store's clock, which may differ a little from ours.
CLOCK_SLACK = timedelta(minutes=1)

R = TypeVar("R", bound=AssignmentScheduleRequest)


def assignment_of(line: AuditRow) -> str | None:
    found = line.details.get("assignment_id") if isinstance(line.details, dict) else None
    return found if isinstance(found, str) else None


async def identity_set(api: ApiServices, principal_id: str | None) -> IdentitySet:
    """Graph's createdBy: a user, or an application for a service principal."""
    principal = await api.store.principal(principal_id) if principal_id else None
    who = Identity(id=principal_id or "", displayName=principal.display_name or None if principal else None)
    return IdentitySet(application=who) if principal is not None and principal.kind == "service" else IdentitySet(user=who)


def _end_of(line: AuditRow) -> datetime | None:
    text = line.details.get("new_end") or line.details.get("ends_at")
    if not isinstance(text, str) or text in ("", "permanent"):
        return None
    return datetime.fromisoformat(text)


def _schedule_of(line: AuditRow, action: str) -> ScheduleOut:
    if action == "adminRemove":
        return ScheduleOut(startDateTime=line.at, expiration={"type": "notSpecified", "endDateTime": None, "duration": None})
    return ScheduleOut(startDateTime=line.at, expiration=expiration_out(line.at, _end_of(line)))


async def as_admin_request(api: ApiServices, row: AssignmentRow, line: AuditRow, model: type[R]) -> R:
    """The Graph request that an audit line of an administrator's change is."""
    action = ACTION_OF_LINE[line.action]
    said = line.details.get("reason" if action == "adminRemove" else "justification")
    return model(
        id=AdminRequestRef(row.id, line.id).id,
        status="Revoked" if action == "adminRemove" else "Provisioned",
        action=action,
        accessId=row.access,
        principalId=row.principal_id,
        groupId=row.group_id,
        justification=said or None if isinstance(said, str) else None,
        isValidationOnly=False,
        scheduleInfo=_schedule_of(line, action),
        ticketInfo={"ticketNumber": None, "ticketSystem": None},
        createdDateTime=line.at,
        completedDateTime=line.at,
        createdBy=await identity_set(api, line.actor),
        targetScheduleId=row.id,
    )


async def recorded_line(api: ApiServices, row: AssignmentRow, line_action: str, actor: str, since: datetime) -> AuditRow | None:
    """The audit line that `actor`'s change of `row` wrote at or after `since` (the last one)."""
    lines = await api.store.audit(group_id=row.group_id, principal_id=row.principal_id, since=since - CLOCK_SLACK)
    found = [line for line in lines if line.action == line_action and line.actor == actor and assignment_of(line) == row.id]
    return found[-1] if found else None


async def may_view(api: ApiServices, caller: Caller, row: AssignmentRow, line: AuditRow) -> bool:
    """Administrators, the principal, whoever made the change, and the group's managers."""
    if caller.is_admin or caller.principal_id in (row.principal_id, line.actor):
        return True
    return caller.principal_id in await api.store.group_administrators(row.group_id, datetime.now(UTC))


async def visible_admin_request(api: ApiServices, caller: Caller, ref: AdminRequestRef, kind: str, model: type[R]) -> R:
    """The request `ref` of a `kind` assignment: 404 when there is none (or it is of the
    other kind: an eligibility request is not an assignment request), 403 when the
    caller may not see it."""
    row = await api.store.assignment(ref.assignment_id)
    line = None
    if row is not None and row.kind == kind:
        lines = await api.store.audit(group_id=row.group_id, principal_id=row.principal_id)
        line = next((item for item in lines if item.id == ref.audit_id), None)
    if row is None or line is None or line.action not in ACTION_OF_LINE or assignment_of(line) != row.id:
        raise not_found(f"no request {ref.id}")
    if not await may_view(api, caller, row, line):
        raise forbidden(f"{caller.principal_id} may not see request {ref.id}", "not_authorized")
    return await as_admin_request(api, row, line, model)


async def matching_admin_requests(
    api: ApiServices, wanted: dict[str, Any], kind: str, model: type[R], created_by: str | None = None
) -> list[R]:
    """Administrators' requests on `kind` assignments, newest first, filtered on groupId,
    principalId, accessId, status and action (the last three without regard to case),
    and on who made them."""
    group_id, principal_id = wanted.get("groupId"), wanted.get("principalId")
    lines = await api.store.audit(group_id=group_id, principal_id=principal_id)
    rows = {row.id: row for row in await api.store.assignments(group_id, principal_id, include_removed=True)}
    found: list[R] = []
    for line in reversed(lines):
        row = rows.get(assignment_of(line) or "")
        if line.action not in ACTION_OF_LINE or row is None or row.kind != kind:
            continue
        if created_by is not None and line.actor != created_by:
            continue
        request = await as_admin_request(api, row, line, model)
        if all(same_value(getattr(request, name), wanted.get(name)) for name in ("accessId", "status", "action")):
            found.append(request)
        if len(found) >= LIST_LIMIT:
            break
    return found
