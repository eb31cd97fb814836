"""Grant and revoke: the only activities that change who has access.

Access is counted per source: the grant records this activation as a source
and adds the membership to the directory; closing removes the source and takes
the membership out only when no other live source still gives it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.interfaces import AccessInterface
from pim.directories.interface import Directory
from pim.directories.sources import confer, withdraw
from pim.domain.grant_rules import GRANT_REFUSED, check_grant
from pim.domain.models import State
from pim.domain.status import AccessChange
from pim.notifications.compose import compose, describe
from pim.runtime import metrics
from pim.runtime.logging import get_logger
from pim.store import Store
from pim.store.access import end_activation_in
from pim.store.grants import add_grant_in, remove_grant_in
from pim.store.sessions import StoreWork
from pim.store.tables import GrantRow

log = get_logger("pim.activities")
SOURCE_KIND = "activation"


@dataclass
class AccessActivities(AccessInterface):
    store: Store
    directory: Directory

    @activity.defn
    async def grant_access(self, change: AccessChange) -> datetime:
        """Re-check, then record the source, write the membership and the audit line
        (with the built-in directory, one store transaction). Idempotent. Returns
        when the access was written: the workflow's expiry timer counts from it."""
        contacts = await self._refuse_unless_grantable(change)
        grant = await prepare_grant(self.store, change, contacts)
        target = (self.store, self.directory, change.group_id, change.access, change.principal_id)
        try:
            await confer(*target, record_source=grant.record_source, then=partial(self.store.audit_in, **grant.line))
        except IntegrityError:
            # The line is there already: an earlier attempt granted and wrote it, then
            # failed to report. Granting again changes nothing.
            await confer(*target, record_source=grant.record_source)
        else:
            if grant.notifies:
                self.store.wake_dispatcher()
        log_granted(change)
        return datetime.now(UTC)

    async def _refuse_unless_grantable(self, change: AccessChange) -> dict[str, tuple[str | None, str]]:
        """The grant's own check against the store (pim/domain/grant_rules.py): a
        refusal is audited and ends the request, and is never retried. Returns the
        contacts of those the grant's notifications go to (read with the facts)."""
        request, snapshot = change.request, change.policy
        if request is None or snapshot is None or change.expires_at is None:
            raise ApplicationError("grant: the input lacks the request it grants", type=GRANT_REFUSED, non_retryable=True)
        known = await self.store.activation_facts(
            change.group_id,
            change.access,
            change.principal_id,
            change.at,
            expand=lambda current: current != snapshot,  # the approvers count only when the policy changed
            contacts_of=change.administrators,
        )
        facts, current = known.facts, known.policy
        deciders = [[u for u in users if u != change.principal_id] for users in known.approvers]
        violations = check_grant(
            workflow_id=change.request_id,
            run_key=change.run_key,
            claim_holder=facts.running_request_id,
            request=request,
            duration=change.expires_at - change.at,
            stages=change.stages,
            snapshot=snapshot,
            current=current,
            current_deciders=deciders,
            facts=facts,
            at=change.at,
        )
        if not violations:
            return known.contacts
        details = {"violations": [v.model_dump() for v in violations], "run_key": change.run_key}
        await self._audit(change, "grant_refused", details, f"{change.run_key}:grant_refused")
        log.warning("grant refused", request_id=change.request_id, violations=[v.code for v in violations])
        raise ApplicationError("; ".join(v.message for v in violations), type=violations[0].code, non_retryable=True)

    @activity.defn
    async def extend_access(self, change: AccessChange) -> None:
        """The grant's recorded end moves with the activation's expiry. Idempotent."""
        await self.store.set_grant_end(SOURCE_KIND, change.run_key, change.expires_at)
        expires_at = change.expires_at.isoformat() if change.expires_at else ""
        details = {"expires_at": expires_at, "justification": change.reason or ""}
        await self._audit(change, "activation_extended", details, f"{change.run_key}:extended:{expires_at}")

    @activity.defn
    async def still_eligible(self, change: AccessChange) -> bool:
        facts = await self.store.eligibility_facts(change.group_id, change.access, change.principal_id, change.at)
        return bool(facts.eligible_via)

    @activity.defn
    async def close_activation(self, change: AccessChange) -> None:
        """Revoke (when granted), then release the claim and write the audit line.
        The revocation comes first, alone: the membership and the grant row go in
        one transaction (with the built-in directory) that queues behind no one's
        bookkeeping when a hundred expire together; the claim and the audit line
        follow in a second, once this process has no revocation under way
        (pim/store/revocations.py). Retried until it succeeds; both steps are
        idempotent, so a retry after a partial success is safe."""
        metrics.revocation_attempt()
        others = await self._revoke(change) if change.granted else []
        await self.store.revocations.settled()  # the access goes first; its record a moment later
        details = {"state": str(change.final_state or ""), "reason": change.reason or "", "revoked": str(change.granted).lower()}
        key = f"{change.run_key}:ended"
        notify = await notify_of(self.store, change, key, "activation_ended", f"Activation {change.final_state}", details)
        line = audit_line(change, "activation_ended", details, key, **notify)

        def end_and_audit(session: Session) -> None:
            end_activation_in(session, change.run_key)
            self.store.audit_in(session, **line)

        try:
            await self.store.transact(end_and_audit)
        except IntegrityError:
            # The line is there already: an earlier attempt wrote it with the end of the
            # activation, then failed to report. Ending again changes nothing.
            await self.store.transact(partial(end_activation_in, request_id=change.run_key))
        else:
            if notify.get("notifications"):
                self.store.wake_dispatcher()
        if change.granted:
            log.info(
                "access revoked" if not others else "activation ended; access kept through another source",
                request_id=change.request_id,
                group_id=change.group_id,
                access=change.access.value,
                principal_id=change.principal_id,
                kept_by=[o.source_kind for o in others],
            )
        if change.granted and change.final_state == State.expired:  # the attempt that finished the revocation
            metrics.revocation_done(change.expires_at)

    async def _revoke(self, change: AccessChange) -> list[GrantRow]:
        """Withdraw the access and drop the activation's grant row. Returns the
        sources that keep the access."""
        return await withdraw(
            self.store,
            self.directory,
            change.group_id,
            change.access,
            change.principal_id,
            source_id=change.run_key,
            at=change.at,
            drop_source=partial(remove_grant_in, source_kind=SOURCE_KIND, source_id=change.run_key),
        )

    async def _audit(self, change: AccessChange, action: str, details: dict[str, Any], key: str, **notify: Any) -> None:
        """One audit line about this activation (its notifications queued with it)."""
        await self.store.append_audit(**audit_line(change, action, details, key, **notify))


