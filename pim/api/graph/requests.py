"""`/v1.0/identityGovernance/privilegedAccess/group/assignmentScheduleRequests`:
create (every action), get, list with `$filter`, `filterByCurrentUser`, cancel.

The self-service actions act on the caller's own activation and nobody else's:
`principalId` must be the caller (403 otherwise). The administrator's actions
(adminAssign, adminRemove, adminExtend, adminRenew) are the operations of
pim/operations/assignments.py, authorized there (pim/api/graph/admin_requests.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field, ValidationError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from pim.api.auth import Caller, authenticated, services
from pim.api.errors import (
    ErrorDetail,
    GraphError,
    bad_request,
    forbidden,
    not_found,
    policy_failure,
)
from pim.api.graph import admin_requests
from pim.api.graph.activations import (
    STATES_OF,
    AssignmentScheduleRequest,
    as_graph_request,
    current_stage,
    graph_status,
    may_view,
    settle_run,
    stage_deciders,
    ticket_fields,
)
from pim.api.graph.filters import parse_filter, same_value
from pim.api.graph.models import GROUP_ROOT, AccessId, Collection, GraphIn, RequestSchedule, TicketInfo, any_case, context
from pim.api.ids import RequestRef, parse_admin_request_id, parse_request_id
from pim.api.services import ApiServices
from pim.domain.models import ID_PATTERN, AccessType, ActivationRequest, MfaEvidence, State, activation_workflow_id, may_be_in
from pim.domain.models import violations_from_validation_error as violations_of
from pim.domain.status import ActivationStatus
from pim.operations import requests as flows

RESOURCE = "identityGovernance/privilegedAccess/group/assignmentScheduleRequests"
router = APIRouter(prefix=f"{GROUP_ROOT}/assignmentScheduleRequests", tags=["assignmentScheduleRequests"])
SELF_ACTIONS = ("selfActivate", "selfDeactivate", "selfExtend")
ADMIN_ACTIONS = ("adminAssign", "adminRemove", "adminExtend", "adminRenew")
# A start this close to now (or earlier: client clocks differ) means now.
IMMEDIATE = timedelta(minutes=1)
LIST_LIMIT = 200
# Our field names, as Graph's body names them, for errors.
GRAPH_FIELDS = {
    "duration": "scheduleInfo.expiration.duration",
    "start_at": "scheduleInfo.startDateTime",
    "justification": "justification",
    "ticket.number": "ticketInfo.ticketNumber",
    "ticket.system": "ticketInfo.ticketSystem",
    "ticket": "ticketInfo",
    "group_id": "groupId",
    "principal_id": "principalId",
    "access": "accessId",
    "mfa.code": "mfaCode",
}

Id = Annotated[str, Field(pattern=ID_PATTERN)]


RequestAction = Literal["selfActivate", "selfDeactivate", "selfExtend", "adminAssign", "adminRemove", "adminExtend", "adminRenew"]


class AssignmentScheduleRequestIn(GraphIn):
    action: Annotated[RequestAction, any_case(RequestAction)]
    accessId: AccessId
    principalId: Id
    groupId: Id
    justification: Annotated[str, Field(max_length=2000)] | None = None
    ticketInfo: TicketInfo | None = None
    scheduleInfo: RequestSchedule | None = None
    isValidationOnly: bool = False
    customData: Annotated[str, Field(max_length=1000)] | None = None
    # Not Graph's: the caller's current TOTP code, for a policy that requires MFA when the
    # sign-in behind the token was not multi-factor or not recent (docs/api.md).
    mfaCode: Annotated[str, Field(pattern=r"^[0-9]{6}$")] | None = None


@router.post("", status_code=201, response_model=AssignmentScheduleRequest, response_model_by_alias=True, summary="Create")
async def create_request(
    body: AssignmentScheduleRequestIn, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> AssignmentScheduleRequest:
    if body.action in ADMIN_ACTIONS:
        return await admin_requests.create(api, caller, body)
    if body.principalId != caller.principal_id:
        raise forbidden(
            f"principalId: {body.action} acts for the signed-in caller only ({caller.principal_id})", "not_authorized"
        )
    if body.action == "selfActivate":
        return await self_activate(api, caller, body)
    return await self_change(api, caller, body)


async def self_activate(api: ApiServices, caller: Caller, body: AssignmentScheduleRequestIn) -> AssignmentScheduleRequest:
    if body.mfaCode is not None:
        if api.limiter.exceeded(api.mfa_failure_limit, caller.principal_id):
            api.limiter.check(api.mfa_failure_limit, caller.principal_id)  # raises 429 with Retry-After
    request = activation_request(body, caller)
    try:
        workflow_id, run_id = await api.pim.start_run(request)
    except WorkflowAlreadyStartedError:
        raise await already_running(api, request) from None
    ref = RequestRef(workflow_id, run_id)
    status = await settle_run(api, ref, api.settings.api_settle_timeout)
    if status.state == State.rejected:
        if body.mfaCode is not None and any(v.code.startswith("mfa_") for v in status.violations):
            api.limiter.record(api.mfa_failure_limit, caller.principal_id)
        raise policy_failure(status.violations)
    created = as_graph_request(ref, status)
    created.odata_context = context(RESOURCE, entity=True)
    return created


def activation_request(body: AssignmentScheduleRequestIn, caller: Caller) -> ActivationRequest:
    """The workflow's input: the caller's own request, with evidence of MFA: the code
    in the body, else the sign-in behind the token."""
    schedule = body.scheduleInfo or RequestSchedule()
    now = datetime.now(UTC)
    start = schedule.startDateTime
    start_at = start if start is not None and start > now + IMMEDIATE else None
    mfa: MfaEvidence | dict[str, str] | None = (
        {"method": "totp", "code": body.mfaCode} if body.mfaCode else caller.sign_in_evidence()
    )
    ticket = body.ticketInfo
    try:
        return ActivationRequest(
            group_id=body.groupId,
            access=AccessType(body.accessId),
            principal_id=caller.principal_id,
            duration=schedule.duration_from(start_at or now),
            justification=body.justification,
            ticket=ticket_fields(ticket.ticketNumber, ticket.ticketSystem) if ticket else None,
            mfa=mfa,
            start_at=start_at,
            validate_only=body.isValidationOnly,
        )
    except ValidationError as error:
        raise invalid_body(error) from None


def invalid_body(error: ValidationError) -> GraphError:
    """A request that the activation's own model refuses, its fields named as Graph names them."""
    details = []
    for violation in violations_of(error):
        field, sep, reason = violation.message.partition(": ")
        target = GRAPH_FIELDS.get(field, field) if sep else None
        details.append(
            ErrorDetail(code="invalid_value", message=f"{target}: {reason}" if target else violation.message, target=target)
        )
    return GraphError(400, "BadRequest", "; ".join(d.message for d in details), details)


