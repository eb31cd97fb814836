"""Principals, groups, policies and assignments: what administrators set up."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pim.models import AccessType
from pim.policy import Policy
from pim.store.tables import AssignmentRow, DirectoryRoleRow, GrantRow, GroupRow, PolicyRow, PrincipalRow


class StoreError(Exception):
    """A refusal by the store, with a stable code (not a crash)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def now() -> datetime:
    return datetime.now(UTC)


class AdminOperations:
    sessions: async_sessionmaker[AsyncSession]

    async def add_principal(self, principal_id: str, kind: str = "user", display_name: str = "", roles: list[str] = ()) -> None:
        async with self.sessions.begin() as session:
            if await session.get(PrincipalRow, principal_id) is None:
                session.add(PrincipalRow(id=principal_id, kind=kind, display_name=display_name or principal_id, created_at=now()))
                await session.flush()
            for role in roles:
                if await session.get(DirectoryRoleRow, (principal_id, role)) is None:
                    session.add(DirectoryRoleRow(principal_id=principal_id, role=role))

    async def principal(self, principal_id: str) -> PrincipalRow | None:
        async with self.sessions() as session:
            return await session.get(PrincipalRow, principal_id)

    async def roles_of(self, principal_id: str) -> list[str]:
        async with self.sessions() as session:
            rows = await session.scalars(select(DirectoryRoleRow.role).where(DirectoryRoleRow.principal_id == principal_id))
            return sorted(rows)

    async def onboard_group(
        self, group_id: str, kind: str, *, role_assignable: bool = False, enable: bool = True, by: str, display_name: str = ""
    ) -> None:
        """Create the group if unknown; enabling it in PIM creates its two default policies."""
        if enable and kind in ("dynamic", "synced"):
            raise StoreError("group_kind_not_supported", f"--kind: {kind} groups can never be enabled in PIM")
        await self.add_principal(group_id, "group", display_name)
        async with self.sessions.begin() as session:
            group = await session.get(GroupRow, group_id)
            if group is None:
                group = GroupRow(id=group_id, kind=kind, role_assignable=role_assignable, pim_enabled=False)
                session.add(group)
            elif enable and group.kind in ("dynamic", "synced"):
                raise StoreError("group_kind_not_supported",
                                 f"group: {group_id} is a {group.kind} group and can never be enabled in PIM")
            if enable and not group.pim_enabled:
                group.pim_enabled, group.enabled_at, group.enabled_by = True, now(), by
                for access in AccessType:
                    if await session.get(PolicyRow, (group_id, access.value)) is None:
                        session.add(
                            PolicyRow(group_id=group_id, access=access.value, version=1,
                                      settings=Policy().model_dump(mode="json"), updated_at=now(), updated_by=by)
                        )

    async def group(self, group_id: str) -> GroupRow | None:
        async with self.sessions() as session:
            return await session.get(GroupRow, group_id)

    async def groups(self) -> list[GroupRow]:
        async with self.sessions() as session:
            return list(await session.scalars(select(GroupRow).order_by(GroupRow.id)))

    async def policy(self, group_id: str, access: AccessType) -> tuple[Policy, int] | None:
        async with self.sessions() as session:
            row = await session.get(PolicyRow, (group_id, AccessType(access).value))
            return None if row is None else (Policy.model_validate(row.settings), row.version)

    async def set_policy(self, group_id: str, access: AccessType, policy: Policy, *, by: str) -> int:
        """Replace a policy; the version goes up so running requests can say which one they use."""
        async with self.sessions.begin() as session:
            row = await session.get(PolicyRow, (group_id, AccessType(access).value))
            if row is None:
                raise StoreError("group_not_enabled", f"group: {group_id!r} is not enabled in PIM")
            row.settings, row.version, row.updated_at, row.updated_by = policy.model_dump(mode="json"), row.version + 1, now(), by
            return row.version

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
    ) -> str:
        """Record an eligible or active assignment; an active one is also a source of access."""
        starts_at = starts_at or now()
        assignment_id = f"asg-{uuid.uuid4().hex[:12]}"
        async with self.sessions.begin() as session:
            for key, row_type in (("group", GroupRow), ("principal", PrincipalRow)):
                ident = group_id if key == "group" else principal_id
                if await session.get(row_type, ident) is None:
                    raise StoreError(f"{key}_not_found", f"{key}: no {key} {ident!r}")
            session.add(
                AssignmentRow(id=assignment_id, group_id=group_id, access=AccessType(access).value, principal_id=principal_id,
                              kind=kind, starts_at=starts_at, ends_at=ends_at, justification=justification,
                              created_at=now(), created_by=by)
            )
            if kind == "active":
                session.add(
                    GrantRow(group_id=group_id, access=AccessType(access).value, principal_id=principal_id,
                             source_kind="assignment", source_id=assignment_id, starts_at=starts_at, ends_at=ends_at)
                )
        if kind == "active":
            await self.set_membership(group_id, AccessType(access), principal_id, present=True)  # type: ignore[attr-defined]
        return assignment_id

    async def assignments(self, group_id: str | None = None, principal_id: str | None = None) -> list[AssignmentRow]:
        query = select(AssignmentRow).where(AssignmentRow.removed_at.is_(None))
        if group_id:
            query = query.where(AssignmentRow.group_id == group_id)
        if principal_id:
            query = query.where(AssignmentRow.principal_id == principal_id)
        async with self.sessions() as session:
            return list(await session.scalars(query.order_by(AssignmentRow.created_at)))
