"""What a `GroupActivation` writes down as it goes: status events (the `status`
query), search attributes, and audit records sent without waiting. The workflow
owns one `Journal`; keeping the bookkeeping here lets the workflow module read
as the lifecycle."""

from __future__ import annotations

import asyncio
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeKey

with workflow.unsafe.imports_passed_through():
    from activities.interfaces import AuditInterface
    from pim.domain.models import PASSING_STATES, ActivationRequest, State, valid_actor
    from pim.domain.status import ActivationStatus, AuditRecord, StatusEvent, journal_key

from workflows.options import RECORD
from workflows.search_attributes import PIM_ACCESS, PIM_GROUP_ID, PIM_PRINCIPAL_ID, PIM_STATE

MAX_EVENTS = 500  # a flood of refused signals must not grow the status without bound
AUDITED_REFUSALS = 20  # audited one by one; past these, one audit line per hundred
REFUSALS_PER_SUMMARY = 100
DROPPED = "further events dropped"


class Journal:
    def __init__(self, status: ActivationStatus, run_key: str, request: ActivationRequest | None) -> None:
        self.status = status
        self.run_key = run_key
        self.request = request
        self.records: list[workflow.ActivityHandle[None]] = []  # audit activities under way

    def event(self, state: State, actor: str | None, note: str | None, code: str | None = None) -> None:
        events = self.status.events
        if len(events) < MAX_EVENTS:
            events.append(StatusEvent(at=workflow.now(), state=state, actor=actor, note=note, code=code))
        elif events[-1].note != DROPPED:
            events.append(StatusEvent(at=workflow.now(), state=state, note=DROPPED))

    def set_state(self, state: State, note: str | None = None, actor: str | None = None) -> None:
        self.status.state = state
        self.event(state, actor, note)
        if state not in PASSING_STATES:
            self._list_as(state)
        workflow.logger.info("activation state", extra={"state": state.value, "request_id": self.status.request_id})

    def _list_as(self, state: State) -> None:
        """The search attributes, for a state a request rests in: only what differs
        from the ones the workflow has (those it was started with, then its own
        updates), since each update is a history event and a write to Temporal's
        visibility store. A request started by PimClient already shows `validating`
        and its group, access and principal. One passing through `activating` or
        `revoking` stays listed under the state it came from (PASSING_STATES)."""
        wanted: list[tuple[SearchAttributeKey[str], str]] = [(PIM_STATE, state.value)]
        if self.request is not None:
            wanted += [
                (PIM_GROUP_ID, self.request.group_id),
                (PIM_ACCESS, self.request.access.value),
                (PIM_PRINCIPAL_ID, self.request.principal_id),
            ]
        current = workflow.info().typed_search_attributes
        changed = [key.value_set(value) for key, value in wanted if current.get(key) != value]
        if changed:
            workflow.upsert_search_attributes(changed)

    def refuse(self, attempted: str, actor: Any, reason: str, code: str | None = None, verified: bool = False) -> None:
        """A signal or update that does not count. Unless its proof was verified, the
        actor is only claimed, and the audit says so. A flood stays bounded: the
        first refusals are audited one by one, then one line per hundred."""
        claimed = valid_actor(actor)
        self.status.refusals += 1
        count = self.status.refusals
        workflow.logger.warning("signal refused", extra={"signal": attempted, "actor": claimed, "reason": reason})
        self.event(self.status.state, claimed, f"{attempted} refused: {reason}", code=code)
        if self.request is None or (count > AUDITED_REFUSALS and count % REFUSALS_PER_SUMMARY):
            return
        details = {
            "attempted": attempted,
            "reason": reason[:500],
            "claimed_actor": claimed or "",
            "verified": str(verified).lower(),
        }
        if code:
            details["code"] = code
        if count > AUDITED_REFUSALS:
            details["refusals_so_far"] = str(count)
        self._append("refused", claimed if verified else "unverified", [], details)

    def record(self, action: str, actor: str | None = None, ask: list[str] | None = None, **details: str) -> None:
        """Audit (and, for decisions, notify) without waiting: a slow mail server never delays access."""
        self._append(action, actor, ask or [], details)

    def _append(self, action: str, actor: str | None, ask: list[str], details: dict[str, str]) -> None:
        assert self.request is not None
        record = AuditRecord(
            at=workflow.now(),
            action=action,
            actor=actor or self.request.principal_id,
            request_id=self.status.request_id,
            group_id=self.request.group_id,
            access=self.request.access,
            principal_id=self.request.principal_id,
            details=details,
            ask=ask,
            dedupe_key=journal_key(self.run_key, len(self.status.events), action),
        )
        self.records.append(workflow.start_activity_method(AuditInterface.record_event, record, **RECORD))

    async def flush(self) -> None:
        """Audit lines land before the workflow ends; their failures never change the outcome."""
        await asyncio.gather(*self.records, return_exceptions=True)
