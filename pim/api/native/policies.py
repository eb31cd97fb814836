"""`/api/policies/{group_id}/{access}`: a group's activation and assignment policy,
as `pim policy show` prints it, and changed by KEY=VALUE settings as `pim policy set`
takes them (pim/operations/policies.py validates, authorizes and audits). Reading
needs only a signed-in caller, as the command line allows."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from pim.api.auth import Caller, authenticated, services
from pim.api.errors import not_found
from pim.api.native.guards import counting_mfa_failures
from pim.api.native.shapes import NO_NUL, Access, NativeIn, PathId, TotpCode
from pim.api.services import ApiServices
from pim.domain.models import AccessType
from pim.operations import policies as policy_ops
from pim.store.views import PolicyView, policy_view

router = APIRouter(prefix="/api/policies", tags=["policies"])


@router.get("/{group_id}/{access}", response_model=PolicyView, summary="A group's policy, with its version")
async def show_policy(
    group_id: PathId, access: Access, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> PolicyView:
    found = await api.store.policy(group_id, AccessType(access))
    if found is None:
        raise not_found(f"{group_id} is not a group enabled in PIM")
    policy, version = found
    return policy_view(group_id, AccessType(access), policy, version)


Setting = Annotated[
    str, Field(min_length=3, max_length=10_000, pattern=NO_NUL, description='KEY=VALUE, e.g. "activation.max_duration=PT4H"')
]


class PolicyChangeIn(NativeIn):
    settings: list[Setting] = Field(min_length=1, max_length=100)
    # The caller's code: an owner of a role-assignable group changes its policy only with MFA.
    mfa_code: TotpCode | None = None


class PolicyVersion(BaseModel):
    group_id: str
    access: str
    version: int


@router.patch("/{group_id}/{access}", response_model=PolicyVersion, summary="Change policy settings")
async def set_policy(
    group_id: PathId,
    access: Access,
    body: PolicyChangeIn,
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> PolicyVersion:
    with counting_mfa_failures(api, caller, body.mfa_code):
        async with api.admin(caller) as ctx:
            version = await policy_ops.set_policy(ctx, group_id, AccessType(access), body.settings, body.mfa_code)
    return PolicyVersion(group_id=group_id, access=access, version=version)
