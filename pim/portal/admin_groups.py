"""`/admin`: every group, with onboarding (a new group, or one outside PIM) and, on a
group's page `/admin/groups/{id}`, offboarding. The group's page shows who holds
membership and ownership now and through what (an assignment, an activation), who
is eligible and through what (directly, or through a group), and its assignments,
each with Extend or Renew and Remove (admin_assignments.py).

Everything comes from the native API: GET/POST /api/groups, POST
/api/groups/{id}/offboard, GET /api/groups/{id}/members (held, and with
eligible=true) and GET /api/assignments."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from fastapi import Depends
from fastapi.responses import Response
from starlette.requests import Request

from pim.portal.admin_common import ACCESSES, GroupId, admin_page, administrator, field_errors, group_of
from pim.portal.backend import ApiError, Backend, backend
from pim.portal.formats import instant
from pim.portal.pages import Viewer, flash, form_values, portal_router, redirect

router = portal_router()
KINDS = (
    ("security", "Security"),
    ("microsoft365", "Microsoft 365"),
    ("dynamic", "Dynamic (never in PIM)"),
    ("synced", "Synced from on-premises (never in PIM)"),
)
# The API's names of the onboarding's fields (a target, or a message's head) -> the form's.
ONBOARD_TARGETS = {
    "id": "id",
    "group": "id",
    "kind": "kind",
    "--kind": "kind",
    "role_assignable": "role_assignable",
    "--role-assignable": "role_assignable",
}
# Expired assignments are listed while they can be renewed.
RENEWABLE = timedelta(days=30)
# The order of an assignment's states in the group's list.
STATE_ORDER = {"active": 0, "scheduled": 1, "expired": 2, "removed": 3}


# --- the groups ---------------------------------------------------------------------------------


@router.get("/admin")
async def groups(request: Request, viewer: Viewer = Depends(administrator)) -> Response:
    return await _groups_page(request, viewer, {"kind": "security"}, {})


async def _groups_page(
    request: Request, viewer: Viewer, values: dict[str, str], errors: dict[str, str], status: int = 200
) -> Response:
    found = await backend(request, viewer).get("/api/groups")
    return admin_page(
        request,
        "admin/groups.html",
        viewer,
        status=status,
        title="Groups",
        groups=sorted(found, key=lambda g: g["id"]),
        kinds=KINDS,
        never_in_pim=("dynamic", "synced"),
        values=values,
        errors=errors,
    )


@router.post("/admin/groups")
async def onboard_new(request: Request, viewer: Viewer = Depends(administrator)) -> Response:
    """Onboard a group by its id: created when unknown, enabled with the default policies."""
    values = await form_values(request)
    group_id = values.get("id", "")
    body = {
        "id": group_id,
        "kind": values.get("kind", "security"),
        "role_assignable": values.get("role_assignable") == "true",
        "onboard": True,
    }
    try:
        await backend(request, viewer).post("/api/groups", json=body)
    except ApiError as refused:
        return await _groups_page(request, viewer, values, field_errors(refused, ONBOARD_TARGETS), status=400)
    flash(request, f"Onboarded {group_id}: its member and owner policies are the defaults.")
    return redirect(f"/admin/groups/{quote(group_id)}")


@router.post("/admin/groups/{group_id}/onboard")
async def onboard_known(group_id: GroupId, request: Request, viewer: Viewer = Depends(administrator)) -> Response:
    """Onboard a group the tenant has outside PIM, as it is (its kind, role-assignable or not)."""
    api = backend(request, viewer)
    group = await group_of(api, group_id)
    body = {"id": group_id, "kind": group["kind"], "role_assignable": group["role_assignable"], "onboard": True}
    try:
        await api.post("/api/groups", json=body)
    except ApiError as refused:
        flash(request, f"{group_id} was not onboarded: {refused.message}", "error")
        return redirect("/admin")
    flash(request, f"Onboarded {group_id}: its member and owner policies are the defaults.")
    return redirect(f"/admin/groups/{group_id}")


@router.post("/admin/groups/{group_id}/offboard")
async def offboard(group_id: GroupId, request: Request, viewer: Viewer = Depends(administrator)) -> Response:
    try:
        done = await backend(request, viewer).post(f"/api/groups/{group_id}/offboard")
    except ApiError as refused:
        flash(request, f"{group_id} was not offboarded: {refused.message}", "error")
        return redirect(f"/admin/groups/{group_id}")
    ended = len(done.get("ended", []))
    flash(request, f"{group_id} is out of PIM; {ended} eligible assignment{'' if ended == 1 else 's'} ended.")
    return redirect(f"/admin/groups/{group_id}")


# --- a group ------------------------------------------------------------------------------------


async def group_holders(api: Backend, group_id: str) -> list[dict[str, Any]]:
    """For member and owner: who holds it now, and who is eligible, each with their sources."""
    calls = [api.get(f"/api/groups/{group_id}/members", access=a, eligible=e) for a in ACCESSES for e in ("false", "true")]
    found = await asyncio.gather(*calls)
    out = []
    for index, access in enumerate(ACCESSES):
        held, eligible = found[2 * index], found[2 * index + 1]
        out.append({"access": access, "holders": held.get("members", []), "eligible": eligible.get("eligible", [])})
    return out


@router.get("/admin/groups/{group_id}")
async def group_page(group_id: GroupId, request: Request, viewer: Viewer = Depends(administrator)) -> Response:
    api = backend(request, viewer)
    group = await group_of(api, group_id)
    holders, found = await asyncio.gather(group_holders(api, group_id), api.get("/api/assignments", group=group_id))
    oldest = datetime.now(UTC) - RENEWABLE
    assignments = [a for a in found if a["state"] != "expired" or (instant(a["ends_at"]) or oldest) > oldest]
    assignments.sort(key=lambda a: (a["access"], a["kind"], STATE_ORDER.get(a["state"], 9), a["principal_id"]))
    return admin_page(
        request,
        "admin/group.html",
        viewer,
        title=f"Group {group_id}",
        group=group,
        accesses=holders,
        assignments=assignments,
    )