async def already_running(api: ApiServices, request: ActivationRequest) -> GraphError:
    """Graph's answers when the caller already has this access, or a request for it."""
    try:
        status = await api.pim.status(request.workflow_id)
    except RPCError:
        status = None
    what = f"{request.access.value} of {request.group_id}"
    if status is not None and status.state in (State.validating, State.pending_approval, State.scheduled):
        return GraphError(400, "PendingRoleAssignmentRequest", f"a request for {what} is already pending")
    return GraphError(400, "RoleAssignmentExists", f"{request.principal_id} already holds or is activating {what}")


async def self_change(api: ApiServices, caller: Caller, body: AssignmentScheduleRequestIn) -> AssignmentScheduleRequest:
    """selfDeactivate and selfExtend: signals to the caller's running activation."""
    workflow_id = activation_workflow_id(body.groupId, body.accessId, caller.principal_id)
    running = await running_activation(api, workflow_id)
    if running is None or running[1].state != State.active:
        raise GraphError(
            400, "RoleAssignmentDoesNotExist", f"{caller.principal_id} has no active {body.accessId} of {body.groupId} to change"
        )
    ref, _ = running
    if body.action == "selfDeactivate":
        status = await flows.deactivate(api.pim, workflow_id, caller.principal_id, body.justification)
    else:
        schedule = body.scheduleInfo or RequestSchedule()
        extra = extension_of(schedule, running[1])
        status = await flows.extend(api.pim, workflow_id, caller.principal_id, extra, body.justification)
    answer = as_graph_request(ref, status, action=body.action)
    answer.odata_context = context(RESOURCE, entity=True)
    return answer


