"""Eligible and active assignments and their lifecycle (who, when, why)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import cast

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.orm import Session

from pim.domain.assignment_rules import AssignmentTarget
from pim.domain.models import AccessType
from pim.store.admin import StoreError
from pim.store.sessions import Sessions
from pim.store.tables import AssignmentRow, GrantRow, GroupRow, PrincipalRow

SOURCE_KIND = "assignment"


def _now() -> datetime:
    return datetime.now(UTC)


class AssignmentOperations(Sessions):
    async def assign(
        self,
        group_id: str,
        principal_id: str,
        *,
        access: AccessType = AccessType.member,
        kind: str = "eligible",
        starts_at: datetime | None = None,
        ends_at: datetime | None = None,
        justification: str | None = None,
        by: str,
        apply_membership: bool = True,
        created_at: datetime | None = None,
    ) -> str:
        """Record an assignment. An active one is also a source of access (a grant
        row with the same window); with `apply_membership` the built-in directory
        gets the member at once, otherwise the assignment's workflow adds it at its start."""
        starts_at = starts_at or _now()
        assignment_id = f"asg-{uuid.uuid4().hex[:12]}"
        access_value = AccessType(access).value

        def work(session: Session) -> None:
            for key, row_type in (("group", GroupRow), ("principal", PrincipalRow)):
                ident = group_id if key == "group" else principal_id
                if session.get(row_type, ident) is None:
                    raise StoreError(f"{key}_not_found", f"{key}: no {key} {ident!r}")
            session.add(
                AssignmentRow(
                    id=assignment_id,
                    group_id=group_id,
                    access=access_value,
                    principal_id=principal_id,
                    kind=kind,
                    starts_at=starts_at,
                    ends_at=ends_at,
                    justification=justification,
                    created_at=created_at or _now(),
                    created_by=by,
                )
            )
            if kind == "active":
                session.add(
                    GrantRow(
                        group_id=group_id,
                        access=access_value,
                        principal_id=principal_id,
                        source_kind=SOURCE_KIND,
                        source_id=assignment_id,
                        starts_at=starts_at,
                        ends_at=ends_at,
                    )
                )

        await self.transact(work)
        if kind == "active" and apply_membership:
            await self.set_membership(group_id, AccessType(access), principal_id, present=True)  # type: ignore[attr-defined]
        return assignment_id

    async def assignment(self, assignment_id: str) -> AssignmentRow | None:
        async with self.sessions() as session:
            return await session.get(AssignmentRow, assignment_id)

    async def assignments(
        self, group_id: str | None = None, principal_id: str | None = None, include_removed: bool = False
    ) -> list[AssignmentRow]:
        query = select(AssignmentRow)
        if not include_removed:
            query = query.where(AssignmentRow.removed_at.is_(None))
        if group_id:
            query = query.where(AssignmentRow.group_id == group_id)
        if principal_id:
            query = query.where(AssignmentRow.principal_id == principal_id)
        async with self.sessions() as session:
            return list(await session.scalars(query.order_by(AssignmentRow.created_at)))

    async def assignment_target(
        self, group_id: str, access: AccessType, principal_id: str, kind: str, at: datetime
    ) -> AssignmentTarget:
        async with self.sessions() as session:
            group = await session.get(GroupRow, group_id)
            principal = await session.get(PrincipalRow, principal_id)
            overlapping = await session.scalar(
                select(AssignmentRow.id).where(
                    AssignmentRow.group_id == group_id,
                    AssignmentRow.access == AccessType(access).value,
                    AssignmentRow.principal_id == principal_id,
                    AssignmentRow.kind == kind,
                    AssignmentRow.removed_at.is_(None),
                    or_(AssignmentRow.ends_at.is_(None), AssignmentRow.ends_at > at),
                )
            )
        return AssignmentTarget(
            group_id=group_id,
            principal_id=principal_id,
            group_exists=group is not None,
            group_enabled=bool(group and group.pim_enabled),
            role_assignable=bool(group and group.role_assignable),
            principal_kind=principal.kind if principal else None,
            overlapping_assignment=overlapping,
        )

    async def end_assignment(
        self, assignment_id: str, *, at: datetime, removed_by: str | None = None, reason: str | None = None
    ) -> None:
        """The assignment stops being a source of access; a removal also records who and why.
        Idempotent. The directory is the caller's business (pim/directories/sources.py)."""
        await self.transact(lambda session: end_assignment_in(session, assignment_id, at, removed_by, reason))

    async def change_assignment_window(
        self, assignment_id: str, *, starts_at: datetime, ends_at: datetime, by: str, at: datetime
    ) -> None:
        """Extend or renew: a new end (and, for a renewal, a new start). Idempotent."""

        def work(session: Session) -> None:
            row = session.get(AssignmentRow, assignment_id)
            if row is None:
                raise StoreError("assignment_not_found", f"assignment: no assignment {assignment_id!r}")
            row.starts_at, row.ends_at, row.updated_at, row.updated_by = starts_at, ends_at, at, by
            if row.kind == "active":
                changed = cast(  # an UPDATE's result is a CursorResult (Session.execute is typed for selects)
                    CursorResult,
                    session.execute(
                        update(GrantRow)
                        .where(GrantRow.source_kind == SOURCE_KIND, GrantRow.source_id == assignment_id)
                        .values(starts_at=starts_at, ends_at=ends_at)
                    ),
                )
                if changed.rowcount == 0:  # renewed after it ended: a source again
                    session.add(
                        GrantRow(
                            group_id=row.group_id,
                            access=row.access,
                            principal_id=row.principal_id,
                            source_kind=SOURCE_KIND,
                            source_id=assignment_id,
                            starts_at=starts_at,
                            ends_at=ends_at,
                        )
                    )

        await self.transact(work)

    async def is_owner(self, group_id: str, principal_id: str, at: datetime) -> bool:
        grants = await self.live_grants(group_id, AccessType.owner, at, principal_id)  # type: ignore[attr-defined]
        return bool(grants)


def end_assignment_in(
    session: Session, assignment_id: str, at: datetime, removed_by: str | None = None, reason: str | None = None
) -> None:
    """`end_assignment` inside the caller's write transaction."""
    row = session.get(AssignmentRow, assignment_id)
    if row is None:
        raise StoreError("assignment_not_found", f"assignment: no assignment {assignment_id!r}")
    if removed_by is not None and row.removed_at is None:
        row.removed_at, row.removed_by, row.removal_reason = at, removed_by, reason
    session.execute(delete(GrantRow).where(GrantRow.source_kind == SOURCE_KIND, GrantRow.source_id == assignment_id))
