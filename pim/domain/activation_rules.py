"""The policy engine: pure functions over pydantic models.

Each rule reads like a row of the table in SPEC section 2 and returns
violations with stable codes. Nothing here does I/O or reads the clock; the
caller passes `at`. Activities call these functions with what they loaded from
the store; the workflow calls the decision rules with its policy snapshot.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from pydantic import BaseModel, Field

from pim.domain.durations import format_duration
from pim.domain.models import ActivationRequest, ReviewDecision, Violation, is_blank
from pim.domain.policy import ActivationSettings, Policy
from pim.domain.refusals import (
    ALREADY_DECIDED,
    DURATION_EXCEEDED,
    EXTENSION_LIMIT,
    JUSTIFICATION_REQUIRED,
    NOT_AN_APPROVER,
    NOT_AUTHORIZED,
    NOT_PENDING,
    SELF_APPROVAL,
    TOO_EARLY,
    Refusal,
)
from pim.domain.status import StageStatus

EARLY_DEACTIVATION_WINDOW = timedelta(minutes=5)

PLACEHOLDERS = frozenset(
    {
        "na",
        "n/a",
        "none",
        "null",
        "test",
        "testing",
        "asdf",
        "qwerty",
        "xxx",
        "todo",
        "tbd",
        "justification",
        "because",
        "need",
        "needed",
        "need access",
        "access",
        "please",
        "work",
        "for work",
        "required",
        "-",
        ".",
        "...",
        "?",
        "foo",
        "bar",
        "x",
    }
)


class EligibilityFacts(BaseModel):
    """What the store knows about the requester and the group, as of `at`."""

    group_exists: bool = True
    group_enabled: bool = True
    principal_kind: Literal["user", "group"] | None = "user"
    # Where eligibility comes from: "direct" or "group:<id>" (active member of an
    # eligible group). Empty when not eligible.
    eligible_via: list[str] = Field(default_factory=list)
    # The latest end among the eligibility sources; None when one is permanent.
    eligible_until: datetime | None = None
    # Another activation already holds this (group, access, principal).
    running_request_id: str | None = None
    mfa_enrolled: bool = False


def violation(code: str, message: str) -> Violation:
    return Violation(code=code, message=message)


def requested_duration(request: ActivationRequest, settings: ActivationSettings) -> timedelta:
    """A request without a duration gets the policy maximum."""
    return request.duration if request.duration is not None else settings.max_duration


def check_target(facts: EligibilityFacts, request: ActivationRequest) -> list[Violation]:
    if not facts.group_exists:
        return [violation("group_not_found", f"group_id: no group {request.group_id!r}")]
    if not facts.group_enabled:
        return [violation("group_not_enabled", f"group_id: {request.group_id!r} is not enabled in PIM")]
    if facts.principal_kind is None:
        return [violation("principal_not_found", f"principal_id: no principal {request.principal_id!r}")]
    if facts.principal_kind != "user":
        return [
            violation(
                "principal_not_user",
                "principal_id: only users activate; a group's members activate for themselves",
            )
        ]
    return []


def check_eligibility(facts: EligibilityFacts, request: ActivationRequest) -> list[Violation]:
    if not facts.eligible_via:
        return [
            violation(
                "not_eligible",
                f"principal_id: {request.principal_id!r} is not eligible for {request.access.value} of {request.group_id!r}",
            )
        ]
    return []


def check_not_running(facts: EligibilityFacts, request_id: str) -> list[Violation]:
    if facts.running_request_id and facts.running_request_id != request_id:
        return [
            violation(
                "already_active",
                "an activation for the same group and access is already running: " + facts.running_request_id.split("#")[0],
            )
        ]
    return []


def check_duration(duration: timedelta, settings: ActivationSettings) -> list[Violation]:
    if duration < settings.min_duration:
        return [violation("duration_too_short", f"duration: at least {format_duration(settings.min_duration)}")]
    if duration > settings.max_duration:
        return [
            violation(
                "duration_exceeds_max",
                f"duration: {format_duration(duration)} exceeds the maximum of {format_duration(settings.max_duration)}",
            )
        ]
    return []


START_AT_SLACK = timedelta(minutes=1)  # a client's clock a little behind the worker's


def check_schedule(request: ActivationRequest, duration: timedelta, facts: EligibilityFacts, at: datetime) -> list[Violation]:
    if request.start_at is not None and request.start_at < at - START_AT_SLACK:
        return [violation("start_in_past", f"start_at: {request.start_at.isoformat()} has passed; leave it out to start now")]
    starts = max(request.start_at or at, at)
    if facts.eligible_until is not None and starts + duration > facts.eligible_until:
        return [
            violation(
                "eligibility_ends_first",
                f"duration: the eligibility ends at {facts.eligible_until.isoformat()}, before the activation would",
            )
        ]
    return []


def check_justification(text: str | None, settings: ActivationSettings, field: str = "justification") -> list[Violation]:
    if not settings.require_justification:
        return []
    if is_blank(text):
        return [violation("justification_required", f"{field}: a justification is required")]
    assert text is not None
    normalized = re.sub(r"\s+", " ", text.strip().lower())
    if normalized in PLACEHOLDERS or len(set(normalized.replace(" ", ""))) <= 1:
        return [violation("justification_placeholder", f"{field}: say why the access is needed")]
    if len(normalized) < settings.justification_min_length:
        return [
            violation(
                "justification_too_short",
                f"{field}: at least {settings.justification_min_length} characters",
            )
        ]
    return []


def check_ticket(request: ActivationRequest, settings: ActivationSettings) -> list[Violation]:
    if request.ticket is None:
        if settings.require_ticket:
            return [violation("ticket_required", "ticket: a ticket system and number are required")]
        return []
    if settings.ticket_pattern and not re.fullmatch(settings.ticket_pattern, request.ticket.number):
        return [violation("ticket_invalid", f"ticket.number: does not match {settings.ticket_pattern}")]
    return []


def check_mfa_presence(request: ActivationRequest, settings: ActivationSettings, facts: EligibilityFacts) -> list[Violation]:
    if not settings.require_mfa:
        return []
    if request.mfa is None:
        return [violation("mfa_required", "mfa: this policy requires MFA evidence")]
    # A sign-in a front end vouches for is an identity provider's sign-in, like a token.
    method = "oidc" if request.mfa.method == "signin" else request.mfa.method
    if method not in settings.mfa_methods:
        return [violation("mfa_method_not_allowed", f"mfa.method: this policy accepts {', '.join(settings.mfa_methods)}")]
    # Enrolment is a TOTP secret in the store; an OIDC token proves itself (pim/oidc.py).
    if request.mfa.method == "totp" and not facts.mfa_enrolled:
        return [violation("mfa_not_enrolled", "mfa: the principal has no MFA method enrolled")]
    return []


def check_approvers(stage_deciders: list[list[str]], policy: Policy) -> list[Violation]:
    out = []
    for index, (stage, deciders) in enumerate(zip(policy.activation.approval, stage_deciders)):
        if len(deciders) < stage.required:
            out.append(
                violation(
                    "approval_unsatisfiable",
                    f"approval[{index}]: needs {stage.required} approvals but only "
                    f"{len(deciders)} approver(s) other than the requester exist",
                )
            )
    return out


def evaluate_request(
    request: ActivationRequest,
    request_id: str,
    policy: Policy,
    facts: EligibilityFacts,
    stage_deciders: list[list[str]],
    at: datetime,
) -> list[Violation]:
    """Every violation of the request against policy, in a stable order.

    MFA evidence is only checked for presence here; the code itself is verified
    by an activity because it consumes the code.
    """
    target = check_target(facts, request)
    if target:
        return target
    settings = policy.activation
    duration = requested_duration(request, settings)
    return [
        *check_eligibility(facts, request),
        *check_not_running(facts, request_id),
        *check_duration(duration, settings),
        *check_schedule(request, duration, facts, at),
        *check_justification(request.justification, settings),
        *check_ticket(request, settings),
        *check_mfa_presence(request, settings, facts),
        *check_approvers(stage_deciders, policy),
    ]


# --- decisions on a running activation -------------------------------------


def refuse_review(
    *,
    approver_id: str,
    decision: ReviewDecision,
    justification: str | None,
    requester_id: str,
    stage: StageStatus | None,
    deciders: list[str],
    justification_required: bool,
    decided_earlier: Sequence[str] = (),
) -> Refusal | None:
    """Why an approval or denial cannot be accepted, or None when it can.
    `decided_earlier` are approvers of earlier stages: the same approver counts once."""
    if stage is None:
        return Refusal(NOT_PENDING, "the request is not pending approval")
    if approver_id == requester_id:
        return Refusal(SELF_APPROVAL, "nobody approves their own request")
    if approver_id not in deciders:
        return Refusal(NOT_AN_APPROVER, f"{approver_id} is not an approver of the current stage")
    if any(d.approver_id == approver_id for d in stage.decisions) or approver_id in decided_earlier:
        return Refusal(ALREADY_DECIDED, f"{approver_id} has already decided on this request")
    if justification_required and is_blank(justification):
        return Refusal(JUSTIFICATION_REQUIRED, "justification: an approver's justification is required")
    return None


def refuse_deactivation(
    *, by: str, requester_id: str, administrators: list[str], granted_at: datetime, at: datetime
) -> Refusal | None:
    is_admin = by in administrators
    if by != requester_id and not is_admin:
        return Refusal(NOT_AUTHORIZED, f"{by} may not deactivate this activation")
    if not is_admin and at - granted_at < EARLY_DEACTIVATION_WINDOW:
        return Refusal(TOO_EARLY, "an activation cannot be deactivated in its first 5 minutes, except by an administrator")
    return None


def refuse_cancel(*, by: str, requester_id: str, administrators: list[str]) -> Refusal | None:
    if by != requester_id and by not in administrators:
        return Refusal(NOT_AUTHORIZED, f"{by} may not cancel this request")
    return None


def refuse_extension(
    *,
    by: str,
    extra: timedelta,
    justification: str | None,
    requester_id: str,
    approvers: list[str],
    administrators: list[str],
    settings: ActivationSettings,
    granted_at: datetime,
    expires_at: datetime,
    extensions: int = 0,
) -> Refusal | None:
    """The total never passes the policy maximum unless an approver (other than
    the requester) extends, and never passes `max_total_duration` or
    `max_extensions`, whoever extends."""
    # Administrators may extend anyone's activation within the maximum; only an
    # approver (never the requester) may go beyond it.
    privileged = by != requester_id and by in approvers
    if by != requester_id and not privileged and by not in administrators:
        return Refusal(NOT_AUTHORIZED, f"{by} may not extend this activation")
    if settings.require_justification and is_blank(justification):
        return Refusal(JUSTIFICATION_REQUIRED, "justification: a justification is required to extend")
    if extensions >= settings.max_extensions:
        return Refusal(EXTENSION_LIMIT, f"this activation was extended {extensions} times, the most the policy allows")
    total = expires_at + extra - granted_at
    if total > settings.total_limit:
        return Refusal(
            DURATION_EXCEEDED,
            f"duration: the activation would last {format_duration(total)}, more than the policy's total limit "
            f"of {format_duration(settings.total_limit)}, whoever extends it",
        )
    if total > settings.max_duration and not privileged:
        return Refusal(
            DURATION_EXCEEDED,
            f"duration: the activation would last {format_duration(total)}, more than the maximum of "
            f"{format_duration(settings.max_duration)}; an approver may extend beyond it",
        )
    return None
