"""`assignmentApprovals/{id}`: a request's approval as Graph's `approval`, one
`approvalStage` per stage of the policy (id "1", "2", ...), listed (`.../stages`, a
collection) or read one by one (`.../stages/{stageId}`), and the approver's decision
by `PATCH .../stages/{stageId}` (`Approve` or `Deny`, as Graph's update takes them).

| the stage | reviewResult | status |
|---|---|---|
| has its approvals | Approved | Completed |
| denied | Denied | Completed |
| open for decisions | NotReviewed | InProgress |
| undecided when the request's approval expired | NotReviewed | Expired |
| any other undecided one (a later stage, or one the request never reached) | NotReviewed | Initializing |

`filterByCurrentUser(on='approver')` lists the approvals waiting for the caller's
decision, then those the caller decided lately (the audit's decision lines).

`assignedToMe` is true while the caller may still decide it. A PATCH answers 204
when the decision counted, 409 when the stage is already decided (or not open yet),
403 when the caller may not decide it (their own request, or not an approver of the
stage)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Response
from pydantic import Field

from pim.api.auth import Caller, authenticated, services
from pim.api.errors import ErrorDetail, GraphError, forbidden, not_found
from pim.api.graph.activations import current_stage, may_view, stage_deciders
from pim.api.graph.models import GROUP_ROOT, Collection, GraphEntity, GraphIn, Identity, context
from pim.api.graph.requests import awaiting_decision, require_current_run, statuses_of, visible_request
from pim.api.ids import RUN_ID, WORKFLOW_ID, RequestRef
from pim.api.services import ApiServices
from pim.domain.models import ReviewDecision, State
from pim.domain.status import ActivationStatus, StageStatus, run_key_of
from pim.operations import requests as flows

RESOURCE = "identityGovernance/privilegedAccess/group/assignmentApprovals"
router = APIRouter(prefix=f"{GROUP_ROOT}/assignmentApprovals", tags=["assignmentApprovals"])
# filterByCurrentUser lists the caller's decisions of this long ago, this many at most.
DECIDED_WITHIN = timedelta(days=30)
DECIDED_LISTED = 50


ReviewResult = Literal["NotReviewed", "Approved", "Denied"]
StageState = Literal["Initializing", "InProgress", "Completed", "Expired"]


class ApprovalStage(GraphEntity):
    """approvalStage (Graph v1.0)."""

    id: str
    assignedToMe: bool
    displayName: str | None = None
    justification: str | None = None
    reviewedBy: Identity | None = None
    reviewedDateTime: datetime | None = None
    reviewResult: ReviewResult
    status: StageState


StageList = Collection[ApprovalStage]


class Approval(GraphEntity):
    """approval (Graph v1.0)."""

    id: str
    stages: list[ApprovalStage]


class StageDecisionIn(GraphIn):
    reviewResult: Literal["Approve", "Deny"]
    justification: Annotated[str, Field(max_length=2000)] | None = None


def _result(stage: StageStatus) -> ReviewResult:
    if any(d.decision == ReviewDecision.deny for d in stage.decisions):
        return "Denied"
    return "Approved" if stage.satisfied else "NotReviewed"


def _stage_state(status: ActivationStatus, result: ReviewResult, index: int, open_index: int | None) -> StageState:
    if result != "NotReviewed":
        return "Completed"
    if index == open_index:
        return "InProgress"
    return "Expired" if status.state == State.approval_expired else "Initializing"


async def stages_for(api: ApiServices, caller: Caller, status: ActivationStatus) -> list[ApprovalStage]:
    open_index = current_stage(status)
    out = []
    for index, stage in enumerate(status.stages):
        result = _result(stage)
        decided_by_caller = any(d.approver_id == caller.principal_id for s in status.stages for d in s.decisions)
        assigned = (
            index == open_index and not decided_by_caller and caller.principal_id in await stage_deciders(api, status, index)
        )
        last = stage.decisions[-1] if stage.decisions else None
        out.append(
            ApprovalStage(
                id=str(index + 1),
                assignedToMe=assigned,
                displayName=f"Stage {index + 1} of {len(status.stages)}: {stage.required} of {', '.join(stage.approvers)}",
                justification=last.justification if last else None,
                reviewedBy=Identity(id=last.approver_id) if last else None,
                reviewedDateTime=last.at if last else None,
                reviewResult=result,
                status=_stage_state(status, result, index, open_index),
            )
        )
    return out


ApprovalList = Collection[Approval]


@router.get(
    "/filterByCurrentUser(on='{on}')",
    response_model=ApprovalList,
    response_model_by_alias=True,
    summary="The approvals the caller may decide now, then those they decided",
)
async def filter_by_current_user(
    on: Literal["approver"], caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> ApprovalList:
    """Waiting for the caller's decision (newest request first), then the requests the
    caller decided in the last DECIDED_WITHIN (newest decision first, at most DECIDED_LISTED)."""
    waiting = await awaiting_decision(api, caller.principal_id, {})
    decided = await statuses_of(api, await decided_by(api, caller.principal_id))
    out, seen = [], set()
    viewable = [(ref, status) for ref, status in decided if await may_view(api, caller.principal_id, caller.is_admin, status)]
    for ref, status in [*waiting, *viewable]:
        if ref.id not in seen and status.stages:
            seen.add(ref.id)
            out.append(Approval(id=ref.id, stages=await stages_for(api, caller, status)))
    return ApprovalList.model_validate({"@odata.context": context(RESOURCE), "value": out})


async def decided_by(api: ApiServices, principal_id: str) -> list[RequestRef]:
    """The runs the approver decided on lately, from the audit's decision lines."""
    since = datetime.now(UTC) - DECIDED_WITHIN
    refs: dict[str, RequestRef] = {}
    for row in await api.store.decisions_by(principal_id, since=since, limit=DECIDED_LISTED):
        workflow_id, _, run_id = (run_key_of(row.dedupe_key) or "").partition("#")
        if WORKFLOW_ID.fullmatch(workflow_id) and RUN_ID.fullmatch(run_id):
            ref = RequestRef(workflow_id, run_id)
            refs.setdefault(ref.id, ref)
    return list(refs.values())


