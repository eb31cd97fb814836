"""`/approvals`, the approver's inbox: each request waiting for the viewer's decision
(who, what, why, ticket, how long, and the time left to decide), live, then the
requests the viewer decided lately. And the decision itself, from a request's page
(`partials/decision.html`, included by request.html): `POST /requests/{id}/approve`
and `/deny`, with a justification.

The lists come from Graph's resources: the inbox from
`assignmentScheduleRequests/filterByCurrentUser(on='approver')`, the decisions
from `assignmentApprovals/filterByCurrentUser(on='approver')`; the facts of each
from `GET /api/requests/{id}` (its approval deadline and its stages' decisions).
A decision is Graph's `PATCH assignmentApprovals/{id}/stages/{stage}`. The API's
refusal of one (the viewer's own request, a stage another approver has just
decided) is said on the request's page, above the decision form."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import Depends
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
    signed_in,
)
from pim.portal.requests import APPROVALS, REQUESTS, RequestId, request_page_context
from pim.portal.status import state_label

router = portal_router()
INBOX = f"{REQUESTS}/filterByCurrentUser(on='approver')"
DECISIONS = f"{APPROVALS}/filterByCurrentUser(on='approver')"
DECIDED_SHOWN = 20  # the viewer's latest decisions on the inbox's page
AT_ONCE = 8  # requests read together
POLL = "15s"  # the waiting list: new requests, and those decided elsewhere
# The API's refusals of a decision that mean: this request no longer waits for it.
NO_LONGER_OPEN = {"already_decided", "not_pending", "request_ended"}


# --- the inbox ----------------------------------------------------------------------------------


async def statuses(api: Backend, ids: list[str]) -> list[dict[str, Any]]:
    """The requests' statuses (native shape), in the order of `ids`; those the viewer
    can no longer read (ended and gone, no longer an approver) are left out."""
    limit = asyncio.Semaphore(AT_ONCE)

    async def read(request_id: str) -> dict[str, Any] | None:
        async with limit:
            try:
                found: dict[str, Any] = await api.get(f"/api/requests/{request_id}")
            except ApiError:
                return None
        return {**found, "id": request_id}

    return [found for found in await asyncio.gather(*(read(i) for i in ids)) if found is not None]


def decision_of(status: dict[str, Any], principal_id: str) -> dict[str, Any] | None:
    """`principal_id`'s decision on the request (the last, should there be several)."""
    mine = [
        d for stage in status.get("stages") or [] for d in stage.get("decisions") or [] if d.get("approver_id") == principal_id
    ]
    return mine[-1] if mine else None


def open_stage(status: dict[str, Any]) -> dict[str, Any] | None:
    """The stage waiting for decisions (`number` from 1), while the request is pending."""
    for number, stage in enumerate(status.get("stages") or [], start=1):
        approvals = sum(1 for d in stage.get("decisions") or [] if d.get("decision") == "approve")
        if approvals < int(stage.get("required") or 1):
            return {**stage, "number": number}
    return None


async def _waiting_region(request: Request, viewer: Viewer) -> Markup:
    api = backend(request, viewer)
    found = await api.get(INBOX)
    waiting = await statuses(api, [r["id"] for r in found["value"]])
    rows = [{**s, "open_stage": open_stage(s)} for s in waiting if s.get("state") == "pending_approval"]
    return live_region(request, viewer, "partials/approvals_live.html", "/approvals/live", POLL, waiting=rows)


async def _decided(request: Request, viewer: Viewer) -> list[dict[str, Any]]:
    api = backend(request, viewer)
    found = await api.get(DECISIONS)
    ids = [a["id"] for a in found["value"] if not any(s.get("assignedToMe") for s in a.get("stages") or [])]
    rows = []
    for status in await statuses(api, ids[:DECIDED_SHOWN]):
        decision = decision_of(status, viewer.principal_id)
        if decision is not None:
            rows.append({**status, "mine": decision, "label": state_label(status.get("state"))})
    return rows


@router.get("/approvals")
async def inbox(request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    region, decided = await asyncio.gather(_waiting_region(request, viewer), _decided(request, viewer))
    return render(request, "approvals.html", viewer, title="Approvals", region=region, decided=decided)


@router.get("/approvals/live")
async def inbox_live(request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    return fragment(request, await _waiting_region(request, viewer))


# --- deciding -----------------------------------------------------------------------------------


@router.post("/requests/{request_id}/approve")
async def approve(request_id: RequestId, request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    return await decide(request, viewer, request_id, "Approve")


@router.post("/requests/{request_id}/deny")
async def deny(request_id: RequestId, request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    return await decide(request, viewer, request_id, "Deny")


async def decide(request: Request, viewer: Viewer, request_id: str, result: str) -> Response:
    """The viewer's decision on the stage the form was drawn for; a refusal re-draws
    the request's page with the reason, and what was typed."""
    values = await form_values(request)
    stage = values.get("stage", "1")
    stage = stage if stage.isdigit() and len(stage) < 4 else "1"
    body: dict[str, Any] = {"reviewResult": result}
    if values.get("justification"):
        body["justification"] = values["justification"]
    try:
        await backend(request, viewer).patch(f"{APPROVALS}/{request_id}/stages/{stage}", json=body)
    except ApiError as refused:
        return await refused_page(request, viewer, request_id, refused, values, stage)
    flash(request, "Approved." if result == "Approve" else "Denied.")
    # The form's #decision would carry over the redirect: the page opens at its top, the flash.
    return redirect(f"/requests/{request_id}#main")


async def refused_page(
    request: Request, viewer: Viewer, request_id: str, refused: ApiError, values: dict[str, str], stage: str
) -> Response:
    """The request's page as it is now, the refusal above its decision form."""
    context = await request_page_context(request, viewer, request_id)
    errors = refusal_errors(refused, context["activation"], viewer, int(stage) - 1)
    title = f"Request for {context['what']}"
    section = "/requests" if context["mine"] else "/approvals"
    return render(
        request,
        "request.html",
        viewer,
        status=refused.status,
        section=section,
        title=title,
        errors=errors,
        values=values,
        **context,
    )


def refusal_errors(refused: ApiError, status: dict[str, Any], viewer: Viewer, index: int) -> dict[str, str]:
    """The refusal in the viewer's words, by form field ("" above the form)."""
    codes = refused.codes
    if "self_approval" in codes:
        return {"": "You cannot decide this request: nobody approves their own request."}
    if codes & NO_LONGER_OPEN:
        return {"": f"{already_decided(status, viewer, index)} Your decision was not recorded."}
    return refused.by_field({"justification": "justification"})


def already_decided(status: dict[str, Any], viewer: Viewer, index: int) -> str:
    """Who decided the stage first, or what became of the request."""
    stages = status.get("stages") or []
    decisions = (stages[index].get("decisions") or []) if 0 <= index < len(stages) else []
    denied = [d for d in decisions if d.get("decision") == "deny"]
    deciders = [d.get("approver_id") for d in (denied[:1] or decisions)]
    if deciders:
        who = " and ".join("you" if p == viewer.principal_id else str(p) for p in deciders)
        return f"This request was already decided: {'denied' if denied else 'approved'} by {who}."
    return f"This request no longer waits for a decision: it is {state_label(status.get('state')).text.lower()}."
