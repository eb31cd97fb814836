"""Schedules and instances of PIM for Groups, as Graph shows them, from the store.

- An eligible assignment is an eligibility schedule (memberType `direct`). When its
  principal is a group, each active member of that group is eligible through it
  too (SPEC 1, nesting): one more schedule per member, memberType `group`, with id
  `{assignment id}_{member}`.
- An active assignment is an assignment schedule (assignmentType `assigned`), and
  a granted activation is one too (assignmentType `activated`, id
  `{groupId}_{accessId}_{request id}`; memberType `group` when the principal is
  eligible only through a group).
- An instance is a schedule in effect now: an eligibility in its window, an access
  with a live grant (the store's record of effective access, one per source).
  Schedules and instances share their ids (none recurs).

Enum values are written as Graph writes them (`direct`, `group`, `assigned`,
`activated`); `$filter` compares them without regard to case (schedules.py)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pim.api.auth import Caller
from pim.api.graph.models import GraphEntity, ScheduleOut, expiration_out
from pim.api.ids import RequestRef, activation_schedule_id, parse_activation_schedule_id
from pim.api.services import ApiServices
from pim.domain.models import AccessType
from pim.store.tables import AssignmentRow, GrantRow

ACCESSES = (AccessType.member, AccessType.owner)
# Graph's privilegedAccessGroupMemberType and privilegedAccessGroupAssignmentType.
MemberType = Literal["direct", "group"]
AssignmentType = Literal["assigned", "activated"]


@dataclass(frozen=True)
class Entry:
    """One schedule, whichever resource shows it."""

    id: str
    group_id: str
    access: str
    principal_id: str
    member_type: MemberType
    assignment_type: AssignmentType | None  # None for eligibility
    starts_at: datetime
    ends_at: datetime | None
    created_at: datetime | None
    modified_at: datetime | None
    created_using: str | None
    status: str  # Provisioned | ScheduleCreated
    in_effect: bool


# --- Graph's shapes ------------------------------------------------------------------------


class ScheduleView(GraphEntity):
    id: str
    principalId: str
    accessId: str
    groupId: str
    memberType: MemberType


class EligibilitySchedule(ScheduleView):
    """privilegedAccessGroupEligibilitySchedule (Graph v1.0)."""

    scheduleInfo: ScheduleOut
    createdDateTime: datetime | None = None
    modifiedDateTime: datetime | None = None
    createdUsing: str | None = None
    status: str


class AssignmentSchedule(EligibilitySchedule):
    """privilegedAccessGroupAssignmentSchedule (Graph v1.0)."""

    assignmentType: AssignmentType


class EligibilityScheduleInstance(ScheduleView):
    """privilegedAccessGroupEligibilityScheduleInstance (Graph v1.0)."""

    startDateTime: datetime | None = None
    endDateTime: datetime | None = None
    eligibilityScheduleId: str


class AssignmentScheduleInstance(ScheduleView):
    """privilegedAccessGroupAssignmentScheduleInstance (Graph v1.0)."""

    startDateTime: datetime | None = None
    endDateTime: datetime | None = None
    assignmentType: AssignmentType
    assignmentScheduleId: str


def _common(entry: Entry) -> dict[str, Any]:
    return dict(
        id=entry.id, principalId=entry.principal_id, accessId=entry.access, groupId=entry.group_id, memberType=entry.member_type
    )


def _schedule(entry: Entry) -> dict[str, Any]:
    return dict(
        **_common(entry),
        scheduleInfo=ScheduleOut(startDateTime=entry.starts_at, expiration=expiration_out(entry.starts_at, entry.ends_at)),
        createdDateTime=entry.created_at,
        modifiedDateTime=entry.modified_at,
        createdUsing=entry.created_using,
        status=entry.status,
    )


def eligibility_schedule(entry: Entry) -> EligibilitySchedule:
    return EligibilitySchedule(**_schedule(entry))


def assignment_schedule(entry: Entry) -> AssignmentSchedule:
    return AssignmentSchedule(**_schedule(entry), assignmentType=entry.assignment_type or "assigned")


def eligibility_instance(entry: Entry) -> EligibilityScheduleInstance:
    return EligibilityScheduleInstance(
        **_common(entry), startDateTime=entry.starts_at, endDateTime=entry.ends_at, eligibilityScheduleId=entry.id
    )


def assignment_instance(entry: Entry) -> AssignmentScheduleInstance:
    return AssignmentScheduleInstance(
        **_common(entry),
        startDateTime=entry.starts_at,
        endDateTime=entry.ends_at,
        assignmentType=entry.assignment_type or "assigned",
        assignmentScheduleId=entry.id,
    )


# --- from the store --------------------------------------------------------------------------


def _status(row: AssignmentRow, at: datetime) -> str:
    return "ScheduleCreated" if row.state(at) == "scheduled" else "Provisioned"


def eligible_entry(row: AssignmentRow, at: datetime, member: str | None = None) -> Entry:
    """The eligibility schedule of an eligible assignment, or (`member`) of one active
    member of the group it names."""
    return Entry(
        id=f"{row.id}_{member}" if member else row.id,
        group_id=row.group_id,
        access=row.access,
        principal_id=member or row.principal_id,
        member_type="group" if member else "direct",
        assignment_type=None,
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_at=row.created_at,
        modified_at=row.updated_at,
        created_using=None,
        status=_status(row, at),
        in_effect=row.state(at) == "active",
    )


def assigned_entry(row: AssignmentRow, at: datetime, granted: bool) -> Entry:
    return Entry(
        id=row.id,
        group_id=row.group_id,
        access=row.access,
        principal_id=row.principal_id,
        member_type="direct",
        assignment_type="assigned",
        starts_at=row.starts_at,
        ends_at=row.ends_at,
        created_at=row.created_at,
        modified_at=row.updated_at,
        created_using=None,
        status=_status(row, at),
        in_effect=granted and row.state(at) == "active",
    )


async def activated_entry(api: ApiServices, grant: GrantRow, at: datetime) -> Entry:
    workflow_id, _, run_id = grant.source_id.partition("#")
    ref = RequestRef(workflow_id, run_id)
    facts = await api.store.eligibility_facts(grant.group_id, AccessType(grant.access), grant.principal_id, at)
    through_group = bool(facts.eligible_via) and "direct" not in facts.eligible_via
    return Entry(
        id=activation_schedule_id(ref),
        group_id=grant.group_id,
        access=grant.access,
        principal_id=grant.principal_id,
        member_type="group" if through_group else "direct",
        assignment_type="activated",
        starts_at=grant.starts_at,
        ends_at=grant.ends_at,
        created_at=grant.starts_at,
        modified_at=None,
        created_using=ref.id,
        status="Provisioned",
        in_effect=True,
    )


async def _is_group(api: ApiServices, principal_id: str) -> bool:
    principal = await api.store.principal(principal_id)
    return principal is not None and principal.kind == "group"


async def live_grants_of(api: ApiServices, group_id: str | None, principal_id: str | None, at: datetime) -> list[GrantRow]:
    """Live sources of access in scope: a group's, or a principal's (found through
    its active assignments and its running activations, the only sources there are)."""
    if group_id is not None:
        grants = [g for access in ACCESSES for g in await api.store.live_grants(group_id, access, at)]
        return [g for g in grants if principal_id in (None, g.principal_id)]
    assert principal_id is not None
    targets = {
        (row.group_id, row.access) for row in await api.store.assignments(principal_id=principal_id) if row.kind == "active"
    }
    targets |= {(claim.group_id, claim.access) for claim in await api.store.claims(principal_id=principal_id)}
    grants = []
    for group, access in sorted(targets):
        grants += await api.store.live_grants(group, AccessType(access), at, principal_id)
    return grants


def _eligible(row: AssignmentRow, at: datetime) -> bool:
    return row.kind == "eligible" and row.state(at) in ("active", "scheduled")


async def eligibility_entries(api: ApiServices, group_id: str | None, principal_id: str | None, at: datetime) -> list[Entry]:
    """Eligibility schedules in scope (a group, a principal, or both), current or to come."""
    if group_id is None:
        assert principal_id is not None
        return await _eligibility_of_principal(api, principal_id, at)
    entries = []
    for row in await api.store.assignments(group_id):
        if not _eligible(row, at):
            continue
        if principal_id in (None, row.principal_id):
            entries.append(eligible_entry(row, at))
        if await _is_group(api, row.principal_id):  # its active members, each for themselves
            members = await api.store.active_members(row.principal_id, at)
            entries += [eligible_entry(row, at, m) for m in members if principal_id in (None, m)]
    return entries


async def _eligibility_of_principal(api: ApiServices, principal_id: str, at: datetime) -> list[Entry]:
    """The principal's own eligibility, and that of each group it is an active member of."""
    entries = [eligible_entry(row, at) for row in await api.store.assignments(principal_id=principal_id) if _eligible(row, at)]
    member_of = sorted({g.group_id for g in await live_grants_of(api, None, principal_id, at) if g.access == "member"})
    for group in member_of:
        entries += [
            eligible_entry(row, at, principal_id) for row in await api.store.assignments(principal_id=group) if _eligible(row, at)
        ]
    return entries


