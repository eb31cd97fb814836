"""Audit records and the notifications they cause."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from pim.domain.status import AuditRecord
from pim.notifications.compose import compose, describe, group_rule
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
class AuditActivities:
    store: Store

    @activity.defn(name="record_event")
    async def record_event(self, record: AuditRecord) -> None:
        notifications, channels = [], []
        event = EVENTS.get(record.action)
        if event and record.group_id and record.access and record.principal_id:
            rule, admins = await group_rule(self.store, record.group_id, record.access.value, record.at)
            common = dict(
                at=record.at,
                rule=rule,
                request_id=record.request_id,
                group_id=record.group_id,
                access=record.access.value,
                principal_id=record.principal_id,
            )
            what = describe(record.access.value, record.group_id, record.principal_id)
            key = record.dedupe_key or f"{record.request_id}:{record.action}:{record.at.isoformat()}"
            decision = _decision_facts(record) if event.startswith("request_") else record.details
            notifications = await compose(
                self.store,
                key=key,
                event=event,
                subject=f"{_headline(event)}: {what}",
                people={"requestor": [record.principal_id], "admins": admins},
                details=decision,
                **common,
            )
            if event == "request_approved" and record.ask:  # the next stage's approvers are asked now
                notifications += await compose(
                    self.store,
                    key=f"{key}:next",
                    event="activation_requested",
                    subject=f"Approval needed: {what}",
                    people={"approvers": record.ask},
                    details=_next_stage_facts(record),
                    **common,
                )
            channels = rule.channels
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
