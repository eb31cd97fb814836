"""`/`, My access: what the signed-in person holds now and where it comes from, what
they may activate (each with its Activate control), and their activations' time
left, with Deactivate and Extend. `/activate/{group}/{access}` is the activation
form, `/extend/{group}/{access}` the extension's.

Everything comes from the API: Graph's schedule instances (eligible and active,
with memberType and assignmentType), the caller's requests, the policy of each
eligible group (its limits, shown on the form) and, for eligibility through a
group, that group's eligible list (which group it is)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import Depends, Path
from fastapi.responses import Response
from starlette.requests import Request

from pim.domain.durations import format_duration, parse_duration
from pim.domain.models import ID_PATTERN
from pim.domain.policy import ActivationSettings
from pim.identity.oidc import check_sign_in
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
from pim.portal.status import WAITING, request_row

router = portal_router()
GROUP = "/v1.0/identityGovernance/privilegedAccess/group"
REQUESTS = f"{GROUP}/assignmentScheduleRequests"
MINE = "filterByCurrentUser(on='principal')"
# The API's names of fields (a refusal's target, or its message's head) -> the form's.
TARGETS = {
    "duration": "duration",
    "scheduleInfo.expiration": "duration",
    "justification": "justification",
    "ticket": "ticket",
    "ticketInfo": "ticket",
    "mfa": "mfa_code",
    "mfaCode": "mfa_code",
    "start_at": "start_at",
    "scheduleInfo.startDateTime": "start_at",
}
OPEN = (*WAITING, "ScheduleCreated", "Granted")
GroupId = Annotated[str, Path(pattern=ID_PATTERN, max_length=128)]
Access = Literal["member", "owner"]  # a path's access: anything else is refused before any API call


# --- My access ----------------------------------------------------------------------------------


async def gather(api: Backend) -> dict[str, Any]:
    """The page's data: eligible (one entry per group and access), active, and open requests."""
    eligible, active, requests = await asyncio.gather(
        api.get(f"{GROUP}/eligibilityScheduleInstances/{MINE}"),
        api.get(f"{GROUP}/assignmentScheduleInstances/{MINE}"),
        api.get(f"{REQUESTS}/{MINE}"),
    )
    open_requests = {(r["groupId"], r["accessId"]): request_row(r) for r in requests["value"] if r["status"] in OPEN}
    by_target: dict[tuple[str, str], dict[str, Any]] = {}
    for instance in eligible["value"]:
        key = (instance["groupId"], instance["accessId"])
        entry = by_target.setdefault(key, {"group": key[0], "access": key[1], "sources": [], "request": open_requests.get(key)})
        kind = str(instance["memberType"]).lower()  # Graph's enums: direct | group
        entry["sources"].append({"kind": kind, "ends_at": instance.get("endDateTime"), "via": None})
    await _name_groups(api, by_target)
    for item in active["value"]:  # an activation's schedule id is `{groupId}_{accessId}_{request id}`
        item["assignmentType"], item["memberType"] = str(item["assignmentType"]).lower(), str(item["memberType"]).lower()
        prefix = f"{item['groupId']}_{item['accessId']}_"
        activated = item["assignmentType"] == "activated" and item["assignmentScheduleId"].startswith(prefix)
        item["requestId"] = item["assignmentScheduleId"][len(prefix) :] if activated else None
    return {
        "eligible": sorted(by_target.values(), key=lambda e: (e["group"], e["access"])),
        "active": sorted(active["value"], key=lambda a: (a["groupId"], a["accessId"], a["assignmentType"])),
    }


async def _name_groups(api: Backend, by_target: dict[tuple[str, str], dict[str, Any]]) -> None:
    """For eligibility through a group: which group (the group's eligible list says)."""
    wanted = [key for key, entry in by_target.items() if any(s["kind"] == "group" for s in entry["sources"])]
    lists = await asyncio.gather(
        *(api.get(f"/api/groups/{group}/members", access=access, eligible="true") for group, access in wanted)
    )
    for key, found in zip(wanted, lists):
        vias = sorted({s["via"] for row in found.get("eligible", []) for s in row["sources"] if s.get("via")})
        for source in by_target[key]["sources"]:
            if source["kind"] == "group":
                source["via"] = ", ".join(vias) or None


