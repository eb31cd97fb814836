"""Assignments, from a group's page: `/admin/groups/{id}/assign` makes a principal
eligible or an active holder of membership or ownership (for a duration, until a
date, or for good; with a justification, and the administrator's MFA code when a
policy wants one and the sign-in is no longer fresh), and
`/admin/groups/{id}/assignments/{assignment}/{extend|renew|remove}` changes one.

Each page calls the native API (POST /api/assignments, .../remove, .../extend,
.../renew), which authorizes, checks the group's policy and audits; its refusals
are shown next to the field they name."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from fastapi import Depends
from fastapi.responses import Response
from starlette.requests import Request

from pim.domain.durations import format_duration, parse_duration
from pim.domain.policy import ActivationSettings
from pim.identity.oidc import check_sign_in
from pim.portal.admin_common import (
    ACCESSES,
    AssignmentId,
    GroupId,
    admin_page,
    administrator,
    field_errors,
    group_of,
    utc_instant,
)
from pim.portal.backend import ApiError, Backend, backend
from pim.portal.formats import when
from pim.portal.pages import Viewer, flash, form_values, portal_router, redirect

router = portal_router()
Change = Literal["extend", "renew", "remove"]
# The API's names of fields (a detail's target, or a message's head) -> the forms' fields.
TARGETS = {
    "principal": "principal_id",
    "principal_id": "principal_id",
    "access": "access",
    "kind": "kind",
    "duration": "duration",
    "ends_at": "ends_at",
    "end": "ends_at",
    "--permanent": "end",
    "permanent": "end",
    "justification": "justification",
    "mfa": "mfa_code",
    "mfa_code": "mfa_code",
    "reason": "reason",
}
ENDS = (("duration", "After a duration"), ("until", "At a date"), ("permanent", "Never (permanent)"))


# --- assigning ----------------------------------------------------------------------------------


async def _limits(api: Backend, group: dict[str, Any]) -> list[dict[str, Any]]:
    """What the group's policies allow assignments: a row per access and kind."""
    if not group["pim_enabled"]:
        return []
    policies = await asyncio.gather(*(api.get(f"/api/policies/{group['id']}/{access}") for access in ACCESSES))
    return [
        {"access": access, "kind": kind, **view["policy"][f"{kind}_assignment"]}
        for access, view in zip(ACCESSES, policies)
        for kind in ("eligible", "active")
    ]


def code_needed(viewer: Viewer, group: dict[str, Any], limits: list[dict[str, Any]]) -> bool:
    """Whether to ask for the administrator's MFA code: a policy wants MFA for assignments
    (or the group is role-assignable, whose owners assign only with MFA), and the sign-in
    behind the session no longer counts (not multi-factor, or older than ten minutes: the
    operations' rule, pim/operations/assignments.signed_in_with_mfa)."""
    wanted = group["role_assignable"] or any(row["require_mfa"] for row in limits)
    return wanted and check_sign_in(viewer.sign_in_claims(), ActivationSettings(), time.time()) is not None


async def _assign_page(
    request: Request, viewer: Viewer, group_id: str, values: dict[str, str], errors: dict[str, str], ask_mfa: bool = False
) -> Response:
    api = backend(request, viewer)
    group = await group_of(api, group_id)
    limits = await _limits(api, group)
    return admin_page(
        request,
        "admin/assign.html",
        viewer,
        status=400 if errors else 200,
        title=f"Assign {group_id}",
        group=group,
        limits=limits,
        ends=ENDS,
        ask_mfa=ask_mfa or code_needed(viewer, group, limits),
        values=values,
        errors=errors,
    )


@router.get("/admin/groups/{group_id}/assign")
async def assign_form(group_id: GroupId, request: Request, viewer: Viewer = Depends(administrator)) -> Response:
    defaults = {"access": "member", "kind": "eligible", "end": "duration", "duration": "30d"}
    return await _assign_page(request, viewer, group_id, defaults, {})


