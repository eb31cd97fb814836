"""The grant's own check: what must still hold, against the store, at the moment
access is written. Admission checked the request when it arrived; between then
and the grant an approval may have aged, a policy may have tightened, an
eligibility may have ended, or the workflow may be a reset or re-run of one that
already ended. Pure functions, like the other rules."""

from __future__ import annotations

from datetime import datetime, timedelta

from pim.domain.activation_rules import EligibilityFacts, check_justification, check_target, check_ticket, violation
from pim.domain.durations import format_duration
from pim.domain.models import ActivationRequest, ReviewDecision, Violation
from pim.domain.policy import Policy
from pim.domain.status import StageStatus

ELIGIBILITY_REMOVED = "eligibility_removed"
NOT_ADMITTED_RUN = "not_admitted_run"
WORKFLOW_ID_MISMATCH = "workflow_id_mismatch"
APPROVAL_STALE = "approval_stale"
POLICY_STRICTER = "policy_stricter"
GRANT_REFUSED = "grant_refused"
# The codes a grant is refused with (as opposed to failing to write the directory).
REFUSALS = frozenset(
    {
        ELIGIBILITY_REMOVED,
        NOT_ADMITTED_RUN,
        WORKFLOW_ID_MISMATCH,
        APPROVAL_STALE,
        POLICY_STRICTER,
        GRANT_REFUSED,
        "group_not_found",
        "group_not_enabled",
        "principal_not_found",
        "principal_not_user",
    }
)


def check_workflow_id(workflow_id: str, request: ActivationRequest) -> list[Violation]:
    """A request runs only under its canonical id, so that lookups by that id find it."""
    if workflow_id != request.workflow_id:
        return [violation(WORKFLOW_ID_MISMATCH, f"workflow id: must be {request.workflow_id}, not {workflow_id}")]
    return []


def check_admitted_run(claim_holder: str | None, run_key: str) -> list[Violation]:
    """Only the run that admission let in may grant: a reset, re-run or continue-as-new
    of a request holds no claim of its own, so it never grants again."""
    if claim_holder != run_key:
        return [violation(NOT_ADMITTED_RUN, "this run was not the one admitted (a reset or re-run): it never grants")]
    return []


def check_still_eligible(
    facts: EligibilityFacts, request: ActivationRequest, duration: timedelta, at: datetime
) -> list[Violation]:
    if not facts.eligible_via:
        return [
            violation(
                ELIGIBILITY_REMOVED,
                f"{request.principal_id} is no longer eligible for {request.access.value} of {request.group_id}",
            )
        ]
    if facts.eligible_until is not None and at + duration > facts.eligible_until:
        return [
            violation(
                ELIGIBILITY_REMOVED, f"the eligibility ends at {facts.eligible_until.isoformat()}, before the activation would"
            )
        ]
    return []


def check_approvals_fresh(stages: list[StageStatus], snapshot: Policy, current: Policy, at: datetime) -> list[Violation]:
    """Every approval younger than the approval timeout (the shorter of the two policies)."""
    timeout = min(snapshot.activation.approval_timeout, current.activation.approval_timeout)
    stale = [d for s in stages for d in s.decisions if d.decision == ReviewDecision.approve and at - d.at > timeout]
    if stale:
        return [violation(APPROVAL_STALE, f"approval by {stale[0].approver_id} is older than {format_duration(timeout)}")]
    return []


def check_policy_not_stricter(
    request: ActivationRequest,
    duration: timedelta,
    stages: list[StageStatus],
    snapshot: Policy,
    current: Policy,
    current_deciders: list[list[str]],
) -> list[Violation]:
    """When the policy changed since admission, the request must still pass it: a
    tightened maximum, a new MFA, justification or ticket requirement, or approval
    stages that the approvals in hand do not satisfy refuse the grant."""
    if current == snapshot:
        return []
    settings = current.activation
    found: list[Violation] = []
    if duration > settings.max_duration:
        found.append(violation(POLICY_STRICTER, f"duration: the maximum is now {format_duration(settings.max_duration)}"))
    if settings.require_mfa and not snapshot.activation.require_mfa:  # the evidence was never verified
        found.append(violation(POLICY_STRICTER, "mfa: the policy now requires MFA, which this request did not pass"))
    for v in [*check_justification(request.justification, settings), *check_ticket(request, settings)]:
        found.append(violation(POLICY_STRICTER, f"the policy now requires it: {v.message}"))
    approvers = [d.approver_id for s in stages for d in s.decisions if d.decision == ReviewDecision.approve]
    counted: set[str] = set()
    for index, (stage, deciders) in enumerate(zip(settings.approval, current_deciders)):
        fitting = [a for a in approvers if a in deciders and a not in counted][: stage.required]
        counted.update(fitting)
        if len(fitting) < stage.required:
            found.append(
                violation(
                    POLICY_STRICTER,
                    f"approval[{index}]: the policy now needs {stage.required} approval(s) from {', '.join(stage.approvers)}",
                )
            )
    return found


def check_grant(
    *,
    workflow_id: str,
    run_key: str,
    claim_holder: str | None,
    request: ActivationRequest,
    duration: timedelta,
    stages: list[StageStatus],
    snapshot: Policy,
    current: Policy | None,
    current_deciders: list[list[str]],
    facts: EligibilityFacts,
    at: datetime,
) -> list[Violation]:
    """Every reason the grant must not happen now, most fundamental first."""
    refused = check_workflow_id(workflow_id, request) or check_admitted_run(claim_holder, run_key) or check_target(facts, request)
    if refused:
        return refused
    if current is None:
        return [violation("group_not_enabled", f"group_id: {request.group_id!r} is no longer enabled in PIM")]
    return [
        *check_still_eligible(facts, request, duration, at),
        *check_approvals_fresh(stages, snapshot, current, at),
        *check_policy_not_stricter(request, duration, stages, snapshot, current, current_deciders),
    ]
