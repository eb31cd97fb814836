"""Errors in Microsoft Graph's envelope, for every endpoint of the API:

    {"error": {"code": "...", "message": "...", "details": [{"code", "message", "target"}],
               "innerError": {"request-id": "...", "date": "...", "client-request-id": "..."}}}

A refusal of the product (pim/operations' `Refused`, a workflow's refusal) keeps its
own code in `details`, beside Graph's code for the kind of failure. Nothing a caller
sent is echoed back: a message names the field, never its value."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from pim.domain.models import Violation
from pim.operations.context import Refused
from pim.runtime.logging import get_logger

log = get_logger("pim.api")

# Graph's codes for the kinds of failure this API answers with.
BAD_REQUEST = "BadRequest"
UNAUTHENTICATED = "InvalidAuthenticationToken"
FORBIDDEN = "Authorization_RequestDenied"
NOT_FOUND = "ResourceNotFound"
CONFLICT = "Conflict"
TOO_MANY = "TooManyRequests"
UNAVAILABLE = "ServiceUnavailable"
INTERNAL = "InternalServerError"
POLICY_FAILED = "RoleAssignmentRequestPolicyValidationFailed"
ACTIVE_TOO_SHORT = "ActiveDurationTooShort"

# The product's refusal codes (pim/operations, pim/domain/refusals.py) by HTTP status;
# anything not listed is a 400.
FORBIDDEN_CODES = frozenset(
    {"not_authorized", "unknown_actor", "self_approval", "not_an_approver", "proof_invalid", "mfa_required_for_owner"}
)
CONFLICT_CODES = frozenset(
    {"already_decided", "not_pending", "invalid_state", "request_ended", "deadline_passed", "principal_exists", "group_exists"}
)
NOT_FOUND_CODES = frozenset(
    {"group_not_found", "principal_not_found", "assignment_not_found", "not_found", "request_not_found", "policy_not_found"}
)
# The workflow did not answer in time (pim/operations/requests.py, NoAnswer): nothing the
# caller did wrong; asking again shortly is the remedy.
UNAVAILABLE_CODES = frozenset({"no_answer"})
RETRY_AFTER_SECONDS = 5


class ErrorDetail(BaseModel):
    code: str
    message: str
    target: str | None = None


class InnerError(BaseModel):
    request_id: str = Field(alias="request-id")
    date: str
    client_request_id: str | None = Field(default=None, alias="client-request-id")


class ErrorBody(BaseModel):
    code: str
    message: str
    details: list[ErrorDetail] = Field(default_factory=list)
    innerError: InnerError


class ErrorEnvelope(BaseModel):
    """What every failure answers (documented on each operation in /openapi.json)."""

    error: ErrorBody


class GraphError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: list[ErrorDetail] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details = details or []
        self.headers = headers or {}


def unauthorized(message: str) -> GraphError:
    # RFC 6750: the challenge says which scheme, and why the token was refused.
    reason = message.replace('"', "'")
    return GraphError(
        401, UNAUTHENTICATED, message, headers={"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{reason}"'}
    )


def forbidden(message: str, code: str | None = None) -> GraphError:
    return GraphError(403, FORBIDDEN, message, [ErrorDetail(code=code, message=message)] if code else None)


def not_found(message: str) -> GraphError:
    return GraphError(404, NOT_FOUND, message)


def bad_request(message: str, target: str | None = None, code: str = "invalid_value") -> GraphError:
    return GraphError(400, BAD_REQUEST, message, [ErrorDetail(code=code, message=message, target=target)])


def from_refusal(refused: Refused) -> GraphError:
    """The Graph error for a refusal of the product, its code kept in the details."""
    message = str(refused)
    detail = [ErrorDetail(code=refused.code, message=message)]
    if refused.code in FORBIDDEN_CODES:
        return GraphError(403, FORBIDDEN, message, detail)
    if refused.code in CONFLICT_CODES:
        return GraphError(409, CONFLICT, message, detail)
    if refused.code in NOT_FOUND_CODES:
        return GraphError(404, NOT_FOUND, message, detail)
    if refused.code in UNAVAILABLE_CODES:
        return GraphError(503, UNAVAILABLE, message, detail, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    if refused.code == "too_early":
        return GraphError(400, ACTIVE_TOO_SHORT, message, detail)
    return GraphError(400, BAD_REQUEST, message, detail)


def policy_failure(violations: list[Violation]) -> GraphError:
    """A request the policy refused: Graph's code, ours in the details."""
    message = "; ".join(v.message for v in violations) or "the request does not satisfy the policy"
    details = [ErrorDetail(code=v.code, message=v.message, target=_target(v.message)) for v in violations]
    return GraphError(400, POLICY_FAILED, message, details)


