"""Activations seen as Graph's privilegedAccessGroupAssignmentScheduleRequest: the
mapping of an activation's status onto Graph's properties, and who may see one.

| state | Graph status |
|---|---|
| validating | PendingScheduleCreation |
| pending_approval | PendingApproval |
| scheduled | ScheduleCreated |
| activating | Granted |
| active | Provisioned |
| revoking | Provisioned (the access is held until it is removed) |
| expired, deactivated | Revoked |
| denied | Denied |
| canceled, approval_expired | Canceled |
| rejected, failed | Failed |

A dry run (`isValidationOnly`) that passed reads `PendingApproval` when the
policy asks for approval and `Granted` otherwise: what the real request would get."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Any

from pim.api.graph.models import GraphEntity, Identity, IdentitySet, ScheduleOut, expiration_out
from pim.api.ids import RequestRef, activation_schedule_id
from pim.api.services import ApiServices
from pim.domain.models import State
from pim.domain.status import ActivationStatus

GRAPH_STATUS: dict[State, str] = {
    State.validating: "PendingScheduleCreation",
    State.pending_approval: "PendingApproval",
    State.scheduled: "ScheduleCreated",
    State.activating: "Granted",
    State.active: "Provisioned",
    State.revoking: "Provisioned",  # Graph has no status for an access being removed: it is still held
    State.expired: "Revoked",
    State.deactivated: "Revoked",
    State.denied: "Denied",
    State.canceled: "Canceled",
    State.approval_expired: "Canceled",
    State.rejected: "Failed",
    State.failed: "Failed",
}
STATES_OF: dict[str, set[State]] = {}
for _state, _graph in GRAPH_STATUS.items():
    STATES_OF.setdefault(_graph, set()).add(_state)


def graph_status(status: ActivationStatus) -> str:
    if status.validate_only and status.state == State.canceled and not status.violations:
        return "PendingApproval" if status.stages else "Granted"
    return GRAPH_STATUS[status.state]


class AssignmentScheduleRequest(GraphEntity):
    """privilegedAccessGroupAssignmentScheduleRequest (Graph v1.0)."""

    id: str
    status: str
    action: str
    accessId: str
    principalId: str
    groupId: str
    justification: str | None = None
    isValidationOnly: bool = False
    scheduleInfo: ScheduleOut
    ticketInfo: dict[str, str | None]
    createdDateTime: datetime
    completedDateTime: datetime | None = None
    createdBy: IdentitySet
    approvalId: str | None = None
    customData: str | None = None
    targetScheduleId: str | None = None


def as_graph_request(ref: RequestRef, status: ActivationStatus, action: str = "selfActivate") -> AssignmentScheduleRequest:
    """The Graph request for one activation run."""
    started = status.granted_at or status.starts_at
    duration = (status.expires_at - status.granted_at) if status.expires_at and status.granted_at else status.requested_duration
    completed = status.ended_at if status.state.terminal else status.granted_at
    return AssignmentScheduleRequest(
        id=ref.id,
        status=graph_status(status),
        action=action,
        accessId=status.access.value if status.access else "member",
        principalId=status.principal_id or "",
        groupId=status.group_id or "",
        justification=status.justification,
        isValidationOnly=status.validate_only,
        scheduleInfo=ScheduleOut(startDateTime=started or status.requested_at, expiration=expiration_out(None, None, duration)),
        ticketInfo={
            "ticketNumber": status.ticket.number if status.ticket else None,
            "ticketSystem": status.ticket.system if status.ticket else None,
        },
        createdDateTime=status.requested_at,
        completedDateTime=completed,
        createdBy=IdentitySet(user=Identity(id=status.principal_id or "")),
        approvalId=ref.id if status.stages else None,
        targetScheduleId=activation_schedule_id(ref),
    )


async def stage_deciders(api: ApiServices, status: ActivationStatus, index: int) -> list[str]:
    """Who may decide stage `index` now: its approvers expanded, the requester left out."""
    users = await api.store.expand_approvers(status.stages[index].approvers, datetime.now(UTC))
    return [user for user in users if user != status.principal_id]


def current_stage(status: ActivationStatus) -> int | None:
    """The stage waiting for decisions, when the request is pending approval."""
    if status.state != State.pending_approval:
        return None
    for index, stage in enumerate(status.stages):
        if any(d.decision.value == "deny" for d in stage.decisions):
            return None
        if not stage.satisfied:
            return index
    return None


async def may_view(api: ApiServices, principal_id: str, is_admin: bool, status: ActivationStatus) -> bool:
    """The requester, an administrator, the group's managers and the request's approvers."""
    if is_admin or principal_id == status.principal_id:
        return True
    if status.group_id and principal_id in await api.store.group_administrators(status.group_id, datetime.now(UTC)):
        return True
    for index in range(len(status.stages)):
        if principal_id in await stage_deciders(api, status, index):
            return True
    return False


async def settle_run(api: ApiServices, ref: RequestRef, timeout: float) -> ActivationStatus:
    """The run once it has left validating and activating, or as it is at the timeout."""
    deadline = time.monotonic() + timeout
    while True:
        status = await api.pim.status_of_run(ref.workflow_id, ref.run_id)
        if status.state not in (State.validating, State.activating) or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.05)


def ticket_fields(number: str | None, system: str | None) -> dict[str, Any] | None:
    if number is None and system is None:
        return None
    return {"number": number or "", "system": system or "ticket"}
