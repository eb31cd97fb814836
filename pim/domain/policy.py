"""Policy settings of SPEC section 2, one `Policy` per (group, access type)."""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints, field_validator, model_validator

from pim.domain.durations import Duration
from pim.domain.models import AccessType

MIN_ACTIVATION = timedelta(minutes=5)
MAX_ACTIVATION_LOWER = timedelta(minutes=30)
MAX_ACTIVATION_UPPER = timedelta(hours=24)
MAX_TOTAL_UPPER = timedelta(days=7)
MfaMethod = Literal["totp", "oidc"]


def _both_mfa_methods() -> list[MfaMethod]:
    return ["totp", "oidc"]


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# An approver named "role:Global Administrator" stands for everyone who holds the role
# when the request is made (pim/domain/authorization.py has the roles).
ROLE_PREFIX = "role:"


class ApprovalStage(Settings):
    approvers: list[Annotated[str, StringConstraints(min_length=1)]] = Field(min_length=1)
    required: StrictInt = Field(default=1, ge=1, le=50)


class ActivationSettings(Settings):
    max_duration: Duration = timedelta(hours=8)
    min_duration: Duration = MIN_ACTIVATION
    require_mfa: StrictBool = False
    # Which MFA evidence a request may carry when MFA is required (pim/identity).
    mfa_methods: list[MfaMethod] = Field(default_factory=_both_mfa_methods, min_length=1)
    # OIDC only: the `acr` the token must carry (e.g. an Entra authentication context);
    # None: the token's `amr` must contain "mfa" instead.
    mfa_auth_context: Annotated[str, StringConstraints(min_length=1, max_length=256)] | None = None
    # OIDC only: how long ago the user may have signed in (the token's `auth_time`).
    mfa_max_auth_age: Duration = timedelta(minutes=10)
    require_justification: StrictBool = True
    justification_min_length: StrictInt = Field(default=10, ge=0, le=500)
    require_ticket: StrictBool = False
    ticket_pattern: str | None = None
    approval: list[ApprovalStage] = Field(default_factory=list)
    approval_timeout: Duration = timedelta(hours=24)
    approver_justification_required: StrictBool = True
    # No activation is ever longer than this, whoever extends it (None: twice
    # max_duration); and it is extended at most max_extensions times.
    max_total_duration: Duration | None = None
    max_extensions: StrictInt = Field(default=5, ge=0, le=50)

    @property
    def total_limit(self) -> timedelta:
        return self.max_total_duration or min(2 * self.max_duration, MAX_TOTAL_UPPER)

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
        if not timedelta(minutes=1) <= self.mfa_max_auth_age <= timedelta(hours=1):
            raise ValueError("activation.mfa_max_auth_age must be between PT1M and PT1H")
        total = self.max_total_duration
        if total is not None and not self.max_duration <= total <= MAX_TOTAL_UPPER:
            raise ValueError("activation.max_total_duration must be between activation.max_duration and P7D")
        return self


class AssignmentSettings(Settings):
    allow_permanent: StrictBool = False
    max_duration: Duration = Field(gt=timedelta(minutes=5), le=timedelta(days=3660))
    require_justification: StrictBool = False
    require_mfa: StrictBool = False


def _eligible_defaults() -> AssignmentSettings:
    return AssignmentSettings(max_duration=timedelta(days=365))


def _active_defaults() -> AssignmentSettings:
    return AssignmentSettings(max_duration=timedelta(days=180), require_justification=True)


NotificationEvent = Literal[
    "activation_requested",
    "request_approved",
    "request_denied",
    "activation_active",
    "activation_ended",
    "assignment_eligible",
    "assignment_active",
    "assignment_expiring_soon",
    "assignment_ended",
    "mfa_locked",
]
NOTIFICATION_EVENTS: tuple[NotificationEvent, ...] = get_args(NotificationEvent)
Audience = Literal["admins", "requestor", "approvers"]
ChannelName = Literal["log", "email", "webhook"]


def _everyone() -> list[Audience]:
    return ["admins", "requestor", "approvers"]


def _log_only() -> list[ChannelName]:
    return ["log"]


def _every_event() -> list[NotificationEvent]:
    return list(NOTIFICATION_EVENTS)


class NotificationRule(Settings):
    """Who is told (pim/notifications/audience.py has the table), of which events, through which channels."""

    recipients: list[Audience] = Field(default_factory=_everyone)
    channels: list[ChannelName] = Field(default_factory=_log_only)
    events: list[NotificationEvent] = Field(default_factory=_every_event)


class Policy(Settings):
    activation: ActivationSettings = Field(default_factory=ActivationSettings)
    eligible_assignment: AssignmentSettings = Field(default_factory=_eligible_defaults)
    active_assignment: AssignmentSettings = Field(default_factory=_active_defaults)
    notifications: NotificationRule = Field(default_factory=NotificationRule)
    # What the backstop does with membership (or ownership) that no assignment or
    # activation gives: take it away (the default), or only report it.
    unsourced_access: Literal["revoke", "report"] = "revoke"


def default_policy(access: AccessType, role_assignable: bool) -> Policy:
    """A newly onboarded group's policy. Owning a role-assignable group is as strong
    as the roles it can hold: activating ownership takes MFA and the approval of a
    Global or Privileged Role Administrator."""
    if access != AccessType.owner or not role_assignable:
        return Policy()
    approvers = [f"{ROLE_PREFIX}Global Administrator", f"{ROLE_PREFIX}Privileged Role Administrator"]
    return Policy(activation=ActivationSettings(require_mfa=True, approval=[ApprovalStage(approvers=approvers)]))
