"""What every administrative operation shares: the acting principal, the clock,
authorization and the audit of refusals."""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Callable, NoReturn, TypeVar

from temporalio.client import Client

from pim.directories.interface import Directory
from pim.directories.store_directory import StoreDirectory
from pim.domain import authorization as authz
from pim.domain.actors import Action, ActorCheck
from pim.domain.models import ID_PATTERN, MfaEvidence, Proven, Violation
from pim.identity.actors import ProofPolicy, check_actor
from pim.identity.proofs import SigningKey
from pim.store import Store
from pim.store.tables import GroupRow


class Refused(Exception):
    """An operation that is not allowed or not valid; nothing was changed."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def valid_id(principal_id: str) -> None:
    """Ids end up in workflow ids, search attributes and logs: plain and short."""
    if not re.match(ID_PATTERN, principal_id):
        raise Refused("invalid_id", f"id: {principal_id!r} must be letters, digits and . _ @ - (at most 128)")


# One @, something on each side, a dot in the domain, no spaces: enough to catch a
# typo; the mail server has the last word.
EMAIL_PATTERN = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"


def valid_email(email: str | None) -> None:
    if email is not None and (len(email) > 320 or not re.match(EMAIL_PATTERN, email)):
        raise Refused("invalid_email", f"email: {email!r} is not an email address")


ADMIN_TARGET = "pim/admin"
P = TypeVar("P", bound=Proven)


def admin_payload(actor: str) -> dict[str, Any]:
    return {"actor": actor}


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(init=False)
class AdminContext:
    store: Store
    actor: str
    temporal: Client | None  # needed for time-bound assignments (their workflows)
    task_queue: str
    directory: Directory  # the store's own (StoreDirectory) unless another is given
    clock: Callable[[], datetime]
    # The front end's key: it proves this actor's changes to assignment workflows.
    signer: SigningKey | None
    # A multi-factor sign-in the front end vouches for (the HTTP API, from the caller's
    # token): it stands in for the actor's TOTP code while recent (mfa_verified).
    sign_in: MfaEvidence | None

    def __init__(
        self,
        store: Store,
        actor: str,
        temporal: Client | None = None,
        task_queue: str = "pim",
        directory: Directory | None = None,
        clock: Callable[[], datetime] = _utc_now,
        signer: SigningKey | None = None,
        sign_in: MfaEvidence | None = None,
    ) -> None:
        self.store, self.actor, self.temporal, self.task_queue = store, actor, temporal, task_queue
        self.directory = directory or StoreDirectory(store)
        self.clock = clock
        self.signer = signer
        self.sign_in = sign_in

    @classmethod
    async def proven(cls, store: Store, actor: str, proof: str | None, proofs: ProofPolicy, **options: Any) -> AdminContext:
        """The context of an actor whom a trusted front end vouched for: its proof
        (action `admin`, target `pim/admin`, payload `{"actor": ...}`) is checked and
        used up first. Refused (and audited, the actor unverified) otherwise."""
        check = ActorCheck(
            proof=proof,
            actor=actor,
            action=Action.admin,
            target=ADMIN_TARGET,
            payload=admin_payload(actor),
            use_key=f"admin:{uuid.uuid4().hex}",
        )
        verdict = await check_actor(store, proofs, check)
        if not verdict.accepted:
            details = {"claimed_actor": actor, "verified": "false", "code": verdict.code, "reason": verdict.reason}
            await store.append_audit(at=datetime.now(UTC), action="refused", actor="unverified", details=details)
            raise Refused(verdict.code or "proof_invalid", f"{verdict.code}: {verdict.reason}")
        return cls(store, actor, **options)

    def prove(self, payload: P, action: Action, target: str) -> P:
        """The payload with this actor's proof; refused without a signing key."""
        if self.signer is None:
            raise Refused("no_signing_key", "changing a workflow needs the front end's signing key (docs/security.md)")
        proof = self.signer.sign(actor=self.actor, action=action.value, target=target, payload=payload.signed_part())
        return payload.model_copy(update={"proof": proof})

    def now(self) -> datetime:
        return self.clock()

    async def audit(
        self,
        action: str,
        *,
        group_id: str | None = None,
        access: str | None = None,
        principal_id: str | None = None,
        **details: Any,
    ) -> None:
        await self.store.append_audit(
            at=self.now(),
            action=action,
            actor=self.actor,
            group_id=group_id,
            access=access,
            principal_id=principal_id,
            details=details,
        )

    async def refuse(self, attempted: str, code: str, message: str, **target: Any) -> NoReturn:
        await self.audit("refused", attempted=attempted, code=code, reason=message, **target)
        raise Refused(code, message)

    async def require_valid(self, attempted: str, violations: list[Violation], **target: Any) -> None:
        if violations:
            await self.refuse(attempted, violations[0].code, "; ".join(v.message for v in violations), **target)

    async def roles(self) -> list[str]:
        return await self.store.roles_of(self.actor)

    async def require_valid_id(self, attempted: str, principal_id: str, **target: Any) -> None:
        try:
            valid_id(principal_id)
        except Refused as refused:
            await self.refuse(attempted, refused.code, str(refused), **target)

    async def require_known_actor(self, attempted: str) -> None:
        if await self.store.principal(self.actor) is None:
            await self.refuse(attempted, "unknown_actor", f"--as: no principal {self.actor!r}")

    async def acts_as_owner_only(self, group: GroupRow) -> bool:
        """True when the actor may manage this role-assignable group only as one of its
        owners. Such an owner changes its policy or makes active assignments only with
        MFA: ownership must not be a shortcut around the member policy."""
        if not group.role_assignable or set(await self.roles()) & authz.roles_that_manage(True):
            return False
        return await self.store.is_owner(group.id, self.actor, self.now())

    async def require_group_manager(self, attempted: str, group_id: str, **target: Any) -> GroupRow:
        """The group, when the actor may manage it (refused otherwise)."""
        await self.require_known_actor(attempted)
        group = await self.store.group(group_id)
        if group is None:
            await self.refuse(attempted, "group_not_found", f"group: no group {group_id!r}", group_id=group_id, **target)
        reason = authz.refuse_group_management(
            self.actor,
            await self.roles(),
            is_owner=await self.store.is_owner(group_id, self.actor, self.now()),
            group_id=group_id,
            role_assignable=group.role_assignable,
        )
        if reason:
            await self.refuse(attempted, "not_authorized", reason, group_id=group_id, **target)
        return group
