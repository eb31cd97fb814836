"""`/admin/reconcile`: the reconciler's status, as far as the API tells it: the
API's own Temporal connection and store (GET /api/health), what the reconciler did
in the last seven days (its lines in GET /api/audit), and a button that runs it now
(POST /api/reconcile, which waits for the run) and shows its report.

The API has no endpoint for the reconcile schedule itself (when the next run is
due, whether it is paused), so the page does not show it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import Depends
from fastapi.responses import Response
from starlette.requests import Request

from pim.portal.admin_audit import details_text
from pim.portal.admin_common import admin_page, administrator
from pim.portal.backend import backend
from pim.portal.pages import Viewer, portal_router

router = portal_router()
# The reconciler's audit lines (activities/reconcile.py) and what each means.
ACTIONS = {
    "access_reconciled": "taken away: its source had ended",
    "claim_released": "claim released: its request's workflow is gone",
    "access_unsourced_removed": "removed: no source gives it",
    "access_unsourced": "reported: no source gives it",
}
RECENT = timedelta(days=7)
SHOWN = 100
REPORT = (
    ("revoked", "Taken away (the source had ended)"),
    ("released", "Claims released (the request's workflow is gone)"),
    ("unsourced", "Removed (no source gives it)"),
    ("reported", "Reported, left in place"),
)


async def _page(request: Request, viewer: Viewer, report: dict[str, Any] | None) -> Response:
    api = backend(request, viewer)
    since = (datetime.now(UTC) - RECENT).isoformat()
    checks, lines = await asyncio.gather(api.get("/api/health"), api.get("/api/audit", since=since))
    recent = [
        {**line, "meaning": ACTIONS[line["action"]], "details_text": details_text(line.get("details") or {})}
        for line in reversed(lines)
        if line["action"] in ACTIONS
    ]
    return admin_page(
        request,
        "admin/reconcile.html",
        viewer,
        title="Reconcile status",
        checks=checks,
        recent=recent[:SHOWN],
        report=report,
        report_parts=REPORT,
    )


@router.get("/admin/reconcile")
async def reconcile_status(request: Request, viewer: Viewer = Depends(administrator)) -> Response:
    return await _page(request, viewer, None)


@router.post("/admin/reconcile")
async def reconcile_now(request: Request, viewer: Viewer = Depends(administrator)) -> Response:
    report = await backend(request, viewer).post("/api/reconcile")
    return await _page(request, viewer, report)