async def assignment_entries(api: ApiServices, group_id: str | None, principal_id: str | None, at: datetime) -> list[Entry]:
    """Assignment schedules in scope: active assignments and granted activations."""
    grants = await live_grants_of(api, group_id, principal_id, at)
    granted = {g.source_id for g in grants if g.source_kind == "assignment"}
    rows = await api.store.assignments(group_id, principal_id)
    # An active assignment whose grant is gone has ended, whatever its recorded end says.
    entries = [
        assigned_entry(row, at, row.id in granted)
        for row in rows
        if row.kind == "active" and (row.state(at) == "scheduled" or (row.state(at) == "active" and row.id in granted))
    ]
    entries += [await activated_entry(api, g, at) for g in grants if g.source_kind == "activation"]
    return entries


# --- who may see what ----------------------------------------------------------------------


async def may_list(api: ApiServices, caller: Caller, group_id: str | None, principal_id: str | None, at: datetime) -> bool:
    """Administrators see everything, anyone their own, a group's managers (its owners
    too) that group's."""
    if caller.is_admin or (principal_id is not None and principal_id == caller.principal_id):
        return True
    return group_id is not None and caller.principal_id in await api.store.group_administrators(group_id, at)


async def may_see(api: ApiServices, caller: Caller, entry: Entry, at: datetime) -> bool:
    return await may_list(api, caller, entry.group_id, entry.principal_id, at)


