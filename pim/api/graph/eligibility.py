"""`/v1.0/identityGovernance/privilegedAccess/group/eligibilityScheduleRequests`:
administrators make, remove, extend and renew eligible assignments (adminAssign,
adminRemove, adminExtend, adminRenew, as pim/api/graph/admin_requests.py does for
active ones); get one, list with `$filter`, `filterByCurrentUser`.

Activating is not an eligibility request: selfActivate, selfDeactivate and selfExtend
are assignmentScheduleRequests (400 here, as in Graph). Eligibility requests complete
at once, so none is ever pending, waits for an approver or can be canceled."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from pim.api.auth import Caller, authenticated, services
from pim.api.errors import bad_request, forbidden, not_found
from pim.api.graph import admin_history, admin_requests
from pim.api.graph.activations import AssignmentScheduleRequest
from pim.api.graph.filters import parse_filter
from pim.api.graph.models import GROUP_ROOT, Collection, context
from pim.api.graph.requests import ADMIN_ACTIONS, AssignmentScheduleRequestIn
from pim.api.graph.schedule_views import live_grants_of, may_list
from pim.api.ids import parse_admin_request_id
from pim.api.services import ApiServices
from pim.domain.models import AccessType

RESOURCE = "identityGovernance/privilegedAccess/group/eligibilityScheduleRequests"
router = APIRouter(prefix=f"{GROUP_ROOT}/eligibilityScheduleRequests", tags=["eligibilityScheduleRequests"])
FILTERABLE = frozenset({"groupId", "principalId", "accessId", "status", "action"})
Filter = Annotated[str | None, Query(alias="$filter", max_length=1000)]


class EligibilityScheduleRequest(AssignmentScheduleRequest):
    """privilegedAccessGroupEligibilityScheduleRequest (Graph v1.0): the same properties."""


RequestList = Collection[EligibilityScheduleRequest]


@router.post("", status_code=201, response_model=EligibilityScheduleRequest, response_model_by_alias=True, summary="Create")
async def create_request(
    body: AssignmentScheduleRequestIn, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> EligibilityScheduleRequest:
    if body.action not in ADMIN_ACTIONS:
        raise bad_request(
            f"action: {body.action} is not an eligibility request ({', '.join(ADMIN_ACTIONS)}); "
            "activations are assignmentScheduleRequests",
            "action",
        )
    return await admin_requests.perform(api, caller, body, "eligible", EligibilityScheduleRequest, RESOURCE)


@router.get("", response_model=RequestList, response_model_by_alias=True, summary="List")
async def list_requests(
    filter_: Filter = None, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> RequestList:
    """Everyone's for administrators, a group's for its managers; others filter on their
    own principalId (or use filterByCurrentUser)."""
    wanted = parse_filter(filter_, FILTERABLE)
    if not await may_list(api, caller, wanted.get("groupId"), wanted.get("principalId"), datetime.now(UTC)):
        raise forbidden(
            "listing everyone's eligibility requests needs an administrator role: filter on your own principalId, "
            "or use filterByCurrentUser(on='principal')",
            "not_authorized",
        )
    found = await admin_history.matching_admin_requests(api, wanted, "eligible", EligibilityScheduleRequest)
    return RequestList.model_validate({"@odata.context": context(RESOURCE), "value": found})


@router.get(
    "/filterByCurrentUser(on='{on}')",
    response_model=RequestList,
    response_model_by_alias=True,
    summary="The caller's eligibility requests (principal), the ones they made (createdBy), or none to approve (approver)",
)
async def filter_by_current_user(
    on: Literal["principal", "createdBy", "approver"],
    filter_: Filter = None,
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> RequestList:
    wanted = parse_filter(filter_, FILTERABLE - {"principalId"})
    if on == "principal":
        found = await admin_history.matching_admin_requests(
            api, {**wanted, "principalId": caller.principal_id}, "eligible", EligibilityScheduleRequest
        )
    elif on == "createdBy":
        found = await created_by(api, caller, wanted)
    else:  # nothing here waits for an approver
        found = []
    return RequestList.model_validate({"@odata.context": context(RESOURCE), "value": found})


async def created_by(api: ApiServices, caller: Caller, wanted: dict[str, str | None]) -> list[EligibilityScheduleRequest]:
    """The requests the caller made. Only a group's managers make any: an administrator
    is looked up everywhere, an owner in the groups they own (no search of the whole
    audit log on behalf of anyone else)."""
    if caller.is_admin:
        return await admin_history.matching_admin_requests(
            api, wanted, "eligible", EligibilityScheduleRequest, created_by=caller.principal_id
        )
    grants = await live_grants_of(api, wanted.get("groupId"), caller.principal_id, datetime.now(UTC))
    found = []
    for group_id in sorted({g.group_id for g in grants if g.access == AccessType.owner.value}):
        found += await admin_history.matching_admin_requests(
            api, {**wanted, "groupId": group_id}, "eligible", EligibilityScheduleRequest, created_by=caller.principal_id
        )
    return sorted(found, key=lambda r: r.createdDateTime, reverse=True)


# After filterByCurrentUser(...): a path parameter would take that name too.
@router.get("/{request_id}", response_model=EligibilityScheduleRequest, response_model_by_alias=True, summary="Get")
async def get_request(
    request_id: Annotated[str, Path(max_length=600)],
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> EligibilityScheduleRequest:
    ref = parse_admin_request_id(request_id)
    if ref is None:
        raise not_found(f"no request {request_id}")
    found = await admin_history.visible_admin_request(api, caller, ref, "eligible", EligibilityScheduleRequest)
    found.odata_context = context(RESOURCE, entity=True)
    return found
