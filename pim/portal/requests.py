"""`/requests`, My requests: the signed-in person's requests, waiting, scheduled,
active and past (history stays after expiry), with live status and Cancel.
`/requests/{id}`: one request's page, its status and events live, for its
requester and for whoever else the API lets see it (approvers, managers,
administrators).

`{id}` is the Graph request id (one run of the activation: Graph's
assignmentScheduleRequest id). The page's Approve/Deny block is
`partials/decision.html`, included outside the live part when it exists (the
approvals pages provide it); `request_page_context` gives what it needs."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path
from fastapi.responses import Response
from markupsafe import Markup
from starlette.requests import Request

from pim.portal.backend import ApiError, Backend, backend
from pim.portal.pages import (
    Viewer,
    flash,
    form_values,
    fragment,
    live_region,
    portal_router,
    redirect,
    render,
    safe_next,
    signed_in,
)
from pim.portal.status import ACTIVE, SCHEDULED, WAITING, request_row, state_label

router = portal_router()
GROUP = "/v1.0/identityGovernance/privilegedAccess/group"
REQUESTS = f"{GROUP}/assignmentScheduleRequests"
APPROVALS = f"{GROUP}/assignmentApprovals"
# A Graph request id: base64url, no padding (pim/api/ids.py); anything else is no request.
RequestId = Annotated[str, Path(pattern=r"^[A-Za-z0-9_-]{1,512}$")]


# --- My requests --------------------------------------------------------------------------------


async def my_requests(api: Backend) -> dict[str, list[dict[str, Any]]]:
    found = await api.get(f"{REQUESTS}/filterByCurrentUser(on='principal')")
    rows = [request_row(r) for r in found["value"] if not r.get("isValidationOnly")]
    return {
        "waiting": [r for r in rows if r["status"] in WAITING],
        "scheduled": [r for r in rows if r["status"] in SCHEDULED],
        "active": [r for r in rows if r["status"] in ACTIVE],
        "past": [r for r in rows if r["status"] not in (*WAITING, *SCHEDULED, *ACTIVE)],
    }


async def _list_region(request: Request, viewer: Viewer) -> Markup:
    groups = await my_requests(backend(request, viewer))
    moving = groups["waiting"] or groups["scheduled"] or groups["active"]
    return live_region(request, viewer, "partials/requests_live.html", "/requests/live", "2s" if moving else "15s", **groups)


@router.get("/requests")
async def requests_page(request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    return render(request, "requests.html", viewer, title="My requests", region=await _list_region(request, viewer))


@router.get("/requests/live")
async def requests_live(request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    return fragment(request, await _list_region(request, viewer))


# --- a request's page ---------------------------------------------------------------------------


async def _approval(api: Backend, request_id: str, activation: dict[str, Any]) -> dict[str, Any] | None:
    """Graph's approval of the request (stages, `assignedToMe`), when it has stages the viewer may see."""
    if not activation.get("stages"):
        return None
    try:
        found: dict[str, Any] = await api.get(f"{APPROVALS}/{request_id}")
        return found
    except ApiError:
        return None


async def request_page_context(request: Request, viewer: Viewer, request_id: str) -> dict[str, Any]:
    """What request.html and its parts use: `activation` (the activation's status, the
    native shape of GET /api/requests/{id}), `approval` (Graph's, or None), `request_id`,
    `region` (the live part), `what` ("member of grp-ops") and `label` (its state in words)."""
    api = backend(request, viewer)
    activation = await api.get(f"/api/requests/{request_id}")
    approval = await _approval(api, request_id, activation)
    label = state_label(activation.get("state"))
    region = live_region(
        request,
        viewer,
        "partials/request_live.html",
        f"/requests/{request_id}/live",
        "2s" if label.open else None,
        activation=activation,
        label=label,
        request_id=request_id,
        approval=approval,
        mine=activation.get("principal_id") == viewer.principal_id,
    )
    what = f"{activation.get('access') or 'member'} of {activation.get('group_id')}"
    return {
        "activation": activation,
        "mine": activation.get("principal_id") == viewer.principal_id,
        "approval": approval,
        "request_id": request_id,
        "region": region,
        "what": what,
        "label": label,
    }


@router.get("/requests/{request_id}")
async def request_page(request_id: RequestId, request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    context = await request_page_context(request, viewer, request_id)
    title = f"Request for {context['what']}"
    section = "/requests" if context["mine"] else "/approvals"  # an approver came from the inbox
    return render(request, "request.html", viewer, section=section, title=title, errors={}, values={}, **context)


@router.get("/requests/{request_id}/live")
async def request_live(request_id: RequestId, request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    context = await request_page_context(request, viewer, request_id)
    return fragment(request, context["region"])


@router.post("/requests/{request_id}/cancel")
async def cancel(request_id: RequestId, request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    back = safe_next((await form_values(request)).get("back") or f"/requests/{request_id}")
    try:
        await backend(request, viewer).post(f"{REQUESTS}/{request_id}/cancel")
        flash(request, "Request canceled.")
    except ApiError as refused:
        flash(request, f"Not canceled: {refused.message}", "error")
    return redirect(back)
