"""Sources of access and the built-in directory: a grant row per source (an
active assignment or an activation), the memberships the store's own directory
holds, and the two in one transaction when that directory is the store's
(`confer_in_store`, `withdraw_in_store`; pim/directories/sources.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from pim.domain.models import AccessType
from pim.store.sessions import UNSYNCED, Sessions, StoreWork, insert_new
from pim.store.tables import GrantRow, MembershipRow


def is_live(
    column_start: InstrumentedAttribute[datetime], column_end: InstrumentedAttribute[datetime | None], at: datetime
) -> ColumnElement[bool]:
    return and_(column_start <= at, or_(column_end.is_(None), column_end > at))


class GrantOperations(Sessions):
    # --- effective access --------------------------------------------------

    async def live_grants(
        self, group_id: str, access: AccessType, at: datetime, principal_id: str | None = None
    ) -> list[GrantRow]:
        query = select(GrantRow).where(
            GrantRow.group_id == group_id,
            GrantRow.access == AccessType(access).value,
            is_live(GrantRow.starts_at, GrantRow.ends_at, at),
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
        await self.transact(
            lambda session: add_grant_in(
                session,
                group_id,
                access,
                principal_id,
                source_kind=source_kind,
                source_id=source_id,
                starts_at=starts_at,
                ends_at=ends_at,
            )
        )

    async def other_live_sources(
        self, group_id: str, access: AccessType, principal_id: str, *, source_id: str, at: datetime
    ) -> list[GrantRow]:
        """The sources besides `source_id` that still give the access. An activation's
        row is written when it is granted and deleted when it is revoked, so every
        recorded one counts, even one granted a moment after `at` by another worker;
        an assignment counts while its window holds (at `at`, or now if later)."""
        query = _other_live_sources(group_id, access, principal_id, source_id, at)
        # In a reader thread: every revocation asks this, a thousand at once when they expire together.
        return await self.read(lambda session: list(session.scalars(query)))

    async def confer_in_store(
        self,
        group_id: str,
        access: AccessType,
        principal_id: str,
        *,
        record_source: StoreWork | None,
        then: StoreWork | None = None,
    ) -> None:
        """`confer` when the directory is this store's own membership table: record
        the source, write the membership and run `then`, in one write transaction."""
        await self.transact(
            lambda session: confer_in(session, group_id, access, principal_id, record_source=record_source, then=then)
        )

    async def withdraw_in_store(
        self,
        group_id: str,
        access: AccessType,
        principal_id: str,
        *,
        source_id: str,
        at: datetime,
        drop_source: StoreWork,
    ) -> list[GrantRow]:
        """`withdraw` when the directory is this store's own membership table: look
        for another live source, remove the membership when there is none, and drop
        the source (`drop_source`, work in the same transaction), all in one write
        transaction. A revocation was four trips to the store and back, each queued
        behind every other when a thousand expire together; this is one. Returns
        the sources that keep the access."""
        query = _other_live_sources(group_id, access, principal_id, source_id, at)

        def work(session: Session) -> list[GrantRow]:
            others = list(session.scalars(query))
            if not others:
                set_membership_in(session, group_id, access, principal_id, present=False)
            drop_source(session)
            return others

        return await self.transact(work, first=True)

    async def set_grant_end(self, source_kind: str, source_id: str, ends_at: datetime | None) -> None:
        """Move a source's end (an extended activation). Idempotent; nothing when the source is gone."""
        statement = (
            update(GrantRow).where(GrantRow.source_kind == source_kind, GrantRow.source_id == source_id).values(ends_at=ends_at)
        )
        await self.transact(lambda session: session.execute(statement))

    async def has_grant(self, source_kind: str, source_id: str) -> bool:
        """Whether this source's grant row is there (written, and not dropped yet)."""
        query = select(GrantRow.id).where(GrantRow.source_kind == source_kind, GrantRow.source_id == source_id).limit(1)
        return await self.read(lambda session: session.scalar(query) is not None)

    async def remove_grant(self, source_kind: str, source_id: str) -> None:
        await self.transact(lambda session: remove_grant_in(session, source_kind, source_id))

    # --- the built-in directory ---------------------------------------------

    async def set_membership(
        self, group_id: str, access: AccessType, principal_id: str, *, present: bool, at: datetime | None = None
    ) -> None:
        await self.transact(lambda session: set_membership_in(session, group_id, access, principal_id, present=present, at=at))

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


def confer_in(
    session: Session,
    group_id: str,
    access: AccessType,
    principal_id: str,
    *,
    record_source: StoreWork | None,
    then: StoreWork | None = None,
) -> Any:
    """`confer_in_store` inside the caller's write transaction (the admission that
    grants with its claim): record the source, write the membership, then run
    `then` and return what it returns."""
    if record_source is not None:
        record_source(session)
    set_membership_in(session, group_id, access, principal_id, present=True)
    return then(session) if then is not None else None


def add_grant_in(
    session: Session,
    group_id: str,
    access: AccessType,
    principal_id: str,
    *,
    source_kind: str,
    source_id: str,
    starts_at: datetime,
    ends_at: datetime | None = None,
) -> None:
    """`add_grant` inside the caller's write transaction. A source already recorded
    (an activity retry) is left as it is."""
    insert_new(
        session,
        GrantRow,
        group_id=group_id,
        access=AccessType(access).value,
        principal_id=principal_id,
        source_kind=source_kind,
        source_id=source_id,
        starts_at=starts_at,
        ends_at=ends_at,
    )


def set_membership_in(
    session: Session, group_id: str, access: AccessType, principal_id: str, *, present: bool, at: datetime | None = None
) -> None:
    """`set_membership` inside the caller's write transaction. Idempotent."""
    key = dict(group_id=group_id, access=AccessType(access).value, principal_id=principal_id)
    if present:
        insert_new(session, MembershipRow, **key, since=at or datetime.now(UTC))
    else:
        statement = delete(MembershipRow).where(*(getattr(MembershipRow, k) == v for k, v in key.items()))
        session.execute(statement, execution_options=UNSYNCED)


def remove_grant_in(session: Session, source_kind: str, source_id: str) -> None:
    """`remove_grant` inside the caller's write transaction."""
    statement = delete(GrantRow).where(GrantRow.source_kind == source_kind, GrantRow.source_id == source_id)
    session.execute(statement, execution_options=UNSYNCED)


def _other_live_sources(group_id: str, access: AccessType, principal_id: str, source_id: str, at: datetime) -> Select:
    """See `GrantOperations.other_live_sources`."""
    moment = max(at, datetime.now(UTC))
    return (
        select(GrantRow)
        .where(
            GrantRow.group_id == group_id,
            GrantRow.access == AccessType(access).value,
            GrantRow.principal_id == principal_id,
            GrantRow.source_id != source_id,
            or_(GrantRow.source_kind == "activation", is_live(GrantRow.starts_at, GrantRow.ends_at, moment)),
        )
        .order_by(GrantRow.id)
    )
