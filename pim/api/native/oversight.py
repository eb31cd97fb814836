"""What an auditor and an operator look at: the audit log and its hash chain, the
directory compared with PIM, the reconciler run on demand, the API's own health.

The audit log names every principal's every action, a run of the reconciler
changes access, and health names the deployment's hosts and schema: these are for
administrators (a caller holding any directory role; 403 for others). The
directory diff answers any signed-in caller, as the members list does: it tells
little more. (/readyz tells anyone whether the API is ready, and nothing else.)"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel
from temporalio.exceptions import ApplicationError

from pim.api.auth import Caller, authenticated, services
from pim.api.errors import UNAVAILABLE, GraphError, bad_request, not_found
from pim.api.native.guards import require_administrator
from pim.api.native.shapes import Access, PathId, QueryId
from pim.api.services import ApiServices
from pim.directories import DirectoryNotAvailable, build_directory
from pim.directories.interface import Directory
from pim.directories.sync import compare, expected_holders
from pim.domain.models import AccessType
from pim.domain.reconcile import ReconcileReport
from pim.runtime.health import Check, check_client, check_store
from pim.runtime.schedules import reconcile_now
from pim.store.views import AuditView, DirectoryDiffView, audit_view, directory_diff_view

router = APIRouter(prefix="/api", tags=["oversight"])


@router.get("/audit", response_model=list[AuditView], summary="The audit log, oldest first (administrators)")
async def audit(
    group: QueryId = None,
    principal: QueryId = None,
    since: Annotated[datetime | None, Query(description="ISO 8601 with a zone")] = None,
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> list[AuditView]:
    require_administrator(caller, "the audit log")
    if since is not None and since.tzinfo is None:
        raise bad_request("since: give a time zone (e.g. 2026-11-28T15:00:00Z)", "since")
    rows = await api.store.audit(group_id=group, principal_id=principal, since=since)
    return [audit_view(r) for r in rows]


# A head recorded by an earlier run: the row id, and its hash (64 hex digits).
EXPECTED_HEAD = r"^[0-9]{1,18}:[0-9a-f]{64}$"


class ChainHead(BaseModel):
    id: int
    hash: str


class ChainProblem(BaseModel):
    row_id: int
    code: str
    message: str


class ChainReportOut(BaseModel):
    """`pim audit verify --json`: `head` null for an empty log, `problem` null when `ok`."""

    ok: bool
    rows: int
    unchained: int
    first_chained_id: int | None
    head: ChainHead | None
    problem: ChainProblem | None


@router.get(
    "/audit/verify",
    response_model=ChainReportOut,
    summary="Check the audit log's hash chain (administrators); 200 whether intact or not",
)
async def verify_audit(
    expect: Annotated[str | None, Query(pattern=EXPECTED_HEAD, description="ID:HASH, a head an earlier run printed")] = None,
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> dict[str, Any]:
    require_administrator(caller, "verifying the audit log")
    expected = None
    if expect is not None:
        row_id, _, digest = expect.partition(":")
        expected = (int(row_id), digest)
    report = await api.store.verify_audit(expected)
    return report.as_json()


@asynccontextmanager
async def _directory(api: ApiServices) -> AsyncIterator[Directory]:
    try:
        directory = build_directory(api.settings, api.store)
    except (DirectoryNotAvailable, ValueError) as error:
        raise GraphError(503, UNAVAILABLE, f"directory: {error}") from None
    try:
        yield directory
    finally:
        close = getattr(directory, "aclose", None)
        if close is not None:
            await close()


@router.get(
    "/directory/diff/{group_id}",
    response_model=DirectoryDiffView,
    summary="Who the directory holds in a group, against who should hold it",
)
async def directory_diff(
    group_id: PathId, access: Access = "member", caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> DirectoryDiffView:
    if await api.store.group(group_id) is None:
        raise not_found(f"no group {group_id}")
    kind = AccessType(access)
    async with _directory(api) as directory:
        try:
            held = await directory.holders(group_id, kind)
        except ApplicationError as error:
            raise GraphError(503, UNAVAILABLE, f"directory ({api.settings.directory}): {error.message}") from None
    expected = await expected_holders(api.store, group_id, kind, datetime.now(UTC))
    return directory_diff_view(compare(group_id, kind, expected=expected, held=held))


@router.post("/reconcile", response_model=ReconcileReport, summary="Run the reconciler now (administrators)")
async def reconcile(caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)) -> ReconcileReport:
    require_administrator(caller, "running the reconciler")
    return await reconcile_now(api.pim.temporal, api.pim.task_queue)


@router.get(
    "/health", response_model=list[Check], summary="The API's Temporal and store: reachable, schema current (administrators)"
)
async def health(caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)) -> list[Check]:
    require_administrator(caller, "the deployment's health")  # its details name hosts and schema versions
    return list(await asyncio.gather(check_client(api.pim.temporal), check_store(api.store)))
