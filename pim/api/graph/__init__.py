"""Microsoft Graph's PIM for Groups resources (v1.0), with Graph's shapes."""

from fastapi import APIRouter

from pim.api.graph import approvals, eligibility, policies, requests, schedules

router = APIRouter()
for module in (requests, approvals, schedules, eligibility, policies):
    router.include_router(module.router)
