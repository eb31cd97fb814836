"""Policy settings of SPEC section 2, one `Policy` per (group, access type)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

MIN_ACTIVATION = timedelta(minutes=5)
MAX_ACTIVATION_LOWER = timedelta(minutes=30)
MAX_ACTIVATION_UPPER = timedelta(hours=24)


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ApprovalStage(Settings):
    approvers: list[Annotated[str, StringConstraints(min_length=1)]] = Field(min_length=1)
    required: int = Field(default=1, ge=1)


class ActivationSettings(Settings):
    max_duration: timedelta = timedelta(hours=8)
    min_duration: timedelta = MIN_ACTIVATION
    require_mfa: bool = False
    require_justification: bool = True
    justification_min_length: int = Field(default=10, ge=0, le=500)
    require_ticket: bool = False
    ticket_pattern: str | None = None
    approval: list[ApprovalStage] = Field(default_factory=list)
    approval_timeout: timedelta = timedelta(hours=24)
    approver_justification_required: bool = True

    @field_validator("ticket_pattern")
    @classmethod
    def _pattern_compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as error:
                raise ValueError(f"not a regular expression: {error}") from None
        return value

    @model_validator(mode="after")
    def _durations_in_range(self) -> "ActivationSettings":
        if not MAX_ACTIVATION_LOWER <= self.max_duration <= MAX_ACTIVATION_UPPER:
            raise ValueError("activation.max_duration must be between PT30M and PT24H")
        if not MIN_ACTIVATION <= self.min_duration <= self.max_duration:
            raise ValueError("activation.min_duration must be between PT5M and activation.max_duration")
        if not timedelta(minutes=5) <= self.approval_timeout <= timedelta(days=30):
            raise ValueError("activation.approval_timeout must be between PT5M and P30D")
        return self


class AssignmentSettings(Settings):
    allow_permanent: bool = False
    max_duration: timedelta = Field(gt=timedelta(minutes=5), le=timedelta(days=3660))
    require_justification: bool = False
    require_mfa: bool = False


def _eligible_defaults() -> AssignmentSettings:
    return AssignmentSettings(max_duration=timedelta(days=365))


def _active_defaults() -> AssignmentSettings:
    return AssignmentSettings(max_duration=timedelta(days=180), require_justification=True)


class NotificationRule(Settings):
    recipients: list[str] = Field(default_factory=lambda: ["admins", "requestor", "approvers"])
    channels: list[str] = Field(default_factory=lambda: ["log"])


class Policy(Settings):
    activation: ActivationSettings = Field(default_factory=ActivationSettings)
    eligible_assignment: AssignmentSettings = Field(default_factory=_eligible_defaults)
    active_assignment: AssignmentSettings = Field(default_factory=_active_defaults)
    notifications: NotificationRule = Field(default_factory=NotificationRule)