def assignment_body(group_id: str, values: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """POST /api/assignments' body for the form, or the fields the form itself got wrong."""
    body: dict[str, Any] = {
        "group_id": group_id,
        "principal_id": values.get("principal_id", ""),
        "access": values.get("access", "member"),
        "kind": values.get("kind", "eligible"),
        "justification": values.get("justification") or None,
        "mfa_code": values.get("mfa_code") or None,
    }
    errors: dict[str, str] = {}
    end = values.get("end", "duration")
    if end == "permanent":
        body["permanent"] = True
    elif end == "until":
        try:
            body["ends_at"] = utc_instant(values.get("ends_at", ""))
        except ValueError as error:
            errors["ends_at"] = str(error)
    else:
        try:
            body["duration"] = format_duration(parse_duration(values.get("duration", ""), "duration"))
        except ValueError as error:
            errors["duration"] = str(error).partition(": ")[2]
    return body, errors


@router.post("/admin/groups/{group_id}/assign")
async def assign(group_id: GroupId, request: Request, viewer: Viewer = Depends(administrator)) -> Response:
    values = await form_values(request)
    body, errors = assignment_body(group_id, values)
    if errors:
        return await _assign_page(request, viewer, group_id, values, errors)
    try:
        await backend(request, viewer).post("/api/assignments", json=body)
    except ApiError as refused:
        errors = field_errors(refused, TARGETS)
        if values.get("end") == "until" and "duration" in errors:  # the API measures a date as a duration
            errors["ends_at"] = errors.pop("duration")
        ask_mfa = any(code.startswith("mfa_") for code in refused.codes) or bool(values.get("mfa_code"))
        return await _assign_page(request, viewer, group_id, values, errors, ask_mfa)
    what = f"{body['kind']} {body['access']} of {group_id} to {body['principal_id']}"
    flash(request, f"Assigned: {what}.")
    return redirect(f"/admin/groups/{group_id}")


# --- extending, renewing, removing --------------------------------------------------------------


async def _assignment(api: Backend, group_id: str, assignment_id: str) -> dict[str, Any]:
    for row in await api.get("/api/assignments", group=group_id, all="true"):
        if row["id"] == assignment_id:
            return dict(row)
    raise ApiError(404, "ResourceNotFound", f"{group_id} has no assignment {assignment_id}.")


async def _change_page(
    request: Request,
    viewer: Viewer,
    group_id: str,
    assignment_id: str,
    action: Change,
    values: dict[str, str],
    errors: dict[str, str],
) -> Response:
    row = await _assignment(backend(request, viewer), group_id, assignment_id)
    what = f"{row['kind']} {row['access']} assignment of {row['principal_id']}"
    return admin_page(
        request,
        "admin/assignment.html",
        viewer,
        status=400 if errors else 200,
        title=f"{action.capitalize()} the {what}",
        group_id=group_id,
        assignment=row,
        action=action,
        values=values,
        errors=errors,
    )


@router.get("/admin/groups/{group_id}/assignments/{assignment_id}/{action}")
async def change_form(
    group_id: GroupId, assignment_id: AssignmentId, action: Change, request: Request, viewer: Viewer = Depends(administrator)
) -> Response:
    values = {} if action == "remove" else {"duration": "30d"}
    return await _change_page(request, viewer, group_id, assignment_id, action, values, {})


def change_body(action: Change, values: dict[str, str]) -> tuple[dict[str, Any], dict[str, str]]:
    """The body of remove (a reason), or of extend and renew (a duration or a new end)."""
    if action == "remove":
        return {"reason": values.get("reason") or None}, {}
    body: dict[str, Any] = {"justification": values.get("justification") or None}
    duration, ends_at = values.get("duration", ""), values.get("ends_at", "")
    if bool(duration) == bool(ends_at):
        return body, {"duration": "give a duration or a new end (one of the two)"}
    try:
        if duration:
            body["duration"] = format_duration(parse_duration(duration, "duration"))
        else:
            body["ends_at"] = utc_instant(ends_at)
    except ValueError as error:
        return body, {"duration" if duration else "ends_at": str(error).removeprefix("duration: ")}
    return body, {}


@router.post("/admin/groups/{group_id}/assignments/{assignment_id}/{action}")
async def change(
    group_id: GroupId, assignment_id: AssignmentId, action: Change, request: Request, viewer: Viewer = Depends(administrator)
) -> Response:
    values = await form_values(request)
    body, errors = change_body(action, values)
    if not errors:
        try:
            done = await backend(request, viewer).post(f"/api/assignments/{assignment_id}/{action}", json=body)
        except ApiError as refused:
            errors = field_errors(refused, TARGETS)
    if errors:
        return await _change_page(request, viewer, group_id, assignment_id, action, values, errors)
    if action == "remove":
        flash(request, f"Removed assignment {assignment_id}.")
    else:
        flash(
            request,
            f"{'Extended' if action == 'extend' else 'Renewed'} assignment {assignment_id}: it ends {when(done['ends_at'])}.",
        )
    return redirect(f"/admin/groups/{group_id}")
