"""Side effects of a time-bound assignment: taking effect, a new window, the end."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from activities.interfaces import AssignmentInterface
from pim.directories.interface import Directory
from pim.directories.sources import confer, source_already_recorded, withdraw
from pim.domain.assignments import AssignmentEnd, AssignmentWindow
from pim.notifications.compose import compose, describe, group_rule
from pim.runtime.logging import get_logger
from pim.store import Store

log = get_logger("pim.activities")


@dataclass
class AssignmentActivities(AssignmentInterface):
    store: Store
    directory: Directory

    @activity.defn
    async def assignment_took_effect(self, event: AssignmentEnd) -> None:
        plan = event.plan
        if plan.kind == "active":  # the source (its grant row) was written with the assignment
            await confer(
                self.store, self.directory, plan.group_id, plan.access, plan.principal_id, record_source=source_already_recorded
            )
        details = {"assignment_id": plan.assignment_id, "kind": plan.kind, "ends_at": plan.ends_at.isoformat()}
        key = f"{plan.assignment_id}:{plan.starts_at.isoformat()}:started"
        await self.store.append_audit(
            at=event.at,
            action="assignment_started",
            actor=plan.created_by,
            group_id=plan.group_id,
            access=plan.access.value,
            principal_id=plan.principal_id,
            details=details,
            dedupe_key=key,
            **await self._notify(event, key, f"assignment_{plan.kind}", details),
        )

    @activity.defn
    async def assignment_window_changed(self, window: AssignmentWindow) -> None:
        await self.store.change_assignment_window(
            window.assignment_id, starts_at=window.starts_at, ends_at=window.ends_at, by=window.by, at=window.at
        )

    @activity.defn
    async def assignment_end(self, event: AssignmentEnd) -> None:
        """Retried until it succeeds; every step is idempotent."""
        plan = event.plan

        def end_assignment():
            return self.store.end_assignment(plan.assignment_id, at=event.at, removed_by=event.removed_by, reason=event.reason)

        if plan.kind == "active":
            await withdraw(
                self.store,
                self.directory,
                plan.group_id,
                plan.access,
                plan.principal_id,
                source_id=plan.assignment_id,
                at=event.at,
                drop_source=end_assignment,
            )
        else:
            await end_assignment()
        action = "assignment_removed" if event.removed_by else "assignment_expired"
        details = {"assignment_id": plan.assignment_id, "kind": plan.kind, "reason": event.reason or ""}
        key = f"{plan.assignment_id}:{plan.ends_at.isoformat()}:ended"
        await self.store.append_audit(
            at=event.at,
            action=action,
            actor=event.removed_by or plan.created_by,
            group_id=plan.group_id,
            access=plan.access.value,
            principal_id=plan.principal_id,
            details=details,
            dedupe_key=key,
            **await self._notify(event, key, "assignment_ended", details),
        )
        log.info(action, assignment_id=plan.assignment_id, group_id=plan.group_id, principal_id=plan.principal_id)

    async def _notify(self, event: AssignmentEnd, key: str, name: str, details: dict) -> dict:
        plan = event.plan
        rule, admins = await group_rule(self.store, plan.group_id, plan.access.value, event.at)
        headline = name.replace("_", " ").capitalize()
        notifications = await compose(
            self.store,
            key=key,
            event=name,
            at=event.at,
            rule=rule,
            people={"requestor": [plan.principal_id], "admins": admins},
            subject=f"{headline}: {describe(plan.access.value, plan.group_id, plan.principal_id)}",
            group_id=plan.group_id,
            access=plan.access.value,
            principal_id=plan.principal_id,
            details=details,
        )
        return {"notifications": notifications, "channels": rule.channels}
