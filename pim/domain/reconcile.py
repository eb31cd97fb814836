"""What the `Reconcile` workflow finds and does."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from pim.domain.models import AccessType


class Finding(BaseModel):
    group_id: str
    access: AccessType
    principal_id: str
    source: str | None = None  # "activation <request id>", "assignment <id>", or None: no source at all
    reason: str


class ReconcileInput(BaseModel):
    at: datetime
    # Who started this run: the schedule, or a worker that found the schedule paused or missing.
    trigger: str = "schedule"


class ReconcileReport(BaseModel):
    at: datetime
    revoked: list[Finding] = Field(default_factory=list)  # access whose source had ended; taken away
    released: list[Finding] = Field(default_factory=list)  # claims of requests whose workflow is gone
    unsourced: list[Finding] = Field(default_factory=list)  # access no source gives: removed in PIM-enabled groups
    # ... unless the group's policy says `unsourced_access: report`, or the group is not in PIM.
    reported: list[Finding] = Field(default_factory=list)
