"""`PimClient`: the typed client that services, approvers and the CLI use.

It speaks the wire contract (docs/wire-contract.md) and nothing else, so anything
it does can also be done with the `temporal` CLI. It proves each payload's actor
when it holds a signing key, and it seals MFA codes before they
enter Temporal when it has a seal key (pim/mfa.py). An OIDC token
(`MfaEvidence(method="oidc", token=...)`) travels as given: the worker must
verify its signature, so only the payload codec (PIM_PAYLOAD_KEYS) keeps it out
of the history in clear."""

from __future__ import annotations

import asyncio
import builtins
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, TypeVar

from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.service import RPCError

from pim.domain.actors import Action
from pim.domain.models import (
    PASSING_STATES,
    ActivationRequest,
    Cancel,
    Deactivate,
    Decision,
    Extend,
    Proven,
    Review,
    ReviewDecision,
    State,
    listed_as,
)
from pim.domain.status import ActivationStatus
from pim.runtime.settings import PimSettings
from pim.runtime.temporal import connect_with
from workflows.search_attributes import PIM_ACCESS, PIM_GROUP_ID, PIM_PRINCIPAL_ID, PIM_STATE

# Signing and sealing are imported when used: `pim status` only queries.
if TYPE_CHECKING:
    from pim.identity.proofs import SigningKey

WORKFLOW_TYPE = "GroupActivation"
P = TypeVar("P", bound=Proven)


class RequestSummary(BaseModel):
    request_id: str
    state: str | None
    group_id: str | None
    access: str | None
    principal_id: str | None
    running: bool
    run_id: str | None = None
    started_at: datetime | None = None