# --- one by id -------------------------------------------------------------------------------


async def eligibility_by_id(api: ApiServices, schedule_id: str, at: datetime) -> Entry | None:
    """`{assignment id}`, or `{assignment id}_{member}` for a member of an eligible group."""
    assignment_id, _, member = schedule_id.partition("_")
    row = await api.store.assignment(assignment_id)
    if row is None or row.kind != "eligible" or row.state(at) not in ("active", "scheduled"):
        return None
    if not member:
        return eligible_entry(row, at)
    if await _is_group(api, row.principal_id) and member in await api.store.active_members(row.principal_id, at):
        return eligible_entry(row, at, member)
    return None


async def assignment_by_id(api: ApiServices, schedule_id: str, at: datetime) -> Entry | None:
    """An active assignment's id, or a granted activation's `{groupId}_{accessId}_{request id}`."""
    ref = parse_activation_schedule_id(schedule_id)
    if ref is not None:
        _, group_id, access, principal_id = ref.workflow_id.split("/")
        grants = await api.store.live_grants(group_id, AccessType(access), at, principal_id)
        source = f"{ref.workflow_id}#{ref.run_id}"
        grant = next((g for g in grants if g.source_kind == "activation" and g.source_id == source), None)
        return await activated_entry(api, grant, at) if grant is not None else None
    row = await api.store.assignment(schedule_id)
    if row is None or row.kind != "active" or row.state(at) not in ("active", "scheduled"):
        return None
    grants = await api.store.live_grants(row.group_id, AccessType(row.access), at, row.principal_id)
    granted = any(g.source_kind == "assignment" and g.source_id == row.id for g in grants)
    if row.state(at) == "active" and not granted:
        return None
    return assigned_entry(row, at, granted)
