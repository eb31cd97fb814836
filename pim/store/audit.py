"""The append-only audit log, hash-chained (pim/store/audit_chain.py).

Appending reads the last row's hash and inserts the new row under one lock, so
that concurrent writers never fork the chain: on PostgreSQL a transaction-scoped
advisory lock (every worker), on SQLite the database's write lock, which every
write transaction takes with its first statement (BEGIN IMMEDIATE: the CLI and
`pim dev`'s worker are two processes; pim/store/sessions.py). The row's `at` is
the store's clock at insert (PostgreSQL's on PostgreSQL), never earlier than the
row before it; the caller's time of the event is kept as `details.event_at` when
it differs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import NamedTuple, Sequence

from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from pim.notifications.model import Notification
from pim.store import audit_chain
from pim.store.outbox import OutboxOperations
from pim.store.tables import AuditRow

# One key for the whole chain, in the two-integer key space of advisory locks
# (access_lock uses the one-bigint space: the two never meet). "pim" and 1.
CHAIN_LOCK = {"space": 0x70696D, "key": 1}
# The caller's time of the event is kept (details.event_at) when it is further than
# this from the row's time: a retried activity, a workflow's clock, a backdated call.
EVENT_AT_TOLERANCE = timedelta(seconds=1)
BATCH = 1_000
# Where a write transaction keeps the last line it appended (SQLite).
LAST_LINE = "pim.audit.last_line"


class _Line(NamedTuple):
    id: int
    at: datetime
    row_hash: str | None


# The audit actions of an approver's decision (workflows/activation.py).
DECISIONS = ("request_approved", "request_denied")


class AuditOperations(OutboxOperations):
    async def append_audit(
        self,
        *,
        action: str,
        at: datetime | None = None,
        actor: str | None = None,
        request_id: str | None = None,
        group_id: str | None = None,
        access: str | None = None,
        principal_id: str | None = None,
        details: dict | None = None,
        dedupe_key: str | None = None,
        notifications: Sequence[Notification] = (),
        channels: Sequence[str] = (),
    ) -> bool:
        """Insert one line, chained to the one before it, and queue the notifications
        it causes on each channel in the same transaction: both or neither. A line
        with a dedupe key already written is not written again, and neither are its
        notifications: False. `at`, the caller's time of the event, does not date the
        line (the store's clock does); it is kept as `details.event_at` when it differs."""
        if at is not None and at.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        try:
            # No look-up first: the unique dedupe key refuses a second line (a retried
            # activity), rolling back its notifications with it. One statement less on
            # every line, which every activation writes three of.
            queued = await self.transact(
                lambda session: self.audit_in(
                    session,
                    action=action,
                    at=at,
                    actor=actor,
                    request_id=request_id,
                    group_id=group_id,
                    access=access,
                    principal_id=principal_id,
                    details=details,
                    dedupe_key=dedupe_key,
                    notifications=notifications,
                    channels=channels,
                )
            )
        except IntegrityError:
            if dedupe_key is None:
                raise
            return False
        if queued:
            self.wake_dispatcher()
        return True

    def audit_in(
        self,
        session: Session,
        *,
        action: str,
        at: datetime | None = None,
        actor: str | None = None,
        request_id: str | None = None,
        group_id: str | None = None,
        access: str | None = None,
        principal_id: str | None = None,
        details: dict | None = None,
        dedupe_key: str | None = None,
        notifications: Sequence[Notification] = (),
        channels: Sequence[str] = (),
    ) -> int:
        """`append_audit` inside the caller's write transaction (`transact`): a line
        whose dedupe key was written already fails the transaction (IntegrityError).
        Returns how many notifications were queued: the caller wakes the dispatcher
        (`wake_dispatcher`) once the transaction is committed."""
        if at is not None and at.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        row = AuditRow(
            action=action,
            actor=actor,
            request_id=request_id,
            group_id=group_id,
            access=access,
            principal_id=principal_id,
            details=audit_chain.normalized_details(details),
            dedupe_key=dedupe_key,
        )
        self._chain(session, row, event_at=at)
        session.add(row)
        return self._queue_notifications(session, notifications, channels)

    def _chain(self, session: Session, row: AuditRow, *, event_at: datetime | None) -> None:
        """Take the chain's lock for this transaction, then give the row its id, its
        time and its hashes. On PostgreSQL the lock comes before the last line is
        read, and the transaction is READ COMMITTED (the default): the read sees
        every line committed before the lock was granted, whatever the transaction
        did before (a claim, in admission)."""
        if self.is_postgres:
            session.execute(text("SELECT pg_advisory_xact_lock(:space, :key)"), CHAIN_LOCK)
            next_id, now = (
                session.execute(text("SELECT nextval(pg_get_serial_sequence('audit_log', 'id')), clock_timestamp()"))
            ).one()
        else:
            # The transaction holds the database's write lock from its first statement
            # (Sessions.transact): no other process can append between the read of the
            # last hash and this insert.
            next_id, now = None, datetime.now(UTC)
        # The row before this one: a line appended earlier in this same transaction (a
        # batch of the SQLite writer, which holds the write lock throughout), or the
        # log's last.
        last = session.info.get(LAST_LINE)
        if last is None:
            last = session.execute(
                select(AuditRow.id, AuditRow.at, AuditRow.row_hash).order_by(AuditRow.id.desc()).limit(1)
            ).first()
        row.id = next_id if next_id is not None else (last.id + 1 if last else 1)
        # Never dated before the chained row before it (a clock stepped back).
        row.at = max(now, last.at) if last is not None and last.row_hash is not None else now
        if event_at is not None and abs(event_at - row.at) > EVENT_AT_TOLERANCE:
            row.details = {**row.details, "event_at": audit_chain.instant(event_at)}
        if last is None:
            row.prev_hash = audit_chain.GENESIS
        elif last.row_hash is not None:
            row.prev_hash = last.row_hash
        else:  # the first chained row: it covers the rows written before the chain existed
            row.prev_hash = audit_chain.head_of(session.scalars(select(AuditRow).order_by(AuditRow.id)))
        row.row_hash = audit_chain.row_hash(row.prev_hash, row)
        if not self.is_postgres:  # PostgreSQL numbers lines by a sequence: it always reads the last one
            session.info[LAST_LINE] = _Line(row.id, row.at, row.row_hash)

    async def verify_audit(self, expected_head: tuple[int, str] | None = None) -> audit_chain.ChainReport:
        """Read the whole log in id order, in batches, and check its chain (`pim audit
        verify`); stops at the first row that does not fit."""
        verifier = audit_chain.ChainVerifier(expected_head=expected_head)
        after: int | None = None  # no lower bound: a row given id 0 or -1 by hand is read too
        while True:
            query = select(AuditRow).order_by(AuditRow.id).limit(BATCH)
            async with self.sessions() as session:
                batch = list(await session.scalars(query if after is None else query.where(AuditRow.id > after)))
            for row in batch:
                if verifier.add(row) is not None:
                    return verifier.finish()
            if len(batch) < BATCH:
                return verifier.finish()
            after = batch[-1].id

    async def audit(
        self,
        *,
        group_id: str | None = None,
        principal_id: str | None = None,
        request_id: str | None = None,
        since: datetime | None = None,
    ) -> list[AuditRow]:
        query = select(AuditRow)
        if group_id:
            query = query.where(AuditRow.group_id == group_id)
        if principal_id:
            query = query.where(AuditRow.principal_id == principal_id)
        if request_id:
            query = query.where(AuditRow.request_id == request_id)
        if since:
            query = query.where(AuditRow.at >= since)
        async with self.sessions() as session:
            return list(await session.scalars(query.order_by(AuditRow.id)))

    async def decisions_by(self, actor: str, *, since: datetime, limit: int = 50) -> list[AuditRow]:
        """The approval decisions `actor` made since `since` (their `request_approved` and
        `request_denied` lines), newest first, at most `limit`."""
        query = (
            select(AuditRow)
            .where(AuditRow.actor == actor, AuditRow.action.in_(DECISIONS), AuditRow.at >= since)
            .order_by(AuditRow.id.desc())
            .limit(limit)
        )
        async with self.sessions() as session:
            return list(await session.scalars(query))
