"""`/api/requests`: an activation as the command line sees it, for `pim request`,
`approve`, `deny`, `cancel`, `deactivate`, `extend`, `status` and `requests` in API
mode. Answers are what those commands print with `--json` in local mode: the
`status` query's ActivationStatus, or the rows of `pim requests --json`.

The actor of everything here is the caller: the request is theirs, the decision,
the cancellation, the end and the extension are theirs. The workflow decides
whether they may (pim/operations/requests.py); its refusal keeps its code in the
error's details (pim/api/errors.py, `from_refusal`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from pim.api.auth import Caller, authenticated, services
from pim.api.errors import ErrorDetail, GraphError, forbidden, not_found
from pim.api.graph.activations import may_view
from pim.api.ids import WORKFLOW_ID, parse_request_id
from pim.api.native.shapes import Instant, NativeIn, PositiveDuration, Text, TotpCode
from pim.api.services import ApiServices
from pim.domain.models import ID_PATTERN, AccessType, ActivationRequest, GroupId, MfaEvidence, ReviewDecision, State, Ticket
from pim.domain.models import violations_from_validation_error as violations_of
from pim.domain.status import ActivationStatus
from pim.operations import requests as flows
from pim.runtime.logging import get_logger

log = get_logger("pim.api.requests")
router = APIRouter(prefix="/api/requests", tags=["requests"])

IdFilter = Annotated[str | None, Query(pattern=ID_PATTERN)]
# Verdicts on TOTP codes of requests answered before their verdict (no `wait`), counted
# once it comes; kept here so that the tasks are not collected while they run.
_pending_verdicts: set[asyncio.Task[None]] = set()


class RequestIn(NativeIn):
    group_id: GroupId
    access: AccessType = AccessType.member
    duration: PositiveDuration | None = Field(default=None, description="ISO 8601 (PT2H); default: the policy maximum")
    justification: Text | None = None
    ticket: Ticket | None = None
    mfa_code: TotpCode | None = Field(
        default=None, description="the caller's current TOTP code; without it, the sign-in behind the token is the evidence"
    )
    start_at: Instant | None = None
    validate_only: StrictBool = False
    wait: StrictBool = Field(default=False, description="answer with the request once it has settled")


class DecisionIn(NativeIn):
    justification: Text | None = None


class EndIn(NativeIn):
    reason: Text | None = None


class ExtendIn(NativeIn):
    duration: PositiveDuration = Field(description="how much longer, ISO 8601 (PT1H)")
    justification: Text | None = None


class RequestCreated(BaseModel):
    model_config = ConfigDict(extra="forbid")  # never mistaken for a status

    request_id: str


class RequestListed(BaseModel):
    """A row of `pim requests --json`."""

    request_id: str
    state: str | None
    group_id: str | None
    access: str | None
    principal_id: str | None
    running: bool


# --- asking -----------------------------------------------------------------------------------


@router.post(
    "",
    status_code=201,
    response_model=RequestCreated | ActivationStatus,
    summary="Ask for membership or ownership of a group (the caller's own)",
    description="Answers `{request_id}`, or with `wait` the request once it has settled (whatever its state).",
)
async def create_request(
    body: RequestIn, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> RequestCreated | ActivationStatus:
    if body.mfa_code is not None and api.limiter.exceeded(api.mfa_failure_limit, caller.principal_id):
        api.limiter.check(api.mfa_failure_limit, caller.principal_id)  # raises 429 with Retry-After
    request = activation_request(body, caller)
    try:
        request_id = await api.pim.start(request)
    except WorkflowAlreadyStartedError:
        message = f"a request with id {request.workflow_id} is already running"
        raise GraphError(409, "Conflict", message, [ErrorDetail(code="already_running", message=message)]) from None
    if not body.wait:
        if body.mfa_code is not None:
            count_verdict_later(api, caller.principal_id, request_id)
        return RequestCreated(request_id=request_id)
    status = await flows.wait_settled(api.pim, request_id, api.settings.api_settle_timeout)
    if body.mfa_code is not None:
        count_mfa_failure(api, caller.principal_id, status)
    return status


def activation_request(body: RequestIn, caller: Caller) -> ActivationRequest:
    """The workflow's input: the caller's own request, with their code or their sign-in as MFA evidence."""
    mfa = MfaEvidence(method="totp", code=body.mfa_code) if body.mfa_code else caller.sign_in_evidence()
    fields = body.model_dump(exclude={"mfa_code", "wait"})
    try:
        return ActivationRequest(**fields, principal_id=caller.principal_id, mfa=mfa)
    except ValidationError as error:  # what only the whole request can say (a start in the past, say)
        details = [
            ErrorDetail(code="invalid_value", message=v.message, target=v.message.partition(":")[0]) for v in violations_of(error)
        ]
        raise GraphError(400, "BadRequest", "; ".join(d.message for d in details), details) from None


def count_mfa_failure(api: ApiServices, principal_id: str, status: ActivationStatus) -> None:
    """A request refused for its TOTP code counts against the caller's failed-MFA limit."""
    if status.state == State.rejected and any(v.code.startswith("mfa_") for v in status.violations):
        api.limiter.record(api.mfa_failure_limit, principal_id)