def extension_of(schedule: RequestSchedule, status: ActivationStatus) -> timedelta:
    """How much longer: afterDuration's duration, or up to afterDateTime's end."""
    expiration = schedule.expiration
    if expiration is not None and expiration.type == "afterDuration" and expiration.duration:
        return expiration.duration
    if expiration is not None and expiration.type == "afterDateTime" and expiration.endDateTime and status.expires_at:
        extra = expiration.endDateTime - status.expires_at
        if extra > timedelta(0):
            return extra
        raise bad_request(
            "scheduleInfo.expiration.endDateTime: must be after the current end", "scheduleInfo.expiration.endDateTime"
        )
    raise bad_request(
        "scheduleInfo.expiration: selfExtend needs afterDuration (how much longer) or afterDateTime (the new end)",
        "scheduleInfo.expiration",
    )


async def running_activation(api: ApiServices, workflow_id: str) -> tuple[RequestRef, ActivationStatus] | None:
    handle = api.pim.temporal.get_workflow_handle(workflow_id)
    try:
        description = await handle.describe()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return None
        raise
    if description.run_id is None or description.close_time is not None:
        return None
    ref = RequestRef(workflow_id, description.run_id)
    return ref, await api.pim.status_of_run(workflow_id, description.run_id)


# --- reading ------------------------------------------------------------------------------


async def visible_request(api: ApiServices, caller: Caller, request_id: str) -> tuple[RequestRef, ActivationStatus]:
    """The request `request_id`, when the caller may see it: 404 when there is none,
    403 when it is not theirs to see (its id holds a random run id: it was given to them)."""
    ref = parse_request_id(request_id)
    if ref is None:
        raise not_found(f"no request {request_id}")
    try:
        status = await api.pim.status_of_run(ref.workflow_id, ref.run_id)
    except RPCError as error:
        if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
            raise not_found(f"no request {request_id}") from None
        raise
    if not await may_view(api, caller.principal_id, caller.is_admin, status):
        raise forbidden(f"{caller.principal_id} may not see request {request_id}", "not_authorized")
    return ref, status


RequestList = Collection[AssignmentScheduleRequest]
FILTERABLE = frozenset({"groupId", "principalId", "accessId", "status"})


