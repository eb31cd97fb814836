"""What a running activation reports (`status` query, workflow result) and what it
learns from the store when it starts (`Admission`)."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from pim.domain.durations import Duration
from pim.domain.models import AccessType, ActivationRequest, ReviewDecision, State, Ticket, Violation
from pim.domain.policy import NotificationRule, Policy


class StageDecision(BaseModel):
    approver_id: str
    decision: ReviewDecision
    justification: str | None = None
    at: datetime


class StageStatus(BaseModel):
    approvers: list[str]
    required: int
    decisions: list[StageDecision] = Field(default_factory=list)

    @property
    def approvals(self) -> int:
        return sum(1 for d in self.decisions if d.decision == ReviewDecision.approve)

    @property
    def satisfied(self) -> bool:
        return self.approvals >= self.required


class StatusEvent(BaseModel):
    at: datetime
    state: State
    actor: str | None = None
    note: str | None = None
    # A refusal's code (pim/domain/refusals.py, or a proof's: proof_invalid, ...).
    code: str | None = None


class ActivationStatus(BaseModel):
    request_id: str
    state: State
    group_id: str | None = None
    access: AccessType | None = None
    principal_id: str | None = None
    justification: str | None = None
    ticket: Ticket | None = None
    requested_duration: Duration | None = None
    requested_at: datetime
    approval_deadline: datetime | None = None
    stages: list[StageStatus] = Field(default_factory=list)
    starts_at: datetime | None = None
    granted_at: datetime | None = None
    expires_at: datetime | None = None
    ended_at: datetime | None = None
    end_reason: str | None = None
    violations: list[Violation] = Field(default_factory=list)
    events: list[StatusEvent] = Field(default_factory=list)
    # Additions to the SPEC fields: which policy version the request runs under,
    # and whether it was only a dry run.
    policy_version: int | None = None
    validate_only: bool = False
    # How many times the activation was extended, and how many signals and
    # updates were refused (events and audit lines stop growing past a bound).
    extensions: int = 0
    refusals: int = 0


class Admission(BaseModel):
    """The verdict of the `admit_request` activity, and the policy snapshot the
    workflow keeps for its whole life (a later policy change never affects it)."""

    violations: list[Violation] = Field(default_factory=list)
    policy: Policy | None = None
    policy_version: int | None = None
    duration: Duration | None = None
    # Per stage, the users who may decide (approver groups expanded, requester removed).
    stage_deciders: list[list[str]] = Field(default_factory=list)
    # Users who may deactivate within the first 5 minutes and cancel anyone's request.
    administrators: list[str] = Field(default_factory=list)
    # The grant only writes to the store (the built-in directory): the workflow runs
    # it as a local activity, in the workflow task that decides it. Decided by the
    # worker that admits, kept in the history, so that a replay takes the same path.
    grant_locally: bool = False
    # Set when the admission granted too, in the transaction that took the claim: a
    # request that needs no approval and starts now, with the built-in directory.
    # `granted_at` is the admission's `at`, `written_at` when the grant was written.
    granted_at: datetime | None = None
    written_at: datetime | None = None

    @property
    def admitted(self) -> bool:
        return not self.violations


class AccessChange(BaseModel):
    """Input of the activities that change an activation's access: `grant_access`,
    `extend_access`, `still_eligible` and `close_activation`."""

    request_id: str
    run_key: str
    group_id: str
    access: AccessType
    principal_id: str
    at: datetime
    expires_at: datetime | None = None
    granted: bool = False
    final_state: State | None = None
    reason: str | None = None
    actor: str | None = None  # who extends (extend_access); the principal otherwise
    # The policy snapshot taken at admission (None when admission itself failed:
    # nobody is told of the end). It says who hears of the grant and the end, and
    # the grant compares it with the policy in force.
    policy: Policy | None = None
    policy_version: int | None = None
    administrators: list[str] = Field(default_factory=list)
    # What the grant re-checks against the store: the request as admitted and its
    # approvals (docs/security.md).
    request: ActivationRequest | None = None
    stages: list[StageStatus] = Field(default_factory=list)

    @property
    def notifications(self) -> NotificationRule | None:
        return self.policy.notifications if self.policy else None


class AuditRecord(BaseModel):
    """Input of `record_event`: one line of the append-only audit log, and the
    notification it may cause."""

    at: datetime
    action: str
    actor: str | None = None
    request_id: str | None = None
    group_id: str | None = None
    access: AccessType | None = None
    principal_id: str | None = None
    details: dict[str, str] = Field(default_factory=dict)
    # Approvers to ask now (the next stage, once one is approved).
    ask: list[str] = Field(default_factory=list)
    # The same record sent twice (an activity retry) is written once.
    dedupe_key: str | None = None


def journal_key(run_key: str, number: int, action: str) -> str:
    """The dedupe key of an audit line an activation writes (workflows/journal.py):
    `{run key}:{number of its status events}:{action}`, its run key being
    `{workflow id}#{run id}`. `run_key_of` reads the run back."""
    return f"{run_key}:{number}:{action}"


def run_key_of(dedupe_key: str | None) -> str | None:
    """The activation run (`{workflow id}#{run id}`) of an audit line that an
    activation wrote (`journal_key`); None for any other line."""
    head, _, _action = (dedupe_key or "").rpartition(":")
    run_key, _, number = head.rpartition(":")
    if not number.isdigit() or not run_key.startswith("activation/") or "#" not in run_key:
        return None
    return run_key


class AdmitInput(BaseModel):
    """Input of `admit_request`: the request as received plus the workflow's clock.
    `run_key` (workflow id and run id) keys the claim and the MFA code, so a
    reused workflow id is a new request."""

    request_id: str
    run_key: str
    request: ActivationRequest
    at: datetime
