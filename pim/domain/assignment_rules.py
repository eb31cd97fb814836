"""Rules for eligible and active assignments: pure functions, like pim.domain.activation_rules."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Literal, Protocol

from pydantic import BaseModel

from pim.domain.activation_rules import violation
from pim.domain.assignments import AssignmentLookup, assignment_workflow_id
from pim.domain.durations import format_duration
from pim.domain.models import Violation, is_blank
from pim.domain.policy import AssignmentSettings

MIN_ASSIGNMENT = timedelta(minutes=5)
REMOVAL_GRACE = timedelta(minutes=5)
RENEWAL_WINDOW = timedelta(days=30)

Kind = Literal["eligible", "active"]


class AssignmentTarget(BaseModel):
    """What the store knows about the group and principal of a new assignment."""

    group_id: str
    principal_id: str
    group_exists: bool = True
    group_enabled: bool = True
    role_assignable: bool = False
    principal_kind: Literal["user", "group"] | None = "user"
    overlapping_assignment: str | None = None  # id of a live assignment of the same kind


def check_target(kind: Kind, target: AssignmentTarget) -> list[Violation]:
    if not target.group_exists:
        return [violation("group_not_found", f"group: no group {target.group_id!r}")]
    if not target.group_enabled:
        return [violation("group_not_enabled", f"group: {target.group_id!r} is not enabled in PIM")]
    if target.principal_kind is None:
        return [violation("principal_not_found", f"principal: no principal {target.principal_id!r}")]
    if target.principal_kind == "group" and target.principal_id == target.group_id:
        return [violation("group_self_member", "principal: a group cannot be a member of itself")]
    if target.principal_kind == "group" and kind == "active" and target.role_assignable:
        return [
            violation(
                "role_assignable_group_nesting",
                f"principal: {target.group_id} is role-assignable and can never have a group as an active "
                "member (a group may be eligible instead)",
            )
        ]
    if target.overlapping_assignment:
        return [
            violation(
                "assignment_exists",
                f"principal: already has a {kind} assignment {target.overlapping_assignment}; extend it instead",
            )
        ]
    return []


def check_window(
    starts_at: datetime, ends_at: datetime | None, settings: AssignmentSettings, kind: Kind, at: datetime
) -> list[Violation]:
    if ends_at is None:
        if not settings.allow_permanent:
            return [violation("permanent_not_allowed", f"--permanent: the policy does not allow permanent {kind} assignments")]
        return []
    if ends_at <= at:
        return [violation("ends_in_past", "end: must be in the future")]
    length = ends_at - starts_at
    if length < MIN_ASSIGNMENT:
        return [violation("duration_too_short", f"duration: an assignment lasts at least {format_duration(MIN_ASSIGNMENT)}")]
    if length > settings.max_duration:
        return [
            violation(
                "duration_exceeds_max",
                f"duration: {format_duration(length)} exceeds the maximum of {format_duration(settings.max_duration)} for {kind} assignments",
            )
        ]
    return []


def check_conditions(settings: AssignmentSettings, justification: str | None, mfa_verified: bool) -> list[Violation]:
    out = []
    if settings.require_justification and is_blank(justification):
        out.append(violation("justification_required", "justification: this policy requires one for the assignment"))
    if settings.require_mfa and not mfa_verified:
        out.append(violation("mfa_required", "mfa: this policy requires the administrator's MFA code"))
    return out


def check_new_assignment(
    kind: Kind,
    target: AssignmentTarget,
    settings: AssignmentSettings,
    *,
    starts_at: datetime,
    ends_at: datetime | None,
    justification: str | None,
    mfa_verified: bool,
    at: datetime,
) -> list[Violation]:
    refused = check_target(kind, target)
    if refused:
        return refused
    return [*check_window(starts_at, ends_at, settings, kind, at), *check_conditions(settings, justification, mfa_verified)]


def check_removal(created_at: datetime, at: datetime) -> list[Violation]:
    if at - created_at < REMOVAL_GRACE:
        return [violation("removal_too_early", "an assignment cannot be removed in its first 5 minutes")]
    return []


def check_extension(
    state: str,
    starts_at: datetime,
    ends_at: datetime | None,
    new_end: datetime,
    settings: AssignmentSettings,
    kind: Kind,
    at: datetime,
) -> list[Violation]:
    if state not in ("active", "scheduled"):
        return [violation("not_extendable", f"the assignment is {state}; renew an expired one instead")]
    if ends_at is None:
        return [violation("not_extendable", "a permanent assignment has no end to extend")]
    if new_end <= ends_at:
        return [violation("ends_before_current", f"end: must be after the current end {ends_at.isoformat()}")]
    return check_window(starts_at, new_end, settings, kind, at)


def check_renewal(
    state: str, ends_at: datetime | None, new_end: datetime, settings: AssignmentSettings, kind: Kind, at: datetime
) -> list[Violation]:
    if state != "expired" or ends_at is None:
        return [violation("not_renewable", f"only an expired assignment can be renewed; this one is {state}")]
    if at - ends_at > RENEWAL_WINDOW:
        return [violation("renewal_window_passed", "an assignment can be renewed up to 30 days after it expired")]
    return check_window(at, new_end, settings, kind, at)


class StoredAssignment(Protocol):
    """What the rules read of an assignment row."""

    id: str
    starts_at: datetime
    ends_at: datetime | None
    removed_at: datetime | None


def lifecycle_refusal(row: StoredAssignment | None, lookup: AssignmentLookup) -> str | None:
    """Why an `AssignmentLifecycle` must not act on this assignment, or None. A
    workflow started by hand for a missing assignment or under another id ends
    without touching anything; a change (`starts_at`, `ends_at` given) the store
    does not hold is refused. The first load gives no window: the lifecycle takes
    the store's, since an extension may be written before it first loads."""
    if row is None:
        return f"no assignment {lookup.assignment_id!r} in the store"
    if lookup.workflow_id != assignment_workflow_id(row.id):
        return f"workflow id: must be {assignment_workflow_id(row.id)}, not {lookup.workflow_id}"
    if row.ends_at is None:
        return "a permanent assignment has no lifecycle"
    expected = (lookup.starts_at, lookup.ends_at)
    if expected != (None, None) and expected != (row.starts_at, row.ends_at):
        return f"window: the store holds {row.starts_at.isoformat()} to {row.ends_at.isoformat()}"
    return None
