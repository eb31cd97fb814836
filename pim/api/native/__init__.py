"""Native endpoints under /api, for what Graph has no resource for (docs/api.md)."""

from fastapi import APIRouter

from pim.api.native import admin, requests

router = APIRouter()
for module in (requests, admin):
    router.include_router(module.router)