def audit_line(change: AccessChange, action: str, details: dict[str, Any], key: str, **notify: Any) -> dict[str, Any]:
    return dict(
        at=change.at,
        action=action,
        actor=change.actor or change.principal_id,
        request_id=change.request_id,
        group_id=change.group_id,
        access=change.access.value,
        principal_id=change.principal_id,
        details=details,
        dedupe_key=key,
        **notify,
    )


async def notify_of(
    store: Store,
    change: AccessChange,
    key: str,
    event: str,
    headline: str,
    details: dict,
    contacts: dict[str, tuple[str | None, str]] | None = None,
) -> dict:
    """The notifications to queue with the audit line (none for inputs from
    workflows that still notify through `record_event`)."""
    if change.notifications is None:
        return {}
    notifications = await compose(
        store,
        key=key,
        event=event,
        at=change.at,
        rule=change.notifications,
        people={"requestor": [change.principal_id], "admins": change.administrators},
        subject=f"{headline}: {describe(change.access.value, change.group_id, change.principal_id)}",
        request_id=change.request_id,
        run_key=change.run_key,
        group_id=change.group_id,
        access=change.access.value,
        principal_id=change.principal_id,
        details=details,
        contacts=contacts,
    )
    return {"notifications": notifications, "channels": change.notifications.channels}


@dataclass(frozen=True)
class PreparedGrant:
    """A grant ready to be written in a store transaction: its source, then (after
    the membership) its audit line with the notifications."""

    change: AccessChange
    record_source: StoreWork
    line: dict[str, Any]

    @property
    def notifies(self) -> bool:
        """Notifications are queued with the line: the dispatcher is to be woken."""
        return bool(self.line.get("notifications"))


async def prepare_grant(store: Store, change: AccessChange, contacts: dict[str, tuple[str | None, str]]) -> PreparedGrant:
    """What `grant_access` writes, or the admission that grants with its claim."""
    details = {"expires_at": change.expires_at.isoformat() if change.expires_at else ""}
    key = f"{change.run_key}:granted"
    notify = await notify_of(store, change, key, "activation_active", "Access granted", details, contacts)
    record_source = partial(
        add_grant_in,
        group_id=change.group_id,
        access=change.access,
        principal_id=change.principal_id,
        source_kind=SOURCE_KIND,
        source_id=change.run_key,
        starts_at=change.at,
        ends_at=change.expires_at,  # the backstop revokes a grant past its end
    )
    line = audit_line(change, "access_granted", details, key, **notify)
    return PreparedGrant(change, record_source, line)


def log_granted(change: AccessChange) -> None:
    log.info(
        "access granted",
        request_id=change.request_id,
        group_id=change.group_id,
        access=change.access.value,
        principal_id=change.principal_id,
    )
