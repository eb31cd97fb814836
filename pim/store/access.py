"""Effective access: eligibility facts, claims on running activations, grants
counted per source, and the built-in directory's memberships."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import ColumnElement, and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import InstrumentedAttribute

from pim.domain import authorization as authz
from pim.domain.activation_rules import EligibilityFacts
from pim.domain.models import AccessType
from pim.domain.policy import ROLE_PREFIX
from pim.store.tables import (
    ActivationClaimRow,
    AssignmentRow,
    DirectoryRoleRow,
    GrantRow,
    GroupRow,
    MembershipRow,
    MfaEnrolmentRow,
    PrincipalRow,
)


def _live(
    column_start: InstrumentedAttribute[datetime], column_end: InstrumentedAttribute[datetime | None], at: datetime
) -> ColumnElement[bool]:
    return and_(column_start <= at, or_(column_end.is_(None), column_end > at))


class AccessOperations:
    sessions: async_sessionmaker[AsyncSession]

    # --- effective access --------------------------------------------------

    async def live_grants(
        self, group_id: str, access: AccessType, at: datetime, principal_id: str | None = None
    ) -> list[GrantRow]:
        query = select(GrantRow).where(
            GrantRow.group_id == group_id,
            GrantRow.access == AccessType(access).value,
            _live(GrantRow.starts_at, GrantRow.ends_at, at),
        )
        if principal_id:
            query = query.where(GrantRow.principal_id == principal_id)
        async with self.sessions() as session:
            return list(await session.scalars(query.order_by(GrantRow.principal_id, GrantRow.id)))

    async def active_members(self, group_id: str, at: datetime) -> list[str]:
        """Principals whose member access to the group is live now."""
        return sorted({g.principal_id for g in await self.live_grants(group_id, AccessType.member, at)})

    async def add_grant(
        self,
        group_id: str,
        access: AccessType,
        principal_id: str,
        *,
        source_kind: str,
        source_id: str,
        starts_at: datetime,
        ends_at: datetime | None = None,
    ) -> None:
        """Idempotent: a source is recorded once."""
        try:
            async with self.sessions.begin() as session:
                existing = await session.scalar(
                    select(GrantRow).where(GrantRow.source_kind == source_kind, GrantRow.source_id == source_id)
                )
                if existing is None:
                    session.add(
                        GrantRow(
                            group_id=group_id,
                            access=AccessType(access).value,
                            principal_id=principal_id,
                            source_kind=source_kind,
                            source_id=source_id,
                            starts_at=starts_at,
                            ends_at=ends_at,
                        )
                    )
        except IntegrityError:
            pass  # a concurrent attempt (an activity retry) recorded the same source

    async def other_live_sources(
        self, group_id: str, access: AccessType, principal_id: str, *, source_id: str, at: datetime
    ) -> list[GrantRow]:
        """The sources besides `source_id` that still give the access. An activation's
        row is written when it is granted and deleted when it is revoked, so every
        recorded one counts, even one granted a moment after `at` by another worker;
        an assignment counts while its window holds (at `at`, or now if later)."""
        moment = max(at, datetime.now(UTC))
        query = select(GrantRow).where(
            GrantRow.group_id == group_id,
            GrantRow.access == AccessType(access).value,
            GrantRow.principal_id == principal_id,
            GrantRow.source_id != source_id,
            or_(GrantRow.source_kind == "activation", _live(GrantRow.starts_at, GrantRow.ends_at, moment)),
        )
        async with self.sessions() as session:
            return list(await session.scalars(query.order_by(GrantRow.id)))

    async def set_grant_end(self, source_kind: str, source_id: str, ends_at: datetime | None) -> None:
        """Move a source's end (an extended activation). Idempotent; nothing when the source is gone."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(GrantRow)
                .where(GrantRow.source_kind == source_kind, GrantRow.source_id == source_id)
                .values(ends_at=ends_at)
            )

    async def remove_grant(self, source_kind: str, source_id: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(delete(GrantRow).where(GrantRow.source_kind == source_kind, GrantRow.source_id == source_id))

    # --- the built-in directory ---------------------------------------------

    async def set_membership(
        self, group_id: str, access: AccessType, principal_id: str, *, present: bool, at: datetime | None = None
    ) -> None:
        key = (group_id, AccessType(access).value, principal_id)
        try:
            async with self.sessions.begin() as session:
                row = await session.get(MembershipRow, key)
                if present and row is None:
                    session.add(MembershipRow(group_id=key[0], access=key[1], principal_id=key[2], since=at or datetime.now(UTC)))
                elif not present and row is not None:
                    await session.delete(row)
        except IntegrityError:
            if not present:
                raise  # only a concurrent add can collide; it already holds what we wanted

    async def has_membership(self, group_id: str, access: AccessType, principal_id: str) -> bool:
        async with self.sessions() as session:
            return await session.get(MembershipRow, (group_id, AccessType(access).value, principal_id)) is not None

    async def memberships(self, group_id: str, access: AccessType) -> list[MembershipRow]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(MembershipRow)
                .where(MembershipRow.group_id == group_id, MembershipRow.access == AccessType(access).value)
                .order_by(MembershipRow.principal_id)
            )
            return list(rows)

    # --- what an activation needs to know -----------------------------------

    async def eligibility_facts(self, group_id: str, access: AccessType, principal_id: str, at: datetime) -> EligibilityFacts:
        access_value = AccessType(access).value
        async with self.sessions() as session:
            group = await session.get(GroupRow, group_id)
            principal = await session.get(PrincipalRow, principal_id)
            facts = EligibilityFacts(
                group_exists=group is not None,
                group_enabled=bool(group and group.pim_enabled),
                principal_kind=principal.kind if principal else None,
            )
            if group is None or principal is None:
                return facts
            # Direct eligibility, or through a group the principal is an active member of (one level).
            member_of = select(GrantRow.group_id).where(
                GrantRow.principal_id == principal_id,
                GrantRow.access == AccessType.member.value,
                _live(GrantRow.starts_at, GrantRow.ends_at, at),
            )
            eligible = await session.scalars(
                select(AssignmentRow).where(
                    AssignmentRow.group_id == group_id,
                    AssignmentRow.access == access_value,
                    AssignmentRow.kind == "eligible",
                    AssignmentRow.removed_at.is_(None),
                    _live(AssignmentRow.starts_at, AssignmentRow.ends_at, at),
                    or_(AssignmentRow.principal_id == principal_id, AssignmentRow.principal_id.in_(member_of)),
                )
            )
            sources = list(eligible)
            facts.eligible_via = sorted(
                {"direct" if a.principal_id == principal_id else f"group:{a.principal_id}" for a in sources}
            )
            ends = [a.ends_at for a in sources]
            facts.eligible_until = None if (not ends or None in ends) else max(ends)  # type: ignore[type-var]
            claim = await session.get(ActivationClaimRow, (group_id, access_value, principal_id))
            facts.running_request_id = claim.request_id if claim else None
            facts.mfa_enrolled = await session.get(MfaEnrolmentRow, principal_id) is not None
            return facts

    async def expand_approvers(self, approvers: list[str], at: datetime) -> list[str]:
        """Users named directly, the active members of approver groups, and the holders
        of approver roles (`role:NAME`)."""
        users: set[str] = set()
        for approver in approvers:
            if approver.startswith(ROLE_PREFIX):
                users.update(await self.holders_of((approver.removeprefix(ROLE_PREFIX),)))  # type: ignore[attr-defined]
                continue
            principal = await self.principal(approver)  # type: ignore[attr-defined]
            if principal is None:
                continue
            if principal.kind == "user":
                users.add(approver)
            else:
                users.update(await self.active_members(approver, at))
        return sorted(users)

    async def group_administrators(self, group_id: str, at: datetime) -> list[str]:
        """Who may manage the group (pim.domain.authorization): role holders and its current owners."""
        async with self.sessions() as session:
            group = await session.get(GroupRow, group_id)
            if group is None:
                return []
            roles = authz.roles_that_manage(group.role_assignable)
            holders = set(
                await session.scalars(select(DirectoryRoleRow.principal_id).where(DirectoryRoleRow.role.in_(list(roles))))
            )
        owners = {g.principal_id for g in await self.live_grants(group_id, AccessType.owner, at)}
        return sorted(holders | owners)

    async def claim_activation(self, group_id: str, access: AccessType, principal_id: str, request_id: str, at: datetime) -> str:
        """Take the (group, access, principal) slot for this request; returns the
        request that holds it (this one unless another got there first)."""
        key = (group_id, AccessType(access).value, principal_id)
        while True:
            try:
                async with self.sessions.begin() as session:
                    row = await session.get(ActivationClaimRow, key)
                    if row is not None:
                        return row.request_id
                    session.add(
                        ActivationClaimRow(
                            group_id=key[0], access=key[1], principal_id=key[2], request_id=request_id, claimed_at=at
                        )
                    )
                return request_id
            except IntegrityError:
                continue  # a concurrent claim won the race (or was released meanwhile): look again

    async def claims(
        self, *, group_id: str | None = None, access: AccessType | None = None, principal_id: str | None = None
    ) -> list[ActivationClaimRow]:
        """Running activations (one claim each), filtered."""
        query = select(ActivationClaimRow)
        if group_id is not None:
            query = query.where(ActivationClaimRow.group_id == group_id)
        if access is not None:
            query = query.where(ActivationClaimRow.access == AccessType(access).value)
        if principal_id is not None:
            query = query.where(ActivationClaimRow.principal_id == principal_id)
        async with self.sessions() as session:
            return list(await session.scalars(query))

    async def release_activation(self, request_id: str) -> None:
        async with self.sessions.begin() as session:
            await session.execute(delete(ActivationClaimRow).where(ActivationClaimRow.request_id == request_id))

    async def end_activation(self, request_id: str) -> None:
        """An activation's grant row and its claim go together: one transaction
        instead of two on the revocation path, where a thousand expiring at once
        queue for SQLite's single writer."""
        async with self.sessions.begin() as session:
            await session.execute(delete(GrantRow).where(GrantRow.source_kind == "activation", GrantRow.source_id == request_id))
            await session.execute(delete(ActivationClaimRow).where(ActivationClaimRow.request_id == request_id))
