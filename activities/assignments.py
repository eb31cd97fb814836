"""Side effects of a time-bound assignment: taking effect, a new window, the end."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session
from temporalio import activity

from activities.interfaces import AssignmentInterface
from pim.directories.interface import Directory
from pim.directories.sources import confer, withdraw
from pim.domain.assignment_rules import lifecycle_refusal
from pim.domain.assignments import AssignmentEnd, AssignmentLoaded, AssignmentLookup, AssignmentPlan
from pim.domain.models import AccessType
from pim.notifications.compose import compose, describe, group_rule
from pim.operations.eligibility import end_dependent_activations
from pim.runtime.logging import get_logger
from pim.store import Store
from pim.store.assignments import end_assignment_in
from pim.store.grants import remove_grant_in
from pim.store.tables import AssignmentRow

log = get_logger("pim.activities")


@dataclass
class AssignmentActivities(AssignmentInterface):
    store: Store
    directory: Directory

    @activity.defn
    async def load_assignment(self, lookup: AssignmentLookup) -> AssignmentLoaded:
        row = await self.store.assignment(lookup.assignment_id)
        refusal = lifecycle_refusal(row, lookup)
        if refusal is not None or row is None:
            if lookup.audit_refusal:
                await self._refused(lookup, refusal or "no such assignment", row)
            return AssignmentLoaded(refusal=refusal)
        plan = AssignmentPlan(
            assignment_id=row.id,
            group_id=row.group_id,
            access=AccessType(row.access),
            principal_id=row.principal_id,
            kind="active" if row.kind == "active" else "eligible",
            starts_at=row.starts_at,
            ends_at=row.ends_at or lookup.at,  # a permanent assignment was refused above
            created_by=row.created_by,
        )
        return AssignmentLoaded(plan=plan, removed=row.removed_at is not None)

    async def _refused(self, lookup: AssignmentLookup, reason: str, row: AssignmentRow | None) -> None:
        """A lifecycle that will not act: audited once per workflow run and reason."""
        log.warning("assignment lifecycle refused", assignment_id=lookup.assignment_id, reason=reason)
        await self.store.append_audit(
            at=lookup.at,
            action="refused",
            actor="unverified",
            group_id=row.group_id if row else None,
            access=row.access if row else None,
            principal_id=row.principal_id if row else None,
            details={
                "attempted": "assignment_lifecycle",
                "reason": reason,
                "workflow_id": lookup.workflow_id,
                "assignment_id": lookup.assignment_id,
            },
            dedupe_key=f"{lookup.workflow_id}:{activity.info().workflow_run_id}:refused:{reason[:80]}",
        )

    @activity.defn
    async def assignment_took_effect(self, event: AssignmentEnd) -> bool:
        plan = event.plan
        row = await self.store.assignment(plan.assignment_id)
        if row is None or row.state(event.at) != "active":
            return False  # the store no longer holds it live: nothing is conferred
        if plan.kind == "active":  # the source (its grant row) was written with the assignment
            await confer(self.store, self.directory, plan.group_id, plan.access, plan.principal_id, record_source=None)
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
        return True

    @activity.defn
    async def assignment_end(self, event: AssignmentEnd) -> bool:
        """Retried until it succeeds; every step is idempotent. Only what the store says
        is over ends: a removed or expired assignment (or one the store lost)."""
        plan = event.plan
        row = await self.store.assignment(plan.assignment_id)
        if row is not None and row.state(event.at) in ("active", "scheduled"):
            return False
        removed_by = row.removed_by if row is not None and row.removed_at is not None else event.removed_by
        reason = row.removal_reason if row is not None and row.removed_at is not None else event.reason

        def end_assignment(session: Session) -> None:
            if row is None:
                remove_grant_in(session, "assignment", plan.assignment_id)
            else:
                end_assignment_in(session, plan.assignment_id, at=event.at, removed_by=removed_by, reason=reason)

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
            await self.store.transact(end_assignment)
        await self._audit_end(event, removed_by, reason)
        await end_dependent_activations(self.store, activity.client(), plan, event.at)
        return True

    async def _audit_end(self, event: AssignmentEnd, removed_by: str | None, reason: str | None) -> None:
        plan = event.plan
        action = "assignment_removed" if removed_by else "assignment_expired"
        details = {"assignment_id": plan.assignment_id, "kind": plan.kind, "reason": reason or ""}
        key = f"{plan.assignment_id}:{plan.ends_at.isoformat()}:ended"
        await self.store.append_audit(
            at=event.at,
            action=action,
            actor=removed_by or plan.created_by,
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