@router.get(
    "/{approval_id}", response_model=Approval, response_model_by_alias=True, summary="A request's approval and its stages"
)
async def get_approval(
    approval_id: str, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> Approval:
    _, status = await visible_request(api, caller, approval_id)
    if not status.stages:
        raise not_found(f"request {approval_id} needs no approval")
    return Approval.model_validate(
        {"@odata.context": context(RESOURCE, entity=True), "id": approval_id, "stages": await stages_for(api, caller, status)}
    )


@router.get(
    "/{approval_id}/stages", response_model=StageList, response_model_by_alias=True, summary="The stages of a request's approval"
)
async def list_stages(
    approval_id: str, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> StageList:
    stages = (await get_approval(approval_id, caller, api)).stages
    return StageList.model_validate({"@odata.context": context(f"{RESOURCE}('{approval_id}')/stages"), "value": stages})


@router.get("/{approval_id}/stages/{stage_id}", response_model=ApprovalStage, response_model_by_alias=True, summary="A stage")
async def get_stage(
    approval_id: str, stage_id: str, caller: Caller = Depends(authenticated), api: ApiServices = Depends(services)
) -> ApprovalStage:
    stages = (await get_approval(approval_id, caller, api)).stages
    found = next((stage for stage in stages if stage.id == stage_id), None)
    if found is None:
        raise not_found(f"request {approval_id} has no stage {stage_id}")
    found.odata_context = context(f"{RESOURCE}('{approval_id}')/stages", entity=True)
    return found


@router.patch("/{approval_id}/stages/{stage_id}", status_code=204, response_class=Response, summary="Approve or deny a stage")
async def decide_stage(
    approval_id: str,
    stage_id: str,
    body: StageDecisionIn,
    caller: Caller = Depends(authenticated),
    api: ApiServices = Depends(services),
) -> Response:
    api.limiter.check(api.decision_limit, caller.principal_id)
    ref, status = await visible_request(api, caller, approval_id)
    index = int(stage_id) - 1 if stage_id.isdigit() else -1
    if not 0 <= index < len(status.stages):
        raise not_found(f"request {approval_id} has no stage {stage_id}")
    if caller.principal_id == status.principal_id:
        raise forbidden("nobody approves their own request", "self_approval")
    if _result(status.stages[index]) != "NotReviewed":
        raise _conflict("already_decided", f"stage {stage_id} is already decided")
    if current_stage(status) != index:
        raise _conflict("not_pending", f"stage {stage_id} is not open for decisions (the request is {status.state.value})")
    if caller.principal_id not in await stage_deciders(api, status, index):
        raise forbidden(f"{caller.principal_id} is not an approver of stage {stage_id}", "not_an_approver")
    await require_current_run(api, ref)
    decision = ReviewDecision.approve if body.reviewResult == "Approve" else ReviewDecision.deny
    await flows.review(api.pim, api.store, ref.workflow_id, caller.principal_id, decision, body.justification, verified=True)
    return Response(status_code=204)


def _conflict(code: str, message: str) -> GraphError:
    return GraphError(409, "Conflict", message, [ErrorDetail(code=code, message=message)])
