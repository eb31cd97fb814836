"""The append-only audit log."""

from __future__ import annotations

from datetime import datetime
from typing import Sequence

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pim.notifications.model import Notification
from pim.store.outbox import OutboxOperations
from pim.store.tables import AuditRow


class AuditOperations(OutboxOperations):
    sessions: async_sessionmaker[AsyncSession]

    async def append_audit(
        self,
        *,
        at: datetime,
        action: str,
        actor: str | None = None,
        request_id: str | None = None,
        group_id: str | None = None,
        access: str | None = None,
        principal_id: str | None = None,
        details: dict | None = None,
        dedupe_key: str | None = None,
        notifications: Sequence[Notification] = (),
        channels: Sequence[str] = (),
    ) -> None:
        """Insert one line, and queue the notifications it causes on each channel in
        the same transaction: both or neither. A line with a dedupe key already
        written is not written again, and neither are its notifications."""
        queued = 0
        try:
            # No look-up first: the unique dedupe key refuses a second line (a retried
            # activity), rolling back its notifications with it. One statement less on
            # every line, which every activation writes three of.
            async with self.sessions.begin() as session:
                session.add(
                    AuditRow(
                        at=at,
                        action=action,
                        actor=actor,
                        request_id=request_id,
                        group_id=group_id,
                        access=access,
                        principal_id=principal_id,
                        details=details or {},
                        dedupe_key=dedupe_key,
                    )
                )
                queued = self._queue_notifications(session, notifications, channels)
        except IntegrityError:
            if dedupe_key is None:
                raise
            return
        if queued:
            self._wake_dispatcher()

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
