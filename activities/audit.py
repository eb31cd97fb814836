"""Audit records and the notifications they cause."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from activities.interfaces import AuditInterface
from pim.domain.status import AuditRecord, run_key_of
from pim.notifications.compose import compose, describe, group_rule
from pim.notifications.model import Notification, Role
from pim.store import Store

# Audit actions that tell someone, and the notification event they become. Other
# actions only write their line (the activities that grant and end access queue
# their own notifications).
EVENTS = {
    "request_approved": "request_approved",
    "request_denied": "request_denied",
    "assignment_expiring": "assignment_expiring_soon",
}


@dataclass
class AuditActivities(AuditInterface):
    store: Store

    @activity.defn
    async def record_event(self, record: AuditRecord) -> None:
        notifications, channels = await self._notifications(record)
        await self.store.append_audit(
            at=record.at,
            action=record.action,
            actor=record.actor,
            request_id=record.request_id,
            group_id=record.group_id,
            access=record.access.value if record.access else None,
            principal_id=record.principal_id,
            details=record.details,
            dedupe_key=record.dedupe_key,
            notifications=notifications,
            channels=channels,
        )

    async def _notifications(self, record: AuditRecord) -> tuple[list[Notification], list[str]]:
        """What the record tells whom, through which channels (nothing for most actions)."""
        event = EVENTS.get(record.action)
        group_id, access, principal_id = record.group_id, record.access, record.principal_id
        if not (event and group_id and access and principal_id):
            return [], []
        rule, admins = await group_rule(self.store, group_id, access.value, record.at)
        what = describe(access.value, group_id, principal_id)
        key = record.dedupe_key or f"{record.request_id}:{record.action}:{record.at.isoformat()}"

        async def tell(
            key: str, event: str, subject: str, people: dict[Role, list[str]], details: dict[str, str]
        ) -> list[Notification]:
            return await compose(
                self.store,
                key=key,
                event=event,
                at=record.at,
                rule=rule,
                people=people,
                subject=subject,
                request_id=record.request_id,
                run_key=run_key_of(record.dedupe_key),
                group_id=group_id,
                access=access.value,
                principal_id=principal_id,
                details=details,
            )

        decision = _decision_facts(record) if event.startswith("request_") else record.details
        people: dict[Role, list[str]] = {"requestor": [principal_id], "admins": admins}
        notifications = await tell(key, event, f"{_headline(event)}: {what}", people, decision)
        if event == "request_approved" and record.ask:  # the next stage's approvers are asked now
            facts = _next_stage_facts(record)
            notifications += await tell(
                f"{key}:next", "activation_requested", f"Approval needed: {what}", {"approvers": record.ask}, facts
            )
        return notifications, list(rule.channels)


def _headline(event: str) -> str:
    return event.replace("_", " ").capitalize()


def _decision_facts(record: AuditRecord) -> dict[str, str]:
    details = record.details
    return {
        "approver": record.actor or "",
        "approver_justification": details.get("justification", ""),
        "stage": details.get("stage", ""),
    }


def _next_stage_facts(record: AuditRecord) -> dict[str, str]:
    details = record.details
    return {
        "duration": details.get("duration", ""),
        "justification": details.get("request_justification", ""),
        "approval_deadline": details.get("approval_deadline", ""),
        "stage": details.get("next_stage", ""),
        "state": "pending_approval",
        "approver": record.actor or "",
    }
