"""Who am I, users and service principals, directory roles, groups and their
members, MFA enrolment: `/api/me`, `/api/users`, `/api/groups`, `/api/mfa`.

Changes go through the operations of pim/operations (principals, groups), which
authorize the caller, audit the change and refuse with a code (from_refusal).
Reading groups and members needs only a signed-in caller, as the command line
lets anyone with the store read them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal, get_args

from fastapi import APIRouter, Depends, Response
from pydantic import BaseModel, Field

from pim.api.auth import Caller, authenticated, services
from pim.api.errors import not_found
from pim.api.native.guards import counting_mfa_failures
from pim.api.native.shapes import NO_NUL, Access, Id, NativeIn, PathId, TotpCode
from pim.api.services import ApiServices
from pim.domain import authorization as authz
from pim.domain.models import AccessType
from pim.operations import groups as group_ops
from pim.operations import principals as principal_ops
from pim.operations.context import EMAIL_PATTERN
from pim.store.views import EligibleMembersView, GroupView, MembersView, group_view, members_view

router = APIRouter(prefix="/api", tags=["administration"])
EMAIL = EMAIL_PATTERN.replace(r"\s", r"\s\x00")  # the operation's check, and no NUL (no column takes it)
Role = Literal["Global Administrator", "Privileged Role Administrator", "Groups Administrator", "User Administrator"]
assert set(get_args(Role)) == set(authz.ROLES)  # the Literal documents the roles in /openapi.json


class Me(BaseModel):
    principal_id: str
    kind: str  # user | service
    roles: list[str]


@router.get("/me", response_model=Me, summary="The caller: principal, kind and directory roles")
async def me(caller: Caller = Depends(authenticated)) -> Me:
    return Me(principal_id=caller.principal_id, kind=caller.kind, roles=sorted(caller.roles))


# --- users, service principals and roles ------------------------------------------------


class UserIn(NativeIn):
    id: Id
    name: Annotated[str, Field(max_length=256, pattern=NO_NUL)] = ""
    email: Annotated[str, Field(max_length=320, pattern=EMAIL)] | None = None
    kind: Literal["user", "service"] = "user"


class UserOut(BaseModel):
    id: str
    kind: str


@router.post("/users", status_code=201, response_model=UserOut, summary="Add a user or a service principal")
async def add_user(body: UserIn, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)) -> UserOut:
    async with api.admin(caller) as ctx:
        await principal_ops.add_user(ctx, body.id, body.name, body.email, kind=body.kind)
    return UserOut(id=body.id, kind=body.kind)


class RoleIn(NativeIn):
    role: Role


class RoleOut(BaseModel):
    principal_id: str
    role: str


@router.post("/users/{principal_id}/roles", response_model=RoleOut, summary="Grant a directory role")
async def grant_role(
    principal_id: PathId, body: RoleIn, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> RoleOut:
    async with api.admin(caller) as ctx:
        await principal_ops.grant_role(ctx, principal_id, body.role)
    return RoleOut(principal_id=principal_id, role=body.role)


# --- groups -------------------------------------------------------------------------


@router.get("/groups", response_model=list[GroupView], summary="Every group, with its kind and PIM status")
async def list_groups(caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)) -> list[GroupView]:
    return [group_view(g) for g in await api.store.groups()]


class GroupIn(NativeIn):
    id: Id
    kind: Literal["security", "microsoft365", "dynamic", "synced"]
    role_assignable: bool = False
    # true: enable it in PIM with default policies (creating it if unknown); false: create it outside PIM.
    onboard: bool = True


class GroupOut(BaseModel):
    id: str
    pim_enabled: bool


@router.post("/groups", status_code=201, response_model=GroupOut, summary="Create a group, or onboard one into PIM")
async def add_group(body: GroupIn, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)) -> GroupOut:
    operation = group_ops.onboard_group if body.onboard else group_ops.create_group
    async with api.admin(caller) as ctx:
        await operation(
            ctx,
            body.id,
            body.kind,
            role_assignable=body.role_assignable,
            max_role_assignable=api.settings.max_role_assignable_groups,
        )
    group = await api.store.group(body.id)
    return GroupOut(id=body.id, pim_enabled=bool(group and group.pim_enabled))


class Offboarded(BaseModel):
    group_id: str
    ended: list[str] = Field(description="the eligible assignments that ended")


@router.post("/groups/{group_id}/offboard", response_model=Offboarded, summary="Take a group out of PIM")
async def offboard_group(
    group_id: PathId, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> Offboarded:
    async with api.admin(caller) as ctx:
        ended = await group_ops.offboard_group(ctx, group_id)
    return Offboarded(group_id=group_id, ended=ended)


@router.get(
    "/groups/{group_id}/members",
    response_model=MembersView | EligibleMembersView,
    summary="Who holds access now and through what; with eligible=true, who may activate",
)
async def members(
    group_id: PathId,
    access: Access = "member",
    eligible: bool = False,
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> MembersView | EligibleMembersView:
    if await api.store.group(group_id) is None:
        raise not_found(f"no group {group_id}")
    return await members_view(api.store, group_id, AccessType(access), datetime.now(UTC), eligible=eligible)


# --- MFA enrolment ----------------------------------------------------------------


class EnrollmentIn(NativeIn):
    principal_id: Id
    # The caller's current code, to re-enrol themselves without an administrator.
    mfa_code: TotpCode | None = None


class EnrollmentOut(BaseModel):
    principal_id: str
    otpauth_uri: str = Field(description="for the principal's authenticator app; shown once")


@router.post("/mfa/enrollments", status_code=201, response_model=EnrollmentOut, summary="Enrol a user for TOTP (a new secret)")
async def enroll_mfa(
    body: EnrollmentIn, response: Response, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> EnrollmentOut:
    import pyotp

    with counting_mfa_failures(api, caller, body.mfa_code):
        async with api.admin(caller) as ctx:
            secret = await principal_ops.enroll_mfa(ctx, body.principal_id, body.mfa_code)
    response.headers["Cache-Control"] = "no-store"  # a secret: no cache keeps it
    uri = pyotp.TOTP(secret).provisioning_uri(name=body.principal_id, issuer_name="PIM for Groups")
    return EnrollmentOut(principal_id=body.principal_id, otpauth_uri=uri)