@router.get("", response_model=RequestList, response_model_by_alias=True, summary="List")
async def list_requests(
    filter_: Annotated[str | None, Query(alias="$filter", max_length=1000)] = None,
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> RequestList:
    """Everyone's requests for administrators; others filter on their own principalId
    (or use filterByCurrentUser)."""
    wanted = parse_filter(filter_, FILTERABLE)
    if not caller.is_admin and wanted.get("principalId") != caller.principal_id:
        raise forbidden(
            "listing everyone's requests needs an administrator role: filter on your own principalId, "
            "or use filterByCurrentUser(on='principal')",
            "not_authorized",
        )
    found = await matching(api, wanted)
    return RequestList.model_validate({"@odata.context": context(RESOURCE), "value": found})


async def matching(api: ApiServices, wanted: dict[str, str | None]) -> list[AssignmentScheduleRequest]:
    """Activation requests by search attributes (newest first), as Graph requests,
    filtered on accessId and status too (without regard to case, as Graph compares enums)."""
    status_filter = wanted.get("status")
    status_of = graph_status_named(status_filter)
    if status_filter is not None and status_of is None:
        return []
    summaries = await api.pim.list(group_id=wanted.get("groupId"), principal_id=wanted.get("principalId"), limit=LIST_LIMIT)
    refs = [
        RequestRef(s.request_id, s.run_id)
        for s in summaries
        if s.run_id and same_value(s.access, wanted.get("accessId")) and (status_of is None or _may_be(s.state, status_of))
    ]
    found = [as_graph_request(ref, status) for ref, status in await statuses_of(api, refs)]
    return [r for r in found if status_of is None or r.status == status_of]


def graph_status_named(text: str | None) -> str | None:
    """The Graph status `text` names, whatever its case; None for none."""
    if text is None:
        return None
    return next((name for name in STATES_OF if name.casefold() == text.casefold()), None)


def _may_be(state: str | None, graph: str) -> bool:
    """Whether a request listed under `PimState = state` may read as Graph status
    `graph`: it may be in a state it passes through (`may_be_in`), and a passed dry
    run is canceled."""
    if state is None or state not in State.__members__:
        return False
    return bool(may_be_in(State(state)) & STATES_OF[graph]) or state == State.canceled.value


@router.get(
    "/filterByCurrentUser(on='{on}')",
    response_model=RequestList,
    response_model_by_alias=True,
    summary="The caller's requests (principal, createdBy) or approval inbox (approver)",
)
async def filter_by_current_user(
    on: Literal["principal", "createdBy", "approver"],
    filter_: Annotated[str | None, Query(alias="$filter", max_length=1000)] = None,
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> RequestList:
    wanted = parse_filter(filter_, FILTERABLE - {"principalId"})
    if on != "approver":
        found = await matching(api, {**wanted, "principalId": caller.principal_id})
    else:
        found = await approver_inbox(api, caller.principal_id, wanted)
    return RequestList.model_validate({"@odata.context": context(RESOURCE), "value": found})


async def approver_inbox(api: ApiServices, principal_id: str, wanted: dict[str, str | None]) -> list[AssignmentScheduleRequest]:
    found = [as_graph_request(ref, status) for ref, status in await awaiting_decision(api, principal_id, wanted)]
    return [r for r in found if same_value(r.status, wanted.get("status"))]


async def awaiting_decision(
    api: ApiServices, principal_id: str, wanted: dict[str, str | None]
) -> list[tuple[RequestRef, ActivationStatus]]:
    """Requests waiting for this approver's decision, newest first. Only a running,
    admitted activation can wait for one, and each holds a claim in the store (its
    run key is the workflow id and run id), so the claims are where to look."""
    refs = []
    for claim in await api.store.claims(group_id=wanted.get("groupId")):
        workflow_id, _, run_id = claim.request_id.partition("#")
        if claim.principal_id != principal_id and same_value(claim.access, wanted.get("accessId")):
            refs.append(RequestRef(workflow_id, run_id))
    out = []
    for ref, status in await statuses_of(api, refs):
        index = current_stage(status)
        if index is None or any(d.approver_id == principal_id for stage in status.stages for d in stage.decisions):
            continue
        if principal_id in await stage_deciders(api, status, index):
            out.append((ref, status))
    return sorted(out, key=lambda found: found[1].requested_at, reverse=True)


async def statuses_of(api: ApiServices, refs: list[RequestRef]) -> list[tuple[RequestRef, ActivationStatus]]:
    """The status of each run, a few at a time; runs gone meanwhile are left out."""
    limit = asyncio.Semaphore(8)

    async def read(ref: RequestRef) -> tuple[RequestRef, ActivationStatus] | None:
        async with limit:
            try:
                return ref, await api.pim.status_of_run(ref.workflow_id, ref.run_id)
            except RPCError:
                return None

    return [found for found in await asyncio.gather(*(read(ref) for ref in refs)) if found is not None]


# After filterByCurrentUser(...): a path parameter would take that name too.
@router.get("/{request_id}", response_model=AssignmentScheduleRequest, response_model_by_alias=True, summary="Get")
async def get_request(
    request_id: str, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> AssignmentScheduleRequest:
    admin_ref = parse_admin_request_id(request_id)
    if admin_ref is not None:  # an administrator's change, read back from its audit line
        return await admin_requests.get(api, caller, admin_ref)
    ref, status = await visible_request(api, caller, request_id)
    found = as_graph_request(ref, status)
    found.odata_context = context(RESOURCE, entity=True)
    return found


@router.post("/{request_id}/cancel", status_code=204, response_class=Response, summary="Cancel a pending request")
async def cancel_request(
    request_id: str, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> Response:
    ref, status = await visible_request(api, caller, request_id)
    await require_current_run(api, ref)
    await flows.cancel(api.pim, ref.workflow_id, caller.principal_id, None)
    return Response(status_code=204)


async def require_current_run(api: ApiServices, ref: RequestRef) -> None:
    """Signals reach a workflow id's running run: refuse when that is not this request."""
    running = await running_activation(api, ref.workflow_id)
    if running is None or running[0].run_id != ref.run_id:
        raise GraphError(409, "Conflict", "the request has already ended", [ErrorDetail(code="request_ended", message="ended")])


__all__ = ["router", "graph_status", "visible_request", "require_current_run", "RESOURCE"]
