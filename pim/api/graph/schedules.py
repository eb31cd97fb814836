"""`/v1.0/identityGovernance/privilegedAccess/group/` assignmentSchedules,
assignmentScheduleInstances, eligibilitySchedules and eligibilityScheduleInstances:
list (scoped by `$filter` on groupId or principalId, as Graph requires),
`filterByCurrentUser(on='principal')`, and get by id.

Administrators see every schedule; a group's managers (its owners too) that group's;
anyone else only their own: a filter on their own principalId, or filterByCurrentUser.
What the schedules are is pim/api/graph/schedule_views.py."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query

from pim.api.auth import Caller, authenticated, services
from pim.api.errors import bad_request, forbidden, not_found
from pim.api.graph import schedule_views as views
from pim.api.graph.filters import parse_filter
from pim.api.graph.models import GROUP_ROOT, Collection, context
from pim.api.services import ApiServices

router = APIRouter(prefix=GROUP_ROOT)
SCOPE = ("groupId", "principalId")
Filter = Annotated[str | None, Query(alias="$filter", max_length=1000)]
ScheduleId = Annotated[str, Path(max_length=700)]


@dataclass(frozen=True)
class Resource:
    name: str
    model: type[views.ScheduleView]
    entries: Callable[[ApiServices, str | None, str | None, datetime], Awaitable[list[views.Entry]]]
    by_id: Callable[[ApiServices, str, datetime], Awaitable[views.Entry | None]]
    shape: Callable[[views.Entry], views.ScheduleView]
    filterable: frozenset[str]
    in_effect_only: bool  # instances: schedules in effect now

    @property
    def resource(self) -> str:
        return f"identityGovernance/privilegedAccess/group/{self.name}"


BASE = frozenset({"groupId", "principalId", "accessId", "memberType"})
RESOURCES = (
    Resource(
        "assignmentSchedules",
        views.AssignmentSchedule,
        views.assignment_entries,
        views.assignment_by_id,
        views.assignment_schedule,
        BASE | {"assignmentType", "status"},
        False,
    ),
    Resource(
        "assignmentScheduleInstances",
        views.AssignmentScheduleInstance,
        views.assignment_entries,
        views.assignment_by_id,
        views.assignment_instance,
        BASE | {"assignmentType"},
        True,
    ),
    Resource(
        "eligibilitySchedules",
        views.EligibilitySchedule,
        views.eligibility_entries,
        views.eligibility_by_id,
        views.eligibility_schedule,
        BASE | {"status"},
        False,
    ),
    Resource(
        "eligibilityScheduleInstances",
        views.EligibilityScheduleInstance,
        views.eligibility_entries,
        views.eligibility_by_id,
        views.eligibility_instance,
        BASE,
        True,
    ),
)


def matches(view: views.ScheduleView, wanted: dict[str, str | None]) -> bool:
    """Graph compares enum values without regard to case (`assignmentType eq 'Activated'`)."""
    for name, value in wanted.items():
        found = getattr(view, name)
        if (found is None) != (value is None) or (found is not None and str(found).casefold() != str(value).casefold()):
            return False
    return True


async def listing(resource: Resource, api: ApiServices, caller: Caller, wanted: dict[str, str | None]) -> dict[str, Any]:
    group_id, principal_id = wanted.get("groupId"), wanted.get("principalId")
    if group_id is None and principal_id is None:
        raise bad_request(
            f"$filter: {resource.name} are listed for a groupId or a principalId (`groupId eq '...'`), "
            "or with filterByCurrentUser(on='principal')",
            "$filter",
            "filter_required",
        )
    at = datetime.now(UTC)
    if not await views.may_list(api, caller, group_id, principal_id, at):
        raise forbidden(
            f"{caller.principal_id} may list only their own {resource.name}: filter on your own principalId, "
            "or use filterByCurrentUser(on='principal')",
            "not_authorized",
        )
    entries = await resource.entries(api, group_id, principal_id, at)
    shown = [resource.shape(e) for e in entries if e.in_effect or not resource.in_effect_only]
    found = sorted((v for v in shown if matches(v, wanted)), key=lambda v: (v.groupId, v.accessId, v.principalId, v.id))
    return {"@odata.context": context(resource.resource), "value": found}  # validated by the route's response model


def add_routes(resource: Resource) -> None:
    listed = Collection[resource.model]  # type: ignore[name-defined]
    routes = APIRouter(prefix=f"/{resource.name}", tags=[resource.name])

    async def list_all(
        filter_: Filter = None, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
    ) -> Any:
        return await listing(resource, api, caller, parse_filter(filter_, resource.filterable))

    async def list_mine(
        on: Literal["principal"],
        filter_: Filter = None,
        caller: Caller = Depends(authenticated),
        api: ApiServices = Depends(services),
    ) -> Any:
        wanted = parse_filter(filter_, resource.filterable - {"principalId"})
        return await listing(resource, api, caller, {**wanted, "principalId": caller.principal_id})

    async def get_one(
        schedule_id: ScheduleId, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
    ) -> Any:
        at = datetime.now(UTC)
        entry = await resource.by_id(api, schedule_id, at)
        if entry is None or (resource.in_effect_only and not entry.in_effect):
            raise not_found(f"no {resource.name} {schedule_id}")
        if not await views.may_see(api, caller, entry, at):
            raise forbidden(f"{caller.principal_id} may not see {resource.name} {schedule_id}", "not_authorized")
        found = resource.shape(entry)
        found.odata_context = context(resource.resource, entity=True)
        return found

    routes.add_api_route(
        "",
        list_all,
        methods=["GET"],
        response_model=listed,
        response_model_by_alias=True,
        summary="List",
        operation_id=f"list_{resource.name}",
    )
    # Before /{id}: a path parameter would take that name too.
    routes.add_api_route(
        "/filterByCurrentUser(on='{on}')",
        list_mine,
        methods=["GET"],
        response_model=listed,
        response_model_by_alias=True,
        summary="The caller's own",
        operation_id=f"filter_{resource.name}_by_current_user",
    )
    routes.add_api_route(
        "/{schedule_id}",
        get_one,
        methods=["GET"],
        response_model=resource.model,
        response_model_by_alias=True,
        summary="Get",
        operation_id=f"get_{resource.name}",
    )
    router.include_router(routes)


for _resource in RESOURCES:
    add_routes(_resource)
