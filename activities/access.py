"""Grant and revoke: the only activities that change who has access.

Access is counted per source: the grant records this activation as a source
and adds the membership to the directory; closing removes the source and takes
the membership out only when no other live source still gives it."""

from __future__ import annotations

from dataclasses import dataclass

from temporalio import activity

from activities.interfaces import AccessInterface
from pim.directories.interface import Directory
from pim.directories.sources import confer, withdraw
from pim.domain.models import State
from pim.domain.status import AccessChange
from pim.notifications.compose import compose, describe
from pim.runtime import metrics
from pim.runtime.logging import get_logger
from pim.store import Store

log = get_logger("pim.activities")
SOURCE_KIND = "activation"


@dataclass
class AccessActivities(AccessInterface):
    store: Store
    directory: Directory

    @activity.defn
    async def grant_access(self, change: AccessChange) -> None:
        await confer(
            self.store,
            self.directory,
            change.group_id,
            change.access,
            change.principal_id,
            record_source=lambda: self.store.add_grant(
                change.group_id,
                change.access,
                change.principal_id,
                source_kind=SOURCE_KIND,
                source_id=change.run_key,
                starts_at=change.at,
            ),
        )
        details = {"expires_at": change.expires_at.isoformat() if change.expires_at else ""}
        key = f"{change.run_key}:granted"
        await self.store.append_audit(
            at=change.at,
            action="access_granted",
            actor=change.principal_id,
            request_id=change.request_id,
            group_id=change.group_id,
            access=change.access.value,
            principal_id=change.principal_id,
            details=details,
            dedupe_key=key,
            **await self._notify(change, key, "activation_active", "Access granted", details),
        )
        log.info(
            "access granted",
            request_id=change.request_id,
            group_id=change.group_id,
            access=change.access.value,
            principal_id=change.principal_id,
        )

    @activity.defn
    async def close_activation(self, change: AccessChange) -> None:
        """Revoke (when granted) and release the claim. Retried until it succeeds;
        every step is idempotent, so a retry after a partial success is safe."""
        metrics.revocation_attempt()
        if change.granted:
            others = await withdraw(
                self.store,
                self.directory,
                change.group_id,
                change.access,
                change.principal_id,
                source_id=change.run_key,
                at=change.at,
                drop_source=lambda: self.store.end_activation(change.run_key),
            )
            log.info(
                "access revoked" if not others else "activation ended; access kept through another source",
                request_id=change.request_id,
                group_id=change.group_id,
                access=change.access.value,
                principal_id=change.principal_id,
                kept_by=[o.source_kind for o in others],
            )
        else:
            await self.store.release_activation(change.run_key)
        details = {"state": str(change.final_state or ""), "reason": change.reason or "", "revoked": str(change.granted).lower()}
        key = f"{change.run_key}:ended"
        await self.store.append_audit(
            at=change.at,
            action="activation_ended",
            actor=change.principal_id,
            request_id=change.request_id,
            group_id=change.group_id,
            access=change.access.value,
            principal_id=change.principal_id,
            details=details,
            dedupe_key=key,
            **await self._notify(change, key, "activation_ended", f"Activation {change.final_state}", details),
        )
        if change.granted and change.final_state == State.expired:  # the attempt that finished the revocation
            metrics.revocation_done(change.expires_at)

    async def _notify(self, change: AccessChange, key: str, event: str, headline: str, details: dict) -> dict:
        """The notifications to queue with the audit line (none for inputs from
        workflows that still notify through `record_event`)."""
        if change.notifications is None:
            return {}
        notifications = await compose(
            self.store,
            key=key,
            event=event,
            at=change.at,
            rule=change.notifications,
            people={"requestor": [change.principal_id], "admins": change.administrators},
            subject=f"{headline}: {describe(change.access.value, change.group_id, change.principal_id)}",
            request_id=change.request_id,
            group_id=change.group_id,
            access=change.access.value,
            principal_id=change.principal_id,
            details=details,
        )
        return {"notifications": notifications, "channels": change.notifications.channels}