def _every(data: dict[str, Any]) -> str:
    """How often the page looks again: often while a request is on its way, else now and then."""
    waiting = any(e["request"] and e["request"]["label"].look == "pending" for e in data["eligible"])
    return "2s" if waiting else "15s"


async def _region(request: Request, viewer: Viewer) -> Any:
    data = await gather(backend(request, viewer))
    return live_region(request, viewer, "partials/access_live.html", "/access/live", _every(data), **data)


@router.get("/")
async def my_access(request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    return render(request, "access.html", viewer, title="My access", region=await _region(request, viewer))


@router.get("/access/live")
async def my_access_live(request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    return fragment(request, await _region(request, viewer))


# --- activating ---------------------------------------------------------------------------------


async def activation_settings(api: Backend, group_id: str, access: str) -> ActivationSettings:
    view = await api.get(f"/api/policies/{group_id}/{access}")
    return ActivationSettings.model_validate(view["policy"]["activation"])


def mfa_code_needed(settings: ActivationSettings, viewer: Viewer) -> bool:
    """Whether to ask for a code: the policy wants MFA and the sign-in behind the session
    does not count (not multi-factor, or older than the policy's window), as the API
    and the worker decide (pim/identity/oidc.check_sign_in)."""
    if not settings.require_mfa or "totp" not in settings.mfa_methods:
        return False
    return "oidc" not in settings.mfa_methods or check_sign_in(viewer.sign_in_claims(), settings, time.time()) is not None


def _form(request: Request, viewer: Viewer, group_id: str, access: str, settings: ActivationSettings, **context: Any) -> Response:
    values = context.pop("values", None) or {"duration": _short(settings.max_duration)}
    return render(
        request,
        "activate.html",
        viewer,
        status=context.pop("status", 200),
        title=f"Activate {access} of {group_id}",
        group=group_id,
        access=access,
        policy=settings,
        max_duration=format_duration(settings.max_duration),
        min_duration=format_duration(settings.min_duration),
        ask_mfa=context.pop("ask_mfa", None) or mfa_code_needed(settings, viewer),
        values=values,
        errors=context.pop("errors", {}),
        **context,
    )


def _short(duration: Any) -> str:
    """`8h`, `1h30m`: what a person would type."""
    text = format_duration(duration).removeprefix("PT").lower()
    return text if "d" not in text else format_duration(duration)


@router.get("/activate/{group_id}/{access}")
async def activation_form(group_id: GroupId, access: Access, request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    settings = await activation_settings(backend(request, viewer), group_id, access)
    return _form(request, viewer, group_id, access, settings)


def activation_body(viewer: Viewer, group_id: str, access: str, values: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """Graph's selfActivate body for the form, or the fields the form itself got wrong."""
    errors: dict[str, str] = {}
    duration = start = None
    try:
        duration = parse_duration(values["duration"]) if values.get("duration") else None
    except ValueError as error:
        errors["duration"] = str(error).partition(": ")[2]
    if values.get("start_at"):
        try:
            start = datetime.fromisoformat(values["start_at"]).replace(tzinfo=UTC)
        except ValueError:
            errors["start_at"] = "a date and time, e.g. 2026-12-24T08:00 (UTC)"
    code = values.get("mfa_code", "")
    if code and not (len(code) == 6 and code.isdigit()):
        errors["mfa_code"] = "the 6 digits your authenticator app shows"
    expiration = {"type": "afterDuration", "duration": format_duration(duration)} if duration else {"type": "notSpecified"}
    body = {
        "action": "selfActivate",
        "accessId": access,
        "principalId": viewer.principal_id,
        "groupId": group_id,
        "justification": values.get("justification") or None,
        "ticketInfo": {"ticketNumber": values["ticket"]} if values.get("ticket") else None,
        "scheduleInfo": {"startDateTime": (start or datetime.now(UTC)).isoformat(), "expiration": expiration},
        "mfaCode": code or None,
    }
    return body, errors


@router.post("/activate/{group_id}/{access}")
async def activate(group_id: GroupId, access: Access, request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    api = backend(request, viewer)
    values = await form_values(request)
    body, errors = activation_body(viewer, group_id, access, values)
    if not errors:
        try:
            created = await api.post(REQUESTS, json=body)
        except ApiError as refused:
            errors = refused.by_field(TARGETS)
            ask_mfa = any(code.startswith("mfa_") for code in refused.codes) or bool(values.get("mfa_code"))
            if ask_mfa and not values.get("mfa_code"):  # the sign-in did not count: the code is what is missing
                errors["mfa_code"] = f"Enter the code your authenticator app shows ({errors.get('mfa_code') or 'required'})."
            settings = await activation_settings(api, group_id, access)
            return _form(request, viewer, group_id, access, settings, values=values, errors=errors, status=400, ask_mfa=ask_mfa)
        flash(request, f"Requested: {access} of {group_id}.")
        return redirect(f"/requests/{created['id']}")
    settings = await activation_settings(api, group_id, access)
    return _form(request, viewer, group_id, access, settings, values=values, errors=errors, status=400)


# --- deactivating and extending -----------------------------------------------------------------


@router.post("/deactivate/{group_id}/{access}")
async def deactivate(group_id: GroupId, access: Access, request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    """Back to the page the button was on (its `back` field: My access, or the request's page)."""
    back = safe_next((await form_values(request)).get("back"))
    body = {"action": "selfDeactivate", "accessId": access, "principalId": viewer.principal_id, "groupId": group_id}
    try:
        await backend(request, viewer).post(REQUESTS, json=body)
        flash(request, f"Deactivated: {access} of {group_id}.")
    except ApiError as refused:
        flash(request, f"Not deactivated: {refused.message}", "error")
    return redirect(back)


@router.get("/extend/{group_id}/{access}")
async def extension_form(
    group_id: GroupId, access: Access, request: Request, back: str = "/", viewer: Viewer = Depends(signed_in)
) -> Response:
    values = {"duration": "1h", "back": safe_next(back)}
    return await _extension_page(request, viewer, group_id, access, values, {}, 200)


async def _extension_page(
    request: Request, viewer: Viewer, group_id: str, access: str, values: dict[str, str], errors: dict[str, str], status: int
) -> Response:
    values = {**values, "back": safe_next(values.get("back"))}
    api = backend(request, viewer)
    settings = await activation_settings(api, group_id, access)
    active = await api.get(f"{GROUP}/assignmentScheduleInstances/{MINE}", **{"$filter": f"groupId eq '{group_id}'"})
    current = [a for a in active["value"] if a["accessId"] == access and str(a["assignmentType"]).lower() == "activated"]
    return render(
        request,
        "extend.html",
        viewer,
        status=status,
        title=f"Extend {access} of {group_id}",
        group=group_id,
        access=access,
        policy=settings,
        total_limit=format_duration(settings.total_limit),
        max_duration=format_duration(settings.max_duration),
        active=current[0] if current else None,
        values=values,
        errors=errors,
    )


@router.post("/extend/{group_id}/{access}")
async def extend(group_id: GroupId, access: Access, request: Request, viewer: Viewer = Depends(signed_in)) -> Response:
    values = await form_values(request)
    try:
        more = parse_duration(values.get("duration", ""), "duration")
    except ValueError as error:
        return await _extension_page(request, viewer, group_id, access, values, {"duration": str(error).partition(": ")[2]}, 400)
    body = {
        "action": "selfExtend",
        "accessId": access,
        "principalId": viewer.principal_id,
        "groupId": group_id,
        "justification": values.get("justification") or None,
        "scheduleInfo": {"expiration": {"type": "afterDuration", "duration": format_duration(more)}},
    }
    try:
        await backend(request, viewer).post(REQUESTS, json=body)
    except ApiError as refused:
        errors = refused.by_field({**TARGETS, "scheduleInfo": "duration", "extension": "duration"})
        return await _extension_page(request, viewer, group_id, access, values, errors, 400)
    flash(request, f"Extended by {format_duration(more)}: {access} of {group_id}.")
    return redirect(safe_next(values.get("back")))
