"""`/api/assignments`: list, create, remove, extend and renew eligible and active
assignments, through pim/operations/assignments.py (which authorizes the caller as
a manager of the group, checks the group's policy, audits and runs the lifecycle).
Listing needs only a signed-in caller, as the command line allows."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel

from pim.api.auth import Caller, authenticated, services
from pim.api.errors import bad_request
from pim.api.native.guards import counting_mfa_failures
from pim.api.native.shapes import Access, AssignmentId, Id, Instant, NativeIn, PositiveDuration, QueryId, Text, TotpCode
from pim.api.services import ApiServices
from pim.domain.models import AccessType
from pim.operations import assignments as assignment_ops
from pim.store.views import AssignmentView, assignment_view

router = APIRouter(prefix="/api/assignments", tags=["assignments"])


@router.get("", response_model=list[AssignmentView], summary="Assignments with their state")
async def list_assignments(
    group: QueryId = None,
    principal: QueryId = None,
    all_: bool = Query(False, alias="all", description="also removed ones"),
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> list[AssignmentView]:
    at = datetime.now(UTC)
    return [assignment_view(r, at) for r in await api.store.assignments(group, principal, include_removed=all_)]


class AssignmentIn(NativeIn):
    group_id: Id
    principal_id: Id
    access: Access = "member"
    kind: Literal["eligible", "active"]
    # Exactly one of the three: how long from now, until when, or for good.
    duration: PositiveDuration | None = None
    ends_at: Instant | None = None
    permanent: bool = False
    justification: Text | None = None
    # The caller's code, when the policy requires MFA for an active assignment.
    mfa_code: TotpCode | None = None


class Created(BaseModel):
    assignment_id: str


@router.post("", status_code=201, response_model=Created, summary="Make a principal eligible, or an active holder")
async def create_assignment(
    body: AssignmentIn, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> Created:
    given = [name for name in ("duration", "ends_at") if getattr(body, name) is not None] + (
        ["permanent"] if body.permanent else []
    )
    if len(given) != 1:
        raise bad_request("duration: give exactly one of duration, ends_at and permanent", "duration")
    with counting_mfa_failures(api, caller, body.mfa_code):
        async with api.admin(caller) as ctx:
            assignment_id = await assignment_ops.create_assignment(
                ctx,
                body.group_id,
                body.principal_id,
                access=AccessType(body.access),
                kind=body.kind,
                duration=body.duration,
                ends_at=body.ends_at,
                justification=body.justification,
                mfa_code=body.mfa_code,
            )
    return Created(assignment_id=assignment_id)


class RemovalIn(NativeIn):
    reason: Text | None = None


class Removed(BaseModel):
    assignment_id: str
    removed: bool


@router.post("/{assignment_id}/remove", response_model=Removed, summary="Remove an assignment (not in its first 5 minutes)")
async def remove_assignment(
    assignment_id: AssignmentId,
    body: RemovalIn | None = None,
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> Removed:
    async with api.admin(caller) as ctx:
        await assignment_ops.remove_assignment(ctx, assignment_id, body.reason if body else None)
    return Removed(assignment_id=assignment_id, removed=True)


class NewEndIn(NativeIn):
    # One of the two: extend adds `duration` to the current end, renew counts it from now.
    duration: PositiveDuration | None = None
    ends_at: Instant | None = None
    justification: Text | None = None


class NewEnd(BaseModel):
    assignment_id: str
    ends_at: str  # ISO 8601 with a zone, as the views write instants


MoveEnd = Callable[..., Awaitable[datetime]]


async def _move_end(api: ApiServices, caller: Caller, operation: MoveEnd, assignment_id: str, body: NewEndIn) -> NewEnd:
    if (body.duration is None) == (body.ends_at is None):
        raise bad_request("duration: give exactly one of duration and ends_at", "duration")
    arguments: dict[str, datetime | timedelta | None] = (
        {"new_end": body.ends_at} if body.ends_at is not None else {"extra": body.duration}
    )
    async with api.admin(caller) as ctx:
        new_end = await operation(ctx, assignment_id, justification=body.justification, **arguments)
    return NewEnd(assignment_id=assignment_id, ends_at=new_end.isoformat())


@router.post("/{assignment_id}/extend", response_model=NewEnd, summary="Move the end of a running assignment")
async def extend_assignment(
    assignment_id: AssignmentId, body: NewEndIn, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> NewEnd:
    return await _move_end(api, caller, assignment_ops.extend_assignment, assignment_id, body)


@router.post("/{assignment_id}/renew", response_model=NewEnd, summary="Renew an assignment that expired less than 30 days ago")
async def renew_assignment(
    assignment_id: AssignmentId, body: NewEndIn, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> NewEnd:
    return await _move_end(api, caller, assignment_ops.renew_assignment, assignment_id, body)
