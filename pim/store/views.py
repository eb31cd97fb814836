"""What the front ends show of the store: the rows that `pim ... --json` prints and
the HTTP API's native endpoints answer (docs/cli.md, "JSON output"). One builder
each, so that the command line, local or through the API, prints the same.

Rows are TypedDicts: plain JSON for the command line, typed for /openapi.json, and
a key that is absent stays absent (`via` of an eligibility, say)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, final

from typing_extensions import NotRequired, TypedDict  # pydantic reads TypedDicts from here before Python 3.12

from pim.domain.models import AccessType

if TYPE_CHECKING:
    from pim.directories.sync import DirectoryDiff
    from pim.domain.policy import Policy
    from pim.store import Store
    from pim.store.tables import AssignmentRow, AuditRow, GroupRow


class GroupView(TypedDict):
    id: str
    kind: str
    role_assignable: bool
    pim_enabled: bool


class SourceView(TypedDict):
    """Where an access comes from: `assignment` (its id), `activation` (its request id),
    or for eligibility `eligible` (its assignment id, `via` the group it comes through)."""

    kind: str
    id: str
    ends_at: str | None
    via: NotRequired[str]


class MemberView(TypedDict):
    principal_id: str
    since: str
    sources: list[SourceView]


class EligibleView(TypedDict):
    principal_id: str
    sources: list[SourceView]


@final  # `"eligible" in view` tells the two apart
class MembersView(TypedDict):
    group_id: str
    access: str
    members: list[MemberView]


@final
class EligibleMembersView(TypedDict):
    group_id: str
    access: str
    eligible: list[EligibleView]


class AssignmentView(TypedDict):
    id: str
    group_id: str
    access: str
    principal_id: str
    kind: str
    state: str  # scheduled | active | expired | removed
    starts_at: str
    ends_at: str | None  # None: permanent
    created_by: str
    justification: str | None


class AuditView(TypedDict):
    at: str
    action: str
    actor: str | None
    request_id: str | None
    group_id: str | None
    access: str | None
    principal_id: str | None
    details: dict[str, Any]


class PolicyView(TypedDict):
    group_id: str
    access: str
    version: int
    policy: dict[str, Any]


class DirectoryDiffView(TypedDict):
    group_id: str
    access: str
    missing: list[str]
    unexpected: list[str]
    ok: list[str]
    in_sync: bool


def _instant(at: datetime | None) -> str | None:
    return at.isoformat() if at else None


def group_view(group: GroupRow) -> GroupView:
    return GroupView(id=group.id, kind=group.kind, role_assignable=group.role_assignable, pim_enabled=group.pim_enabled)


async def member_rows(store: Store, group: str, access: AccessType, at: datetime) -> list[MemberView]:
    """Who holds `access` of `group` now, each with the live sources of it."""
    grants = await store.live_grants(group, access, at)
    rows = []
    for m in await store.memberships(group, access):
        sources = [
            SourceView(kind=g.source_kind, id=g.source_id.split("#")[0], ends_at=_instant(g.ends_at))
            for g in grants
            if g.principal_id == m.principal_id
        ]
        rows.append(MemberView(principal_id=m.principal_id, since=m.since.isoformat(), sources=sources))
    return rows


async def eligible_rows(store: Store, group: str, access: AccessType, at: datetime) -> list[EligibleView]:
    """Eligible principals; a group's active members appear each for themselves, through the group."""
    by_user: dict[str, list[SourceView]] = {}
    for a in await store.assignments(group):
        if a.kind != "eligible" or a.access != access.value or a.state(at) != "active":
            continue
        source = SourceView(kind="eligible", id=a.id, ends_at=_instant(a.ends_at))
        principal = await store.principal(a.principal_id)
        if principal is not None and principal.kind == "group":
            for user in await store.active_members(a.principal_id, at):
                by_user.setdefault(user, []).append(SourceView(**source, via=a.principal_id))
        else:
            by_user.setdefault(a.principal_id, []).append(source)
    return [EligibleView(principal_id=user, sources=sources) for user, sources in sorted(by_user.items())]


async def members_view(
    store: Store, group: str, access: AccessType, at: datetime, *, eligible: bool = False
) -> MembersView | EligibleMembersView:
    """`pim members [--eligible] --json`: who holds access now (or who may activate)."""
    if eligible:
        return EligibleMembersView(group_id=group, access=access.value, eligible=await eligible_rows(store, group, access, at))
    return MembersView(group_id=group, access=access.value, members=await member_rows(store, group, access, at))


def assignment_view(row: AssignmentRow, at: datetime) -> AssignmentView:
    return AssignmentView(
        id=row.id,
        group_id=row.group_id,
        access=row.access,
        principal_id=row.principal_id,
        kind=row.kind,
        state=row.state(at),
        starts_at=row.starts_at.isoformat(),
        ends_at=_instant(row.ends_at),
        created_by=row.created_by,
        justification=row.justification,
    )


def audit_view(row: AuditRow) -> AuditView:
    return AuditView(
        at=row.at.isoformat(),
        action=row.action,
        actor=row.actor,
        request_id=row.request_id,
        group_id=row.group_id,
        access=row.access,
        principal_id=row.principal_id,
        details=row.details,
    )


def policy_view(group: str, access: AccessType, policy: Policy, version: int) -> PolicyView:
    return PolicyView(group_id=group, access=access.value, version=version, policy=policy.model_dump(mode="json"))


def directory_diff_view(diff: DirectoryDiff) -> DirectoryDiffView:
    return DirectoryDiffView(
        group_id=diff.group_id,
        access=diff.access.value,
        missing=diff.missing,
        unexpected=diff.unexpected,
        ok=diff.ok,
        in_sync=diff.in_sync,
    )
