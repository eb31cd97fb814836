"""Identity records: TOTP enrolments (secrets encrypted at rest, each time step
accepted once), OIDC tokens and actor proofs used up."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, cast

from sqlalchemy import CursorResult, delete, select
from sqlalchemy.orm import Session

from pim.domain.mfa_lockout import VERIFIED, MfaAttempt, MfaGuard, counted_attempt
from pim.store.admin import StoreError
from pim.store.audit import AuditOperations
from pim.store.sessions import insert_new
from pim.store.tables import AuditRow, MfaEnrolmentRow, ProofUseRow


@dataclass(frozen=True)
class TotpUse:
    """What one TOTP attempt came to (`use_totp`)."""

    attempt: MfaAttempt | None  # None: not enrolled
    step: int | None = None  # the time step the code matched, if any
    accepted: bool = False  # matched, and the step was this use's to take


class SecretBox(Protocol):
    """Encrypts TOTP secrets for the store (pim/identity/secrets.py)."""

    def seal(self, principal_id: str, secret: str) -> str: ...

    def open(self, principal_id: str, stored: str) -> str: ...

    def is_sealed(self, stored: str) -> bool: ...


class IdentityOperations(AuditOperations):  # an OIDC token's use is an audit line
    secrets: SecretBox | None

    # --- TOTP and OIDC ---------------------------------------------------------

    async def enroll_mfa(self, principal_id: str, secret: str, at: datetime) -> None:
        sealed = self._secret_box().seal(principal_id, secret)

        def work(session: Session) -> None:
            row = session.get(MfaEnrolmentRow, principal_id)
            if row is None:
                session.add(MfaEnrolmentRow(principal_id=principal_id, method="totp", secret=sealed, enrolled_at=at))
            else:
                row.secret, row.enrolled_at, row.last_step, row.last_step_request_id = sealed, at, None, None
                # A new secret: earlier guesses tell nothing about it (pim/domain/mfa_lockout.py).
                row.failed_attempts, row.locked_until, row.lockouts = 0, None, 0

        await self.transact(work)

    async def mfa_secret(self, principal_id: str) -> str | None:
        """The principal's TOTP secret in clear, or None when not enrolled; StoreError
        when this process holds no key to read it."""
        async with self.sessions() as session:
            row = await session.get(MfaEnrolmentRow, principal_id)
        return self._secret_box().open(principal_id, row.secret) if row else None

    async def seal_plain_mfa_secrets(self) -> int:
        """Encrypt secrets written in clear before they were encrypted at rest (a
        development store); returns how many. Idempotent."""
        box = self._secret_box()

        def work(session: Session) -> int:
            rows = [r for r in session.scalars(select(MfaEnrolmentRow)) if not box.is_sealed(r.secret)]
            for row in rows:
                row.secret = box.seal(row.principal_id, row.secret)
            return len(rows)

        return await self.transact(work)

    def _secret_box(self) -> SecretBox:
        if self.secrets is None:
            raise StoreError("mfa_key_missing", "MFA secrets are encrypted: this process needs PIM_MFA_SECRET_KEY")
        return self.secrets

    async def use_totp(self, principal_id: str, at: datetime, match: Callable[[str], int | None], use_key: str) -> TotpUse:
        """One TOTP attempt, in one transaction (pim/domain/mfa_lockout.py): counted
        first, and refused unchecked while the principal's MFA is locked (the attempt
        that reaches the limit starts the lockout); then `match(secret)` gives the
        time step the code matches, or None; a matching step is used up, accepted
        once, by one use (`use_key`, an activity retry, may present it again; any
        other use of that step or an older one is a replay); an accepted code resets
        the counters, a refused one stays counted. `attempt` is None when the
        principal is not enrolled.

        Attempts at one principal's code are serialized by the enrolment's row
        (SELECT ... FOR UPDATE on PostgreSQL; on SQLite the transaction holds the
        database's write lock), so they are counted one after the other and never
        pass the limit, and of two uses of one step only one wins."""
        return await self.transact(lambda session: self.totp_use_in(session, principal_id, at, match, use_key))

    def totp_use_in(
        self, session: Session, principal_id: str, at: datetime, match: Callable[[str], int | None], use_key: str
    ) -> TotpUse:
        """`use_totp` inside the caller's write transaction (`transact`)."""
        row = session.get(MfaEnrolmentRow, principal_id, with_for_update=True)
        if row is None:
            return TotpUse(attempt=None)
        before = MfaGuard(row.failed_attempts, row.locked_until, row.lockouts)
        attempt = MfaAttempt(before, counted_attempt(before, at))
        if attempt.after is None:
            return TotpUse(attempt=attempt)
        step = match(self._secret_box().open(principal_id, row.secret))
        mine = row.last_step == step and row.last_step_request_id == use_key
        accepted = step is not None and (row.last_step is None or row.last_step < step or mine)
        guard = VERIFIED if accepted else attempt.after
        if accepted:
            row.last_step, row.last_step_request_id = step, use_key
        row.failed_attempts, row.locked_until, row.lockouts = guard.failed_attempts, guard.locked_until, guard.lockouts
        return TotpUse(attempt=attempt, step=step, accepted=accepted)

    async def consume_totp_step(self, principal_id: str, step: int, request_id: str) -> bool:
        """Accept a TOTP time step once, outside an attempt (`use_totp` does both).
        The same request may present it again (an activity retry); any other use of
        that step or an older one is a replay."""

        def work(session: Session) -> bool:
            row = session.get(MfaEnrolmentRow, principal_id, with_for_update=True)
            if row is None:
                return False
            if row.last_step is None or row.last_step < step:
                row.last_step, row.last_step_request_id = step, request_id
                return True
            return row.last_step == step and row.last_step_request_id == request_id

        return await self.transact(work)

    async def mfa_guard(self, principal_id: str) -> MfaGuard | None:
        """The lockout counters of the principal's enrolment, None when not enrolled."""
        async with self.sessions() as session:
            row = await session.get(MfaEnrolmentRow, principal_id)
        return MfaGuard(row.failed_attempts, row.locked_until, row.lockouts) if row else None

    async def consume_mfa_token(self, principal_id: str, token_id: str, request_id: str, at: datetime) -> bool:
        """Accept an OIDC token once (`token_id`: a digest of its issuer and jti, or of
        the whole token; pim/oidc.py). The same request may present it again (an
        activity retry); any other use is a replay."""
        # No table of its own yet: an audit line whose unique dedupe key is the token
        # id. The insert is atomic, so two concurrent uses cannot both win, and the
        # log is append-only, so a used token stays used.
        key = f"mfa-token:{token_id}"
        written = await self.append_audit(  # chained like every line (pim/store/audit.py)
            at=at,
            action="mfa_token_used",
            actor=principal_id,
            principal_id=principal_id,
            request_id=request_id.split("#")[0],
            details={"run_key": request_id},
            dedupe_key=key,
        )
        if written:
            return True
        async with self.sessions() as session:
            row = await session.scalar(select(AuditRow).where(AuditRow.dedupe_key == key))
        return row is not None and row.principal_id == principal_id and (row.details or {}).get("run_key") == request_id

    # --- actor proofs ---------------------------------------------------------

    async def use_proof(
        self, proof_id: str, *, use_key: str, actor: str, action: str, target: str, at: datetime, expires_at: datetime
    ) -> bool:
        """Accept a proof once. The same use (`use_key`: an activity retry) may present
        it again; any other use is a replay. Atomic: of two concurrent uses one wins."""
        return await self.transact(
            lambda session: self.proof_use_in(
                session, proof_id, use_key=use_key, actor=actor, action=action, target=target, at=at, expires_at=expires_at
            )
        )

    def proof_use_in(
        self,
        session: Session,
        proof_id: str,
        *,
        use_key: str,
        actor: str,
        action: str,
        target: str,
        at: datetime,
        expires_at: datetime,
    ) -> bool:
        """`use_proof` inside the caller's write transaction (`transact`)."""
        values = dict(
            proof_id=proof_id, use_key=use_key, actor=actor, action=action, target=target, used_at=at, expires_at=expires_at
        )
        if insert_new(session, ProofUseRow, **values):
            return True
        return session.scalar(select(ProofUseRow.use_key).where(ProofUseRow.proof_id == proof_id)) == use_key

    async def forget_expired_proofs(self, before: datetime) -> int:
        """Drop uses of proofs that expired before `before`: an expired proof is refused
        for its expiry anyway, so its row no longer guards anything."""
        statement = delete(ProofUseRow).where(ProofUseRow.expires_at < before)
        result = await self.transact(lambda session: cast(CursorResult, session.execute(statement)))
        return result.rowcount or 0
