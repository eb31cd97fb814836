"""Liveness and readiness, for the load balancer and the orchestrator: no token needed,
nothing said about the deployment beyond ok or not."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from pim.api.auth import services
from pim.api.services import ApiServices
from pim.runtime.health import check_store

router = APIRouter(tags=["health"])


class Probe(BaseModel):
    status: str  # ok | unavailable
    checks: dict[str, bool] = {}


@router.get("/healthz", response_model=Probe, summary="The process is up")
async def healthz() -> Probe:
    return Probe(status="ok")


@router.get("/readyz", response_model=Probe, responses={503: {"model": Probe}}, summary="Temporal and the store answer")
async def readyz(api: ApiServices = Depends(services)) -> Probe | JSONResponse:
    async def temporal_ok() -> bool:
        try:
            return await asyncio.wait_for(api.pim.temporal.service_client.check_health(), 5.0)
        except Exception:  # noqa: BLE001 - any failure is "not ready"
            return False

    store, temporal = await asyncio.gather(check_store(api.store), temporal_ok())
    checks = {"store": store.ok, "temporal": bool(temporal)}
    probe = Probe(status="ok" if all(checks.values()) else "unavailable", checks=checks)
    return probe if all(checks.values()) else JSONResponse(probe.model_dump(), status_code=503)
