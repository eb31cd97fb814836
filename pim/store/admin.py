"""Principals, groups, policies and assignments: what administrators set up."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from pim.domain.models import AccessType
from pim.domain.policy import Policy, default_policy
from pim.store.sessions import Sessions
from pim.store.tables import ActivationClaimRow, AssignmentRow, DirectoryRoleRow, GroupRow, PolicyRow, PrincipalRow


class StoreError(Exception):
    """A refusal by the store, with a stable code (not a crash)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def now() -> datetime:
    return datetime.now(UTC)


class AdminOperations(Sessions):
    async def add_principal(
        self, principal_id: str, kind: str = "user", display_name: str = "", roles: Sequence[str] = (), email: str | None = None
    ) -> None:
        def work(session: Session) -> None:
            if session.get(PrincipalRow, principal_id) is None:
                session.add(
                    PrincipalRow(
                        id=principal_id, kind=kind, display_name=display_name or principal_id, email=email, created_at=now()
                    )
                )
                session.flush()
            for role in roles:
                if session.get(DirectoryRoleRow, (principal_id, role)) is None:
                    session.add(DirectoryRoleRow(principal_id=principal_id, role=role))

        await self.transact(work)

    async def principal(self, principal_id: str) -> PrincipalRow | None:
        async with self.sessions() as session:
            return await session.get(PrincipalRow, principal_id)

    async def grant_role(self, principal_id: str, role: str) -> None:
        def work(session: Session) -> None:
            if session.get(DirectoryRoleRow, (principal_id, role)) is None:
                session.add(DirectoryRoleRow(principal_id=principal_id, role=role))

        await self.transact(work)

    async def holders_of(self, roles: frozenset[str] | tuple[str, ...]) -> list[str]:
        async with self.sessions() as session:
            rows = await session.scalars(select(DirectoryRoleRow.principal_id).where(DirectoryRoleRow.role.in_(list(roles))))
            return sorted(set(rows))

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

        def work(session: Session) -> None:
            group = session.get(GroupRow, group_id)
            if group is None:
                group = GroupRow(id=group_id, kind=kind, role_assignable=role_assignable, pim_enabled=False)
                session.add(group)
            elif enable and group.kind in ("dynamic", "synced"):
                raise StoreError(
                    "group_kind_not_supported", f"group: {group_id} is a {group.kind} group and can never be enabled in PIM"
                )
            if enable and not group.pim_enabled:
                group.pim_enabled, group.enabled_at, group.enabled_by = True, now(), by
                for access in AccessType:
                    if session.get(PolicyRow, (group_id, access.value)) is None:
                        session.add(
                            PolicyRow(
                                group_id=group_id,
                                access=access.value,
                                version=1,
                                settings=default_policy(access, group.role_assignable).model_dump(mode="json"),
                                updated_at=now(),
                                updated_by=by,
                            )
                        )

        await self.transact(work)

    async def disable_group(self, group_id: str, *, by: str, at: datetime) -> list[str]:
        """Take a group out of PIM: its eligible assignments end (returned), its
        policies are kept for a later onboarding. Active assignments are plain
        membership and stay."""

        def work(session: Session) -> list[str]:
            group = session.get(GroupRow, group_id)
            if group is None or not group.pim_enabled:
                raise StoreError("group_not_enabled", f"group: {group_id!r} is not enabled in PIM")
            group.pim_enabled, group.disabled_at, group.disabled_by = False, at, by
            eligible = list(
                session.scalars(
                    select(AssignmentRow).where(
                        AssignmentRow.group_id == group_id, AssignmentRow.kind == "eligible", AssignmentRow.removed_at.is_(None)
                    )
                )
            )
            for row in eligible:
                row.removed_at, row.removed_by, row.removal_reason = at, by, "group offboarded from PIM"
            return [row.id for row in eligible]

        return await self.transact(work)

    async def running_activations(self, group_id: str) -> list[str]:
        async with self.sessions() as session:
            rows = await session.scalars(select(ActivationClaimRow.request_id).where(ActivationClaimRow.group_id == group_id))
            return [r.split("#")[0] for r in rows]

    async def count_role_assignable(self) -> int:
        async with self.sessions() as session:
            rows = await session.scalars(select(GroupRow.id).where(GroupRow.role_assignable.is_(True)))
            return len(list(rows))

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
        settings = policy.model_dump(mode="json")

        def work(session: Session) -> int:
            row = session.get(PolicyRow, (group_id, AccessType(access).value))
            if row is None:
                raise StoreError("group_not_enabled", f"group: {group_id!r} is not enabled in PIM")
            row.settings, row.version, row.updated_at, row.updated_by = settings, row.version + 1, now(), by
            return row.version

        return await self.transact(work)
