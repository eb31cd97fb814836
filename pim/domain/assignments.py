"""Payloads of the `AssignmentLifecycle` workflow (one per time-bound assignment).

The workflow trusts only the store: it starts from an assignment id (and the
window its starter saw), reads the assignment in an activity, and accepts a
change only when a proven administrator sent it and the store already says so."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, Field

from pim.domain.models import AccessType, PrincipalId, Proven, Text

Kind = Literal["eligible", "active"]


def assignment_workflow_id(assignment_id: str) -> str:
    return f"assignment/{assignment_id}"


class AssignmentStart(BaseModel):
    """Input of `AssignmentLifecycle`: which assignment, and the window its starter
    wrote to the store. Anything else the workflow reads from the store."""

    assignment_id: str = Field(min_length=1, max_length=64)
    starts_at: AwareDatetime
    ends_at: AwareDatetime


class AssignmentPlan(BaseModel):
    """An assignment as the store has it (`load_assignment`)."""

    assignment_id: str
    group_id: str
    access: AccessType
    principal_id: str
    kind: Kind
    starts_at: datetime
    ends_at: datetime
    created_by: str


class AssignmentLookup(BaseModel):
    """Input of `load_assignment`: the workflow asking, and the window it expects
    (None: whatever the store holds now)."""

    workflow_id: str
    assignment_id: str
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    at: datetime
    # The first look of a lifecycle audits a refusal; a later check leaves that to the workflow.
    audit_refusal: bool = True


class AssignmentLoaded(BaseModel):
    """The plan as the store has it (and whether it was removed), or why the workflow
    must not act on this assignment."""

    plan: AssignmentPlan | None = None
    removed: bool = False
    refusal: str | None = None


class AssignmentChange(Proven):
    """Payload of the `extend` and `remove` updates, sent by the administrative
    operation after it checked and wrote the change (pim.operations). `by` is
    proven by `proof` (action `extend_assignment` or `remove_assignment`)."""

    by: PrincipalId
    ends_at: AwareDatetime | None = None
    reason: Text | None = None


class AssignmentEnd(BaseModel):
    """Input of `assignment_took_effect` and `assignment_end`."""

    plan: AssignmentPlan
    at: datetime
    removed_by: str | None = None
    reason: str | None = None


class AssignmentStatus(BaseModel):
    assignment_id: str
    kind: Kind | None = None
    state: Literal["loading", "scheduled", "active", "expired", "removed", "refused"]
    starts_at: datetime
    ends_at: datetime
    reminders_sent: list[datetime] = Field(default_factory=list)
    ended_at: datetime | None = None
    end_reason: str | None = None