def count_verdict_later(api: ApiServices, principal_id: str, request_id: str) -> None:
    async def count() -> None:
        try:
            count_mfa_failure(api, principal_id, await flows.wait_settled(api.pim, request_id, api.settings.api_settle_timeout))
        except Exception as error:  # noqa: BLE001 - the answer went out already; the store's lockout still counts
            log.warning("mfa verdict not counted", request_id=request_id, error_type=type(error).__name__)

    task = asyncio.create_task(count())
    _pending_verdicts.add(task)
    task.add_done_callback(_pending_verdicts.discard)


# --- reading ----------------------------------------------------------------------------------


@router.get("", response_model=list[RequestListed], summary="Requests, newest first (administrators: anyone's)")
async def list_requests(
    state: State | None = None,
    group: IdFilter = None,
    principal: IdFilter = None,
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> list[RequestListed]:
    if not caller.is_admin and principal != caller.principal_id:
        raise forbidden(
            f"principal: listing others' requests needs an administrator role; give principal={caller.principal_id}",
            "not_authorized",
        )
    found = await api.pim.list(state.value if state else None, group, principal)
    return [RequestListed.model_validate(summary.model_dump()) for summary in found]


@router.get(
    "/{request_id:path}",
    response_model=ActivationStatus,
    summary="A request's status (its requester, administrators, the group's managers and its approvers)",
    description="`request_id`: the activation's workflow id (its latest run), or a Graph request id (that run).",
)
async def get_request(
    request_id: str, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> ActivationStatus:
    run = parse_request_id(request_id)
    if run is not None:  # one run, as Graph names it (the portal's request pages)
        try:
            status = await api.pim.status_of_run(run.workflow_id, run.run_id)
        except RPCError as error:
            if error.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.INVALID_ARGUMENT):
                raise not_found(f"no request {request_id}") from None
            raise
    else:
        async with known_request(request_id):
            status = await api.pim.status(request_id)
    if not await may_view(api, caller.principal_id, caller.is_admin, status):
        raise forbidden(f"{caller.principal_id} may not see request {request_id}", "not_authorized")
    return status


@asynccontextmanager
async def known_request(request_id: str) -> AsyncIterator[None]:
    """404 for an id that is no activation's, or that Temporal does not know."""
    if not WORKFLOW_ID.fullmatch(request_id):
        raise not_found("no such request: a request id reads activation/GROUP/ACCESS/PRINCIPAL")
    try:
        yield
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise not_found(f"no request {request_id}") from None
        raise


# --- acting on one ----------------------------------------------------------------------------


@router.post("/{request_id:path}/approve", response_model=ActivationStatus, summary="Approve (the caller decides)")
async def approve(
    request_id: str,
    body: DecisionIn | None = None,
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> ActivationStatus:
    return await decide(api, caller, request_id, ReviewDecision.approve, body or DecisionIn())


@router.post("/{request_id:path}/deny", response_model=ActivationStatus, summary="Deny (the caller decides)")
async def deny(
    request_id: str,
    body: DecisionIn | None = None,
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> ActivationStatus:
    return await decide(api, caller, request_id, ReviewDecision.deny, body or DecisionIn())


async def decide(
    api: ApiServices, caller: Caller, request_id: str, decision: ReviewDecision, body: DecisionIn
) -> ActivationStatus:
    """The `review` update in the caller's name; the request once it has settled. A
    refusal by the update's validator is audited here, the approver authenticated."""
    api.limiter.check(api.decision_limit, caller.principal_id)
    async with known_request(request_id):
        return await flows.review(
            api.pim, api.store, request_id, caller.principal_id, decision, body.justification, verified=True
        )


@router.post("/{request_id:path}/cancel", response_model=ActivationStatus, summary="Cancel a pending or scheduled request")
async def cancel(
    request_id: str,
    body: EndIn | None = None,
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> ActivationStatus:
    async with known_request(request_id):
        return await flows.cancel(api.pim, request_id, caller.principal_id, (body or EndIn()).reason)


@router.post("/{request_id:path}/deactivate", response_model=ActivationStatus, summary="End an active activation early")
async def deactivate(
    request_id: str,
    body: EndIn | None = None,
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> ActivationStatus:
    async with known_request(request_id):
        return await flows.deactivate(api.pim, request_id, caller.principal_id, (body or EndIn()).reason)


@router.post("/{request_id:path}/extend", response_model=ActivationStatus, summary="Move an active activation's end")
async def extend(
    request_id: str, body: ExtendIn, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> ActivationStatus:
    async with known_request(request_id):
        return await flows.extend(api.pim, request_id, caller.principal_id, body.duration, body.justification)
