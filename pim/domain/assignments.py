"""Payloads of the `AssignmentLifecycle` workflow (one per time-bound assignment)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from pim.domain.models import AccessType


def assignment_workflow_id(assignment_id: str) -> str:
    return f"assignment/{assignment_id}"


class AssignmentPlan(BaseModel):
    assignment_id: str
    group_id: str
    access: AccessType
    principal_id: str
    kind: Literal["eligible", "active"]
    starts_at: datetime
    ends_at: datetime
    created_by: str


class AssignmentChange(BaseModel):
    """Payload of the `extend` and `remove` updates; the operation that sends it has
    already checked who may do it (pim.operations)."""

    by: str
    ends_at: datetime | None = None
    reason: str | None = None


class AssignmentWindow(BaseModel):
    """Input of `assignment_window_changed`."""

    assignment_id: str
    starts_at: datetime
    ends_at: datetime
    by: str
    at: datetime


class AssignmentEnd(BaseModel):
    """Input of `assignment_took_effect` and `assignment_end`."""

    plan: AssignmentPlan
    at: datetime
    removed_by: str | None = None
    reason: str | None = None


class AssignmentStatus(BaseModel):
    assignment_id: str
    kind: Literal["eligible", "active"]
    state: Literal["scheduled", "active", "expired", "removed"]
    starts_at: datetime
    ends_at: datetime
    reminders_sent: list[datetime] = Field(default_factory=list)
    ended_at: datetime | None = None
    end_reason: str | None = None
