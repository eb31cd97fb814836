"""Access follows eligibility: when an assignment ends, the activations that may
have relied on it are asked to check again.

An eligible assignment of (group, access) for a user, or for a group whose active
members activate for themselves, may be what a running activation of that
(group, access) stands on; an active membership of a group may be what makes its
member eligible elsewhere (nesting). Each candidate is sent `eligibility_changed`:
the workflow then asks the store, and ends itself (`deactivated`, reason
`eligibility_removed`) when nothing makes it eligible any more. Asking too many
is harmless; the answer always comes from the store."""

from __future__ import annotations

from datetime import datetime

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from pim.domain.assignments import AssignmentPlan
from pim.runtime.logging import get_logger
from pim.store import Store

log = get_logger("pim.eligibility")
SIGNAL = "eligibility_changed"


async def end_dependent_activations(store: Store, client: Client | None, plan: AssignmentPlan, at: datetime) -> list[str]:
    """Ask every activation that may have depended on this assignment to check its
    eligibility again; returns the request ids asked."""
    if plan.kind == "eligible":
        claims = await store.claims(group_id=plan.group_id, access=plan.access)
        principal = await store.principal(plan.principal_id)
        if principal is not None and principal.kind == "user":
            claims = [c for c in claims if c.principal_id == plan.principal_id]
    else:  # an active membership: its holder may have been eligible through this group
        claims = await store.claims(principal_id=plan.principal_id)
    request_ids = sorted({c.request_id.split("#")[0] for c in claims})
    if client is None:
        if request_ids:
            log.warning("activations not told that an eligibility ended (no Temporal client)", requests=request_ids)
        return []
    for request_id in request_ids:
        try:
            await client.get_workflow_handle(request_id).signal(SIGNAL)
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND:  # already ended: nothing to do
                raise
    if request_ids:
        log.info("activations asked to check their eligibility", assignment_id=plan.assignment_id, requests=request_ids)
    return request_ids
