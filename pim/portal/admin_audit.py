"""`/admin/audit`: the audit log, filtered by group, principal and time (GET
/api/audit), newest first, with the verdict on its hash chain (GET
/api/audit/verify, optionally against a head recorded earlier); `/admin/audit.csv`
is the same lines, all of them, as a CSV file made here from the API's JSON (the API
has no CSV form).

Both are for administrators, as the API's audit endpoints are."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from fastapi import Depends
from fastapi.responses import Response
from starlette.requests import Request

from pim.portal.admin_common import admin_page, administrator, field_errors, utc_instant
from pim.portal.backend import ApiError, backend
from pim.portal.pages import Viewer, portal_router

router = portal_router()
FILTERS = ("group", "principal", "since")
TARGETS = {"group": "group", "principal": "principal", "since": "since", "expect": "expect"}
SHOWN = 500  # lines on the page, the newest; the CSV has them all
COLUMNS = ("at", "action", "actor", "request_id", "group_id", "access", "principal_id", "details")
# A cell a spreadsheet would read as a formula starts with one of these: it gets a leading '.
EXPECTED_HEAD = re.compile(r"^[0-9]{1,18}:[0-9a-f]{64}$")  # as GET /api/audit/verify takes it
FORMULA = ("=", "+", "-", "@", "\t", "\r")


def audit_query(values: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """GET /api/audit's query for the filters typed, or the filters the page itself cannot read."""
    query = {name: values[name] for name in ("group", "principal") if values.get(name)}
    errors: dict[str, str] = {}
    if values.get("since"):
        try:
            query["since"] = utc_instant(values["since"])
        except ValueError as error:
            errors["since"] = str(error)
    return query, errors


def details_text(details: dict[str, Any]) -> str:
    """`kind=security, role_assignable=false`: a line's details, one after the other."""
    return ", ".join(f"{key}={value if isinstance(value, str) else json.dumps(value)}" for key, value in details.items())


def _filters(request: Request) -> dict[str, str]:
    return {name: request.query_params.get(name, "").strip() for name in (*FILTERS, "expect")}


@router.get("/admin/audit")
async def audit(request: Request, viewer: Viewer = Depends(administrator)) -> Response:
    values = _filters(request)
    query, errors = audit_query(values)
    if values["expect"] and not EXPECTED_HEAD.match(values["expect"]):
        errors["expect"] = "ID:HASH, as an earlier verification showed it (a row id, a colon, 64 hex digits)"
    api = backend(request, viewer)
    expect = {"expect": values["expect"]} if values["expect"] and "expect" not in errors else {}
    verdict = await api.get("/api/audit/verify", **expect)
    lines: list[dict[str, Any]] = []
    if not errors.keys() & set(FILTERS):
        try:
            lines = await api.get("/api/audit", **query)
        except ApiError as refused:
            if refused.status != 400:
                raise
            errors.update(field_errors(refused, TARGETS))
    newest = [{**line, "details_text": details_text(line.get("details") or {})} for line in reversed(lines)]
    shown = {name: values[name] for name in FILTERS if values[name]}
    return admin_page(
        request,
        "admin/audit.html",
        viewer,
        status=400 if errors else 200,
        title="Audit",
        lines=newest[:SHOWN],
        total=len(lines),
        verdict=verdict,
        values=values,
        filters=shown,
        csv_url="/admin/audit.csv" + (f"?{urlencode(shown)}" if shown else ""),
        errors=errors,
    )


def csv_cell(value: Any) -> str:
    text = "" if value is None else value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return f"'{text}" if text.startswith(FORMULA) else text


def audit_csv_text(lines: list[dict[str, Any]]) -> str:
    """The lines as CSV (RFC 4180, oldest first): a header, then one row per line; the
    details as JSON."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for line in lines:
        writer.writerow([csv_cell(line.get(column)) for column in COLUMNS])
    return buffer.getvalue()


@router.get("/admin/audit.csv")
async def audit_csv(request: Request, viewer: Viewer = Depends(administrator)) -> Response:
    query, errors = audit_query(_filters(request))
    if errors:
        raise ApiError(400, "BadRequest", f"since: {errors['since']}")
    lines = await backend(request, viewer).get("/api/audit", **query)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return Response(
        audit_csv_text(lines),
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="audit-{stamp}.csv"',
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
    )
