"""What requesters and approvers do to an activation, through `PimClient`, and how
each one learns the outcome: the command line (local mode) and the HTTP API share
these, so that both answer the same.

Signals are one-way: after one, the request's events are read back until the
workflow has accepted or refused it. A refusal raises `Refused` with the
workflow's code (pim/domain/refusals.py, or a proof's)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Awaitable, Callable, TypeVar

from pim.client import PimClient
from pim.domain.models import ReviewDecision, State
from pim.domain.status import ActivationStatus
from pim.operations.context import Refused

if TYPE_CHECKING:
    from temporalio.client import WorkflowUpdateFailedError

    from pim.store import Store

T = TypeVar("T")

SETTLED_OK = frozenset({State.pending_approval, State.scheduled, State.active})
TRANSIENT = frozenset({State.validating, State.activating})
# How long a caller waits for a request to leave validating and activating.
SETTLE_TIMEOUT = 60.0
# How long a signal's sender waits for the workflow to say whether it counted.
ANSWER_TIMEOUT = 10.0


class RequestEnded(Refused):
    def __init__(self) -> None:
        super().__init__("request_ended", "the request has already ended (see `pim status`)")


class NoAnswer(Refused):
    def __init__(self) -> None:
        super().__init__("no_answer", "the request did not answer in time; check `pim status`")


def settled_ok(status: ActivationStatus) -> bool:
    """What `pim request --wait` exits 0 for: waiting for approval, scheduled or
    active, or a dry run that passed."""
    passed_dry_run = status.validate_only and not status.violations and status.state == State.canceled
    return status.state in SETTLED_OK or passed_dry_run


async def wait_settled(pim: PimClient, request_id: str, timeout: float = SETTLE_TIMEOUT) -> ActivationStatus:
    """The request once it has left validating and activating (or as it is at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        status = await pim.status(request_id)
        if status.state not in TRANSIENT or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.1)


async def until_ended(
    pim: PimClient, request_id: str, status: ActivationStatus, timeout: float = ANSWER_TIMEOUT
) -> ActivationStatus:
    """The request once it has ended, or as it is after `timeout` seconds (still
    `revoking` while the directory fails, say)."""
    deadline = time.monotonic() + timeout
    while not status.state.terminal and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        status = await pim.status(request_id)
    return status


async def while_running(pim: PimClient, request_id: str, action: Awaitable[T]) -> T:
    """A signal or an update of a request; RequestEnded when Temporal answers
    NOT_FOUND because the request exists but has ended (its last run is closed)."""
    from temporalio.service import RPCError, RPCStatusCode

    try:
        return await action
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND and await has_ended(pim, request_id):
            raise RequestEnded() from None
        raise


async def has_ended(pim: PimClient, request_id: str) -> bool:
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError

    try:
        description = await pim.temporal.get_workflow_handle(request_id).describe()
    except RPCError:
        return False  # no such request: the NOT_FOUND stands
    return description.status not in (None, WorkflowExecutionStatus.RUNNING)


async def signal_and_confirm(
    pim: PimClient, request_id: str, actor: str, send: Callable[[], Awaitable[None]], ends: bool = False
) -> ActivationStatus:
    """Send a signal and read the request's events back until the workflow has
    accepted it (the status is returned) or refused it (`Refused` with its code).
    With `ends` (cancel, deactivate), an accepted signal is followed until the
    request has ended, for at most ANSWER_TIMEOUT more, so that what is returned
    is the request after the signal (`canceled`, `deactivated`)."""
    before = len((await pim.status(request_id)).events)
    await while_running(pim, request_id, send())
    deadline = time.monotonic() + ANSWER_TIMEOUT
    while time.monotonic() < deadline:
        status = await pim.status(request_id)
        for event in status.events[before:]:
            if event.actor == actor and event.note and " refused: " in event.note:
                raise Refused(event.code or "refused", event.note)
            if event.actor == actor:
                return await until_ended(pim, request_id, status) if ends else status
        await asyncio.sleep(0.1)
    raise NoAnswer()


async def cancel(pim: PimClient, request_id: str, by: str, reason: str | None) -> ActivationStatus:
    return await signal_and_confirm(pim, request_id, by, lambda: pim.cancel(request_id, by, reason), ends=True)


async def deactivate(pim: PimClient, request_id: str, by: str, reason: str | None) -> ActivationStatus:
    return await signal_and_confirm(pim, request_id, by, lambda: pim.deactivate(request_id, by, reason), ends=True)


async def extend(pim: PimClient, request_id: str, by: str, extra: timedelta, justification: str | None) -> ActivationStatus:
    return await signal_and_confirm(pim, request_id, by, lambda: pim.extend(request_id, by, extra, justification))


# Failure types of a `review` refused by its handler, which audits them itself.
HANDLER_REFUSALS = frozenset(
    {
        "proof_missing",
        "proof_invalid",
        "proof_expired",
        "proof_mismatch",
        "proof_replayed",
        "proof_unverifiable",
        "proof_rate_limited",
        "review_refused",
    }
)


async def review(
    pim: PimClient,
    store: Store | None,
    request_id: str,
    approver: str,
    decision: ReviewDecision | str,
    justification: str | None,
    *,
    verified: bool = False,
) -> ActivationStatus:
    """The `review` update, then the request once it has settled. A refusal raises
    `Refused` with the workflow's code; one that its validator refused is audited
    here in `store`, since it leaves no trace in the workflow's history (`verified`:
    the sender authenticated the approver, as the HTTP API does)."""
    from temporalio.client import WorkflowUpdateFailedError
    from temporalio.exceptions import ApplicationError

    try:
        reviewed = await while_running(pim, request_id, pim.review(request_id, approver, decision, justification))
    except WorkflowUpdateFailedError as error:
        if store is not None:
            await audit_refused_review(pim, store, request_id, approver, str(decision), error, verified=verified)
        cause = error.cause
        code = cause.type if isinstance(cause, ApplicationError) and cause.type else "malformed"
        raise Refused(code, f"refused: {getattr(cause, 'message', None) or cause}") from None
    return await wait_settled(pim, request_id) if reviewed.state in TRANSIENT else reviewed


async def audit_refused_review(
    pim: PimClient,
    store: Store,
    request_id: str,
    actor: str,
    decision: str,
    error: WorkflowUpdateFailedError,
    verified: bool = False,
) -> None:
    """A `review` its validator refused leaves no trace in the workflow's history
    (nothing is written), so its sender audits it, the actor as claimed. One its
    handler refused (a proof, or a state that moved) the workflow has audited."""
    from temporalio.exceptions import ApplicationError

    cause = error.cause
    if isinstance(cause, ApplicationError) and cause.type in HANDLER_REFUSALS:
        return
    reason = str(getattr(cause, "message", None) or cause)
    status = await pim.status(request_id)
    details = {"attempted": decision, "reason": reason, "claimed_actor": actor, "verified": str(verified).lower()}
    if isinstance(cause, ApplicationError) and cause.type:
        details["code"] = cause.type
    await store.append_audit(
        at=datetime.now(UTC),
        action="refused",
        actor=actor if verified else "unverified",
        request_id=request_id,
        group_id=status.group_id,
        access=status.access.value if status.access else None,
        principal_id=status.principal_id,
        details=details,
    )