class PimClient:
    """`signer`: the front end's key that proves each payload's actor (pim/identity/proofs.py).
    Without one, payloads go unproven and the workers refuse them; the HTTP API
    (docs/security.md) is where production callers get their actions signed."""

    def __init__(
        self,
        client: Client,
        task_queue: str = "pim",
        mfa_seal_key: bytes | None = None,
        signer: SigningKey | None = None,
    ) -> None:
        self.temporal = client
        self.task_queue = task_queue
        self.mfa_seal_key = mfa_seal_key
        self.signer = signer

    @classmethod
    async def connect(cls, settings: PimSettings) -> "PimClient":
        from pim.identity import totp as mfa
        from pim.identity.proofs import configured_signing_key

        key = mfa.seal_key(settings)
        return cls(await connect_with(settings), settings.task_queue, key, configured_signing_key(settings))

    def _handle(self, request_id: str) -> WorkflowHandle:
        return self.temporal.get_workflow_handle(request_id, result_type=ActivationStatus)

    def prove(self, payload: P, actor: str, action: Action, target: str) -> P:
        """The payload with its proof, when this client holds a signing key."""
        if self.signer is None:
            return payload
        from pim.identity.proofs import prove

        return prove(self.signer, payload, actor, action.value, target)

    def prepared_request(self, request: ActivationRequest) -> ActivationRequest:
        """The request as it is sent: its MFA code sealed for this request (its
        group, access, principal and workflow id), then proven."""
        from pim.identity import totp as mfa

        request = mfa.seal_request(request, self.mfa_seal_key)
        return self.prove(request, request.principal_id, Action.request, request.workflow_id)

    async def start(self, request: ActivationRequest) -> str:
        """Start an activation; returns its request id (the workflow id). A second
        start while one runs for the same (group, access, principal) fails."""
        return (await self.start_run(request))[0]

    async def start_run(self, request: ActivationRequest) -> tuple[str, str]:
        """Start an activation; returns its workflow id and run id (what the HTTP API
        names a Graph request by: the workflow id is reused by later activations)."""
        request = self.prepared_request(request)
        handle = await self.temporal.start_workflow(
            WORKFLOW_TYPE,
            request,
            id=request.workflow_id,
            task_queue=self.task_queue,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
            id_conflict_policy=WorkflowIDConflictPolicy.FAIL,
            search_attributes=TypedSearchAttributes(
                [
                    SearchAttributePair(PIM_STATE, State.validating.value),
                    SearchAttributePair(PIM_GROUP_ID, request.group_id),
                    SearchAttributePair(PIM_ACCESS, request.access.value),
                    SearchAttributePair(PIM_PRINCIPAL_ID, request.principal_id),
                ]
            ),
        )
        assert handle.result_run_id is not None  # set by start_workflow
        return handle.id, handle.result_run_id

    async def approve(self, request_id: str, approver_id: str, justification: str | None = None) -> None:
        decision = self.prove(
            Decision(approver_id=approver_id, justification=justification), approver_id, Action.approve, request_id
        )
        await self._handle(request_id).signal("approve", decision)

    async def deny(self, request_id: str, approver_id: str, justification: str | None = None) -> None:
        decision = self.prove(
            Decision(approver_id=approver_id, justification=justification), approver_id, Action.deny, request_id
        )
        await self._handle(request_id).signal("deny", decision)

    async def review(
        self, request_id: str, approver_id: str, decision: ReviewDecision | str, justification: str | None = None
    ) -> ActivationStatus:
        """Approve or deny and learn at once whether it was accepted (raises
        `WorkflowUpdateFailedError` with the reason when refused)."""
        review = Review(approver_id=approver_id, decision=ReviewDecision(decision), justification=justification)
        return await self._handle(request_id).execute_update(
            "review", self.prove(review, approver_id, Action.review, request_id), result_type=ActivationStatus
        )

    async def cancel(self, request_id: str, by: str, reason: str | None = None) -> None:
        payload = self.prove(Cancel(by=by, reason=reason), by, Action.cancel, request_id)
        await self._handle(request_id).signal("cancel", payload)

    async def deactivate(self, request_id: str, by: str, reason: str | None = None) -> None:
        payload = self.prove(Deactivate(by=by, reason=reason), by, Action.deactivate, request_id)
        await self._handle(request_id).signal("deactivate", payload)

    async def extend(self, request_id: str, by: str, duration: timedelta, justification: str | None = None) -> None:
        payload = self.prove(Extend(by=by, duration=duration, justification=justification), by, Action.extend, request_id)
        await self._handle(request_id).signal("extend", payload)

    async def status(self, request_id: str) -> ActivationStatus:
        return await self._handle(request_id).query("status", result_type=ActivationStatus)

    async def status_of_run(self, request_id: str, run_id: str) -> ActivationStatus:
        """The status of one run: its result once it has completed (no replay needed),
        else its `status` query."""
        handle = self.temporal.get_workflow_handle(request_id, run_id=run_id, result_type=ActivationStatus)
        description = await handle.describe()
        if description.status == WorkflowExecutionStatus.COMPLETED:
            return await handle.result(follow_runs=False)
        return await handle.query("status", result_type=ActivationStatus)

    async def result(self, request_id: str) -> ActivationStatus:
        return await self._handle(request_id).result()

    async def list(
        self, state: str | None = None, group_id: str | None = None, principal_id: str | None = None, limit: int = 200
    ) -> list[RequestSummary]:
        """This deployment's requests (those on its task queue: a namespace may hold
        another's) by search attributes, newest first. A state that only a running
        request can be in lists running ones only: a workflow terminated while
        pending keeps `PimState = 'pending_approval'`, and is not pending. A request
        passing through `activating` or `revoking` is listed under the state it came
        from (PASSING_STATES): listing by one of those reads the status of each
        running request that may be in it."""
        wanted = State(state) if state is not None and state in State.__members__ else None
        if wanted in PASSING_STATES:
            return await self._list_passing(wanted, group_id, principal_id, limit)
        clauses = [f"WorkflowType = '{WORKFLOW_TYPE}'"]
        if state is not None and wanted is not None and not wanted.terminal:
            clauses.append("ExecutionStatus = 'Running'")
        if state:
            clauses.append(f"PimState = '{_quote(state)}'")
        return await self._listed(clauses, group_id, principal_id, limit)

    async def _list_passing(
        self, state: State, group_id: str | None, principal_id: str | None, limit: int
    ) -> builtins.list[RequestSummary]:
        listed = ", ".join(f"'{shown.value}'" for shown in sorted(listed_as(state)))
        clauses = [f"WorkflowType = '{WORKFLOW_TYPE}'", "ExecutionStatus = 'Running'", f"PimState IN ({listed})"]
        candidates = await self._listed(clauses, group_id, principal_id, limit)
        reading = asyncio.Semaphore(8)

        async def now_in(summary: RequestSummary) -> bool:
            async with reading:
                try:
                    return (await self.status(summary.request_id)).state == state
                except RPCError:  # ended meanwhile
                    return False

        found = await asyncio.gather(*(now_in(summary) for summary in candidates))
        return [summary.model_copy(update={"state": state.value}) for summary, yes in zip(candidates, found) if yes]

    async def _listed(
        self, clauses: builtins.list[str], group_id: str | None, principal_id: str | None, limit: int
    ) -> builtins.list[RequestSummary]:
        for key, value in (("TaskQueue", self.task_queue), ("PimGroupId", group_id), ("PimPrincipalId", principal_id)):
            if value:
                clauses.append(f"{key} = '{_quote(value)}'")
        out = []
        async for execution in self.temporal.list_workflows(" AND ".join(clauses), limit=limit):
            attrs = execution.typed_search_attributes
            out.append(
                RequestSummary(
                    request_id=execution.id,
                    state=attrs.get(PIM_STATE),
                    group_id=attrs.get(PIM_GROUP_ID),
                    access=attrs.get(PIM_ACCESS),
                    principal_id=attrs.get(PIM_PRINCIPAL_ID),
                    running=execution.status == WorkflowExecutionStatus.RUNNING,
                    run_id=execution.run_id,
                    started_at=execution.start_time,
                )
            )
        return out


def _quote(value: str) -> str:
    if "'" in value or "\\" in value:
        raise ValueError(f"invalid filter value: {value!r}")
    return value


__all__ = ["PimClient", "RequestSummary", "RPCError"]
