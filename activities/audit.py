"""Audit records and the notifications they cause."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from pim.notify import Notification, Notifier
from pim.status import AuditRecord
from pim.store import Store


@dataclass
class AuditActivities:
    store: Store
    notifier: Notifier

    @activity.defn(name="record_event")
    async def record_event(self, record: AuditRecord) -> None:
        await self.store.append_audit(at=record.at, action=record.action, actor=record.actor,
                                      request_id=record.request_id, group_id=record.group_id,
                                      access=record.access.value if record.access else None,
                                      principal_id=record.principal_id, details=record.details,
                                      dedupe_key=record.dedupe_key)
        if record.notify:
            subject = f"{record.action.replace('_', ' ')}: {record.access.value if record.access else ''} of " \
                      f"{record.group_id} for {record.principal_id}"
            await self.notifier.send(Notification(event=record.action, recipients=record.notify, subject=subject,
                                                  details={"request_id": record.request_id or "", **record.details}))
