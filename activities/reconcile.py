"""The reconciler's side effects: find access whose source has ended or whose
workflow is gone, take it away, and say why."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from activities.interfaces import ReconcileInterface
from pim.directories.interface import GROUP_NOT_FOUND, Directory
from pim.directories.sources import withdraw
from pim.directories.sync import compare
from pim.domain.models import AccessType
from pim.domain.reconcile import Finding, ReconcileInput, ReconcileReport
from pim.runtime.logging import get_logger
from pim.store import Store
from pim.store.grants import remove_grant_in
from pim.store.tables import ActivationClaimRow, GrantRow, GroupRow, MembershipRow

log = get_logger("pim.reconcile")


@dataclass
class ReconcileActivities(ReconcileInterface):
    store: Store
    directory: Directory
    # An activation's grant past its end by more than this is revoked whatever its workflow says.
    grace: timedelta = timedelta(seconds=60)

    async def _workflow_gone(self, run_key: str, seen: dict[str, str | None]) -> str | None:
        """Why the workflow behind a grant or claim no longer runs, or None when it runs.
        An activation has both a grant and a claim: its workflow is described once per run."""
        if run_key not in seen:
            seen[run_key] = await self._describe(run_key)
        return seen[run_key]

    async def _describe(self, run_key: str) -> str | None:
        workflow_id, _, run_id = run_key.partition("#")
        handle = activity.client().get_workflow_handle(workflow_id, run_id=run_id or None)
        try:
            description = await handle.describe()
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return "its workflow no longer exists"
            raise
        if description.status == WorkflowExecutionStatus.RUNNING:
            return None
        return f"its workflow is {description.status.name.lower()}" if description.status else "its workflow ended"

    @activity.defn
    async def reconcile_access(self, data: ReconcileInput) -> ReconcileReport:
        report = ReconcileReport(at=data.at)
        seen: dict[str, str | None] = {}
        async with self.store.sessions() as session:
            grants = list(await session.scalars(select(GrantRow).order_by(GrantRow.id)))
            claims = list(await session.scalars(select(ActivationClaimRow)))
            # Every group PIM knows of (and any the built-in directory has rows for).
            group_ids = (
                set(await session.scalars(select(GroupRow.id)))
                | {g.group_id for g in grants}
                | set(await session.scalars(select(MembershipRow.group_id).distinct()))
            )

        for grant in grants:
            reason = await self._stale_reason(grant, data, seen)
            if reason is None:
                continue
            finding = Finding(
                group_id=grant.group_id,
                access=AccessType(grant.access),
                principal_id=grant.principal_id,
                source=f"{grant.source_kind} {grant.source_id.split('#')[0]}",
                reason=reason,
            )
            await withdraw(
                self.store,
                self.directory,
                grant.group_id,
                AccessType(grant.access),
                grant.principal_id,
                source_id=grant.source_id,
                at=data.at,
                drop_source=partial(remove_grant_in, source_kind=grant.source_kind, source_id=grant.source_id),
            )
            await self._audit(data, "access_reconciled", finding)
            report.revoked.append(finding)

        for claim in claims:
            reason = await self._workflow_gone(claim.request_id, seen)
            if reason is None:
                continue
            finding = Finding(
                group_id=claim.group_id,
                access=AccessType(claim.access),
                principal_id=claim.principal_id,
                source=f"activation {claim.request_id.split('#')[0]}",
                reason=reason,
            )
            await self.store.release_activation(claim.request_id)
            await self._audit(data, "claim_released", finding)
            report.released.append(finding)

        # An activation's grant gives access until it is revoked (above, when overdue); an
        # assignment's while its window holds.
        live = {
            (g.group_id, g.access, g.principal_id)
            for g in grants
            if g.source_kind == "activation" or g.ends_at is None or g.ends_at > data.at
        }
        revoked = {(f.group_id, f.access.value, f.principal_id) for f in report.revoked}
        sourced: dict[tuple[str, str], set[str]] = {}  # a source gives it, or it was just handled above
        for g, a, p in live | revoked:
            sourced.setdefault((g, a), set()).add(p)
        for group_id in sorted(group_ids):
            for access in AccessType:
                try:  # asked of the directory itself, so that this works on LDAP or Graph too
                    held = await self.directory.holders(group_id, access)
                except ApplicationError as error:
                    if error.type != GROUP_NOT_FOUND:
                        raise
                    log.warning("group not in the directory", group_id=group_id, access=access.value)
                    break
                expected = sourced.get((group_id, access.value), set())
                unexpected = compare(group_id, access, expected=expected, held=held).unexpected
                if unexpected:
                    await self._unsourced(data, report, group_id, access, unexpected)
        await self.store.forget_expired_proofs(before=data.at - timedelta(hours=1))
        log.info(
            "reconciled",
            trigger=data.trigger,
            revoked=len(report.revoked),
            released=len(report.released),
            unsourced=len(report.unsourced),
            reported=len(report.reported),
        )
        return report

    async def _unsourced(
        self, data: ReconcileInput, report: ReconcileReport, group_id: str, access: AccessType, principals: list[str]
    ) -> None:
        """Access that no assignment or activation gives: in a PIM-enabled group it is
        removed (re-checked under the target's lock), unless the group's policy says to
        report it only; in a group outside PIM it is reported."""
        group = await self.store.group(group_id)
        found = await self.store.policy(group_id, access) if group is not None and group.pim_enabled else None
        revoke = found is not None and found[0].unsourced_access == "revoke"
        for principal_id in principals:
            finding = Finding(
                group_id=group_id,
                access=access,
                principal_id=principal_id,
                reason="the directory holds this access but no assignment or activation gives it",
            )
            if not revoke:
                await self._audit(data, "access_unsourced", finding)
                report.reported.append(finding)
                continue
            kept = await withdraw(
                self.store, self.directory, group_id, access, principal_id, source_id="", at=data.at, drop_source=_nothing
            )
            if kept:  # a source appeared meanwhile (a grant just written): it stays
                continue
            await self._audit(data, "access_unsourced_removed", finding)
            report.unsourced.append(finding)

    async def _stale_reason(self, grant: GrantRow, data: ReconcileInput, seen: dict[str, str | None]) -> str | None:
        if grant.source_kind == "activation":
            if grant.ends_at is not None and grant.ends_at + self.grace < data.at:
                return f"activation overdue: it ended at {grant.ends_at.isoformat()} and was not revoked"
            gone = await self._workflow_gone(grant.source_id, seen)
            return f"activation ended: {gone}" if gone else None
        if grant.ends_at is not None and grant.ends_at <= data.at:
            return f"assignment ended at {grant.ends_at.isoformat()}"
        row = await self.store.assignment(grant.source_id)
        if row is None or row.removed_at is not None:
            return "assignment removed"
        return None

    async def _audit(self, data: ReconcileInput, action: str, finding: Finding) -> None:
        await self.store.append_audit(
            at=data.at,
            action=action,
            actor="reconciler",
            group_id=finding.group_id,
            access=finding.access.value,
            principal_id=finding.principal_id,
            details={"source": finding.source or "", "reason": finding.reason},
            dedupe_key=f"reconcile:{data.at.isoformat()}:{action}:{finding.group_id}:{finding.access.value}:"
            f"{finding.principal_id}:{finding.source}",
        )


def _nothing(session: Session) -> None:
    """Unsourced access has no source row to drop."""
