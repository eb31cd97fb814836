"""The notification outbox: rows written with the audit line that causes them,
claimed and delivered by the worker's dispatcher (pim/dispatch.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Callable, Sequence

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from pim.notifications.model import Notification
from pim.store.sessions import Sessions
from pim.store.tables import NotificationRow, PrincipalRow

MAX_ERROR = 500


class OutboxOperations(Sessions):
    # Called after a transaction queued notifications, so an idle dispatcher in
    # this process wakes at once instead of at its next poll.
    notifications_queued: Callable[[], None] | None = None

    def _queue_notifications(self, session: Session, notifications: Sequence[Notification], channels: Sequence[str]) -> int:
        # Due by the wall clock, not by the event's time (which a workflow's clock
        # sets, and a test server's skipped time can put in the future).
        at = datetime.now(UTC)
        count = 0
        for notification in notifications:
            for channel in dict.fromkeys(channels):
                session.add(
                    NotificationRow(
                        dedupe_key=f"{notification.key}:{channel}",
                        channel=channel,
                        event=notification.event,
                        payload=notification.model_dump(mode="json"),
                        created_at=at,
                        status="pending",
                        attempts=0,
                        next_attempt_at=at,
                    )
                )
                count += 1
        return count

    def wake_dispatcher(self) -> None:
        """Tell an idle dispatcher of this process that notifications were queued."""
        if self.notifications_queued is not None:
            self.notifications_queued()

    async def claim_notifications(self, *, now: datetime, lease: timedelta, limit: int = 100) -> list[NotificationRow]:
        """Due rows nobody else holds, leased to the caller until `now + lease`. Two
        dispatchers never get the same row: the claim is one conditional UPDATE."""
        free = or_(NotificationRow.claimed_until.is_(None), NotificationRow.claimed_until < now)

        def work(session: Session) -> list[NotificationRow]:
            due = list(
                session.scalars(
                    select(NotificationRow.id)
                    .where(NotificationRow.status == "pending", NotificationRow.next_attempt_at <= now, free)
                    .order_by(NotificationRow.next_attempt_at, NotificationRow.id)
                    .limit(limit)
                )
            )
            if not due:
                return []
            claimed = list(
                session.scalars(
                    update(NotificationRow)
                    .where(NotificationRow.id.in_(due), NotificationRow.status == "pending", free)
                    .values(claimed_until=now + lease, attempts=NotificationRow.attempts + 1)
                    .returning(NotificationRow.id)
                )
            )
            if not claimed:
                return []
            rows = session.scalars(
                select(NotificationRow)
                .where(NotificationRow.id.in_(claimed))
                .order_by(NotificationRow.id)
                .execution_options(populate_existing=True)
            )
            return list(rows)

        return await self.transact(work)

    async def notifications_sent(self, ids: Sequence[int], at: datetime) -> None:
        if ids:
            statement = (
                update(NotificationRow)
                .where(NotificationRow.id.in_(list(ids)))
                .values(status="sent", sent_at=at, claimed_until=None, last_error=None)
            )
            await self.transact(lambda session: session.execute(statement))

    async def notification_failed(self, row_id: int, *, error: str, retry_at: datetime | None) -> None:
        """Back to pending until `retry_at`, or failed for good when there is none."""
        values: dict[str, object] = {"claimed_until": None, "last_error": error[:MAX_ERROR]}
        values.update(status="pending", next_attempt_at=retry_at) if retry_at else values.update(status="failed")
        statement = update(NotificationRow).where(NotificationRow.id == row_id).values(**values)
        await self.transact(lambda session: session.execute(statement))

    async def notifications(
        self, *, status: str | None = None, request_id: str | None = None, event: str | None = None
    ) -> list[NotificationRow]:
        query = select(NotificationRow)
        if status:
            query = query.where(NotificationRow.status == status)
        if event:
            query = query.where(NotificationRow.event == event)
        async with self.sessions() as session:
            rows = list(await session.scalars(query.order_by(NotificationRow.id)))
        return [r for r in rows if r.payload.get("request_id") == request_id] if request_id else rows

    async def contacts(self, principal_ids: Sequence[str]) -> dict[str, tuple[str | None, str]]:
        """(email, display name) of each known principal, for addressing notifications."""
        if not principal_ids:
            return {}
        query = select(PrincipalRow.id, PrincipalRow.email, PrincipalRow.display_name).where(
            PrincipalRow.id.in_(sorted(set(principal_ids)))
        )
        rows = await self.read(lambda session: list(session.execute(query)))
        return {row.id: (row.email, row.display_name or row.id) for row in rows}