def _target(message: str) -> str | None:
    """The field a violation names (`justification: required` names justification)."""
    head, sep, _ = message.partition(": ")
    return head if sep and head.replace(".", "").replace("_", "").isalnum() else None


def request_id_of(request: Request) -> str:
    return getattr(request.state, "request_id", "") or ""


def envelope(request: Request, error: GraphError) -> JSONResponse:
    inner: dict[str, Any] = {"request-id": request_id_of(request), "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}
    client_request_id = getattr(request.state, "client_request_id", None)
    if client_request_id:
        inner["client-request-id"] = client_request_id
    body: dict[str, Any] = {"code": error.code, "message": error.message, "innerError": inner}
    if error.details:
        body["details"] = [d.model_dump(exclude_none=True) for d in error.details]
    return JSONResponse({"error": body}, status_code=error.status, headers=error.headers)


async def handle_graph_error(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, GraphError)
    if error.status >= 500:
        log.warning("api error", status=error.status, code=error.code, message=error.message)
    return envelope(request, error)


async def handle_refused(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, Refused)
    return await handle_graph_error(request, from_refusal(error))


async def handle_validation(request: Request, error: Exception) -> JSONResponse:
    """A body or query that does not validate: every field named, no value echoed."""
    assert isinstance(error, RequestValidationError)
    details = []
    for problem in error.errors():
        location = [str(part) for part in problem.get("loc", ()) if part not in ("body", "query", "path", "header")]
        target = ".".join(location) or None
        message = f"{target}: {problem.get('msg', 'invalid')}" if target else str(problem.get("msg", "invalid"))
        details.append(ErrorDetail(code="invalid_value", message=message, target=target))
    message = "; ".join(d.message for d in details) or "the request is not valid"
    return envelope(request, GraphError(400, BAD_REQUEST, message, details))


async def handle_http(request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, StarletteHTTPException)
    codes = {401: UNAUTHENTICATED, 403: FORBIDDEN, 404: NOT_FOUND, 405: "MethodNotAllowed", 409: CONFLICT, 429: TOO_MANY}
    code = codes.get(error.status_code, BAD_REQUEST if error.status_code < 500 else INTERNAL)
    message = str(error.detail) if error.status_code != 404 else "no such resource"
    return envelope(request, GraphError(error.status_code, code, message, headers=dict(error.headers or {})))


async def handle_unexpected(request: Request, error: Exception) -> JSONResponse:
    """A bug or an outage: logged with the request id, answered without its details."""
    from pim.identity.oidc import JwksUnavailable

    if isinstance(error, JwksUnavailable):
        log.warning("identity provider unavailable", reason=str(error))
        return envelope(request, GraphError(503, UNAVAILABLE, "the identity provider's keys cannot be fetched; try again"))
    from temporalio.service import RPCError, RPCStatusCode

    if isinstance(error, RPCError) and error.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        log.warning("temporal unavailable", reason=error.message)
        return envelope(request, GraphError(503, UNAVAILABLE, "the workflow service is unavailable; try again"))
    log.exception("api failure", error_type=type(error).__name__)
    return envelope(request, GraphError(500, INTERNAL, "the request failed; quote the request id to an operator"))


HANDLERS: dict[Any, Any] = {
    GraphError: handle_graph_error,
    Refused: handle_refused,
    RequestValidationError: handle_validation,
    StarletteHTTPException: handle_http,
    Exception: handle_unexpected,
}

# What every operation documents besides its own answer.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorEnvelope, "description": description}
    for status, description in (
        (400, "Bad request: the fields named in details"),
        (401, "No valid bearer token"),
        (403, "The caller may not do this"),
        (404, "Not found"),
        (409, "Conflict with the resource's state"),
        (429, "Rate limited (Retry-After)"),
        (503, "A dependency is unavailable, or the workflow did not answer in time (Retry-After)"),
    )
}
