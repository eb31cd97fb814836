"""Identity records: TOTP enrolments (secrets encrypted at rest, each time step
accepted once), OIDC tokens and actor proofs used up."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, cast

from sqlalchemy import CursorResult, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pim.domain.mfa_lockout import VERIFIED, MfaAttempt, MfaGuard, counted_attempt
from pim.store.admin import StoreError
from pim.store.audit import AuditOperations
from pim.store.tables import AuditRow, MfaEnrolmentRow, ProofUseRow

# Rounds of count_mfa_attempt's compare-and-set: each round at least one of the
# racing attempts wins, so this bounds how many may race at once.
COUNT_ROUNDS = 200


class SecretBox(Protocol):
    """Encrypts TOTP secrets for the store (pim/identity/secrets.py)."""

    def seal(self, principal_id: str, secret: str) -> str: ...

    def open(self, principal_id: str, stored: str) -> str: ...

    def is_sealed(self, stored: str) -> bool: ...


class IdentityOperations(AuditOperations):  # an OIDC token's use is an audit line
    sessions: async_sessionmaker[AsyncSession]
    secrets: SecretBox | None

    # --- TOTP and OIDC ---------------------------------------------------------

    async def enroll_mfa(self, principal_id: str, secret: str, at: datetime) -> None:
        sealed = self._secret_box().seal(principal_id, secret)
        async with self.sessions.begin() as session:
            row = await session.get(MfaEnrolmentRow, principal_id)
            if row is None:
                session.add(MfaEnrolmentRow(principal_id=principal_id, method="totp", secret=sealed, enrolled_at=at))
            else:
                row.secret, row.enrolled_at, row.last_step, row.last_step_request_id = sealed, at, None, None
                # A new secret: earlier guesses tell nothing about it (pim/domain/mfa_lockout.py).
                row.failed_attempts, row.locked_until, row.lockouts = 0, None, 0

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
        async with self.sessions.begin() as session:
            rows = [r for r in await session.scalars(select(MfaEnrolmentRow)) if not box.is_sealed(r.secret)]
            for row in rows:
                row.secret = box.seal(row.principal_id, row.secret)
        return len(rows)

    def _secret_box(self) -> SecretBox:
        if self.secrets is None:
            raise StoreError("mfa_key_missing", "MFA secrets are encrypted: this process needs PIM_MFA_SECRET_KEY")
        return self.secrets

    async def consume_totp_step(self, principal_id: str, step: int, request_id: str) -> bool:
        """Accept a TOTP time step once. The same request may present it again
        (an activity retry); any other use of that step or an older one is a replay."""
        # One conditional UPDATE, so that concurrent uses of a step cannot both win
        # (SQLite has no SELECT ... FOR UPDATE).
        async with self.sessions.begin() as session:
            taken = cast(  # an UPDATE's result is a CursorResult (Session.execute is typed for selects)
                CursorResult,
                await session.execute(
                    update(MfaEnrolmentRow)
                    .where(
                        MfaEnrolmentRow.principal_id == principal_id,
                        or_(MfaEnrolmentRow.last_step.is_(None), MfaEnrolmentRow.last_step < step),
                    )
                    .values(last_step=step, last_step_request_id=request_id)
                ),
            )
            if taken.rowcount == 1:
                return True
            row = await session.get(MfaEnrolmentRow, principal_id)
            return row is not None and row.last_step == step and row.last_step_request_id == request_id

    async def count_mfa_attempt(self, principal_id: str, at: datetime) -> MfaAttempt | None:
        """Count one TOTP attempt before its code is checked (pim/domain/mfa_lockout.py):
        refused while locked; the attempt that reaches the limit starts the lockout.
        None when the principal is not enrolled.

        A compare-and-set: read the counters, then one conditional UPDATE that holds
        only if nobody changed them meanwhile, else read again. Concurrent attempts
        are therefore counted one after the other and never pass the limit. (The read
        is a transaction of its own: on SQLite a read transaction that then writes
        after another writer committed fails instead of waiting.)"""
        for _ in range(COUNT_ROUNDS):
            async with self.sessions() as session:
                row = await session.get(MfaEnrolmentRow, principal_id)
                if row is None:
                    return None
                before = MfaGuard(row.failed_attempts, row.locked_until, row.lockouts)
            after = counted_attempt(before, at)
            if after is None:
                return MfaAttempt(before, None)
            async with self.sessions.begin() as session:
                counted = cast(
                    CursorResult,
                    await session.execute(
                        update(MfaEnrolmentRow)
                        .where(
                            MfaEnrolmentRow.principal_id == principal_id,
                            MfaEnrolmentRow.failed_attempts == before.failed_attempts,
                            MfaEnrolmentRow.lockouts == before.lockouts,
                            MfaEnrolmentRow.locked_until.is_not_distinct_from(before.locked_until),
                        )
                        .values(failed_attempts=after.failed_attempts, locked_until=after.locked_until, lockouts=after.lockouts)
                    ),
                )
            if counted.rowcount == 1:
                return MfaAttempt(before, after)
        raise StoreError("mfa_busy", f"mfa: too many attempts at once for {principal_id}; try again")

    async def mfa_code_accepted(self, principal_id: str) -> None:
        """A right code was accepted: the wrong codes in a row, the lock and its doubling reset."""
        async with self.sessions.begin() as session:
            await session.execute(
                update(MfaEnrolmentRow)
                .where(MfaEnrolmentRow.principal_id == principal_id)
                .values(failed_attempts=VERIFIED.failed_attempts, locked_until=VERIFIED.locked_until, lockouts=VERIFIED.lockouts)
            )

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
        try:
            async with self.sessions.begin() as session:
                session.add(
                    ProofUseRow(
                        proof_id=proof_id,
                        use_key=use_key,
                        actor=actor,
                        action=action,
                        target=target,
                        used_at=at,
                        expires_at=expires_at,
                    )
                )
            return True
        except IntegrityError:
            async with self.sessions() as session:
                row = await session.get(ProofUseRow, proof_id)
            return row is not None and row.use_key == use_key

    async def forget_expired_proofs(self, before: datetime) -> int:
        """Drop uses of proofs that expired before `before`: an expired proof is refused
        for its expiry anyway, so its row no longer guards anything."""
        async with self.sessions.begin() as session:
            result = cast(CursorResult, await session.execute(delete(ProofUseRow).where(ProofUseRow.expires_at < before)))
        return result.rowcount or 0
