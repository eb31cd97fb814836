"""Native endpoints under /api, for what Graph has no resource for (docs/api.md)."""

from fastapi import APIRouter

from pim.api.native import admin, assignments, oversight, policies, proofs, requests, signin

router = APIRouter()
for module in (signin, requests, admin, assignments, policies, oversight, proofs):
    router.include_router(module.router)
