"""Schema of the store. Changes here need an Alembic migration
(`alembic -c pim/store/alembic.ini revision --autogenerate -m "..."`)."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import JSON, Boolean, DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


class UtcDateTime(TypeDecorator):
    """Instants stored in UTC and read back with their zone, on SQLite too
    (which otherwise returns naive datetimes)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UtcDateTime()}


class PrincipalRow(Base):
    __tablename__ = "principals"
    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # user | group
    display_name: Mapped[str] = mapped_column(String(256), default="")
    email: Mapped[str | None] = mapped_column(String(320))  # where email notifications go
    created_at: Mapped[datetime]


class DirectoryRoleRow(Base):
    __tablename__ = "directory_roles"
    principal_id: Mapped[str] = mapped_column(ForeignKey("principals.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(64), primary_key=True)


class GroupRow(Base):
    __tablename__ = "groups"
    id: Mapped[str] = mapped_column(ForeignKey("principals.id"), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # security | microsoft365 | dynamic | synced
    role_assignable: Mapped[bool] = mapped_column(Boolean, default=False)
    pim_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    enabled_at: Mapped[datetime | None]
    enabled_by: Mapped[str | None] = mapped_column(String(128))
    disabled_at: Mapped[datetime | None]
    disabled_by: Mapped[str | None] = mapped_column(String(128))


class PolicyRow(Base):
    __tablename__ = "policies"
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id"), primary_key=True)
    access: Mapped[str] = mapped_column(String(8), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, default=1)
    settings: Mapped[dict] = mapped_column(JSON)
    updated_at: Mapped[datetime]
    updated_by: Mapped[str] = mapped_column(String(128))


class AssignmentRow(Base):
    """Eligible or active assignment, with its lifecycle (who, when, why)."""

    __tablename__ = "assignments"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    group_id: Mapped[str] = mapped_column(ForeignKey("groups.id"))
    access: Mapped[str] = mapped_column(String(8))
    principal_id: Mapped[str] = mapped_column(ForeignKey("principals.id"))
    kind: Mapped[str] = mapped_column(String(8))  # eligible | active
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]  # None: permanent
    justification: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(128))
    removed_at: Mapped[datetime | None]
    removed_by: Mapped[str | None] = mapped_column(String(128))
    removal_reason: Mapped[str | None] = mapped_column(Text)
    # The last extension or renewal.
    updated_at: Mapped[datetime | None]
    updated_by: Mapped[str | None] = mapped_column(String(128))

    __table_args__ = (Index("ix_assignments_target", "group_id", "access", "principal_id"),)

    def state(self, at: datetime) -> str:
        if self.removed_at is not None:
            return "removed"
        if self.ends_at is not None and self.ends_at <= at:
            return "expired"
        return "scheduled" if self.starts_at > at else "active"


class GrantRow(Base):
    """One source of effective access: an active assignment or an activation.
    Access is held while at least one live source exists."""

    __tablename__ = "grants"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    group_id: Mapped[str] = mapped_column(String(128))
    access: Mapped[str] = mapped_column(String(8))
    principal_id: Mapped[str] = mapped_column(String(128))
    source_kind: Mapped[str] = mapped_column(String(16))  # assignment | activation
    source_id: Mapped[str] = mapped_column(String(400))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime | None]

    __table_args__ = (
        UniqueConstraint("source_kind", "source_id", name="uq_grants_source"),
        Index("ix_grants_target", "group_id", "access", "principal_id"),
        Index("ix_grants_principal", "principal_id", "access"),  # the groups a principal is a member of
    )


class MembershipRow(Base):
    """What the built-in directory holds: (group, access, principal) present or not."""

    __tablename__ = "memberships"
    group_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    access: Mapped[str] = mapped_column(String(8), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    since: Mapped[datetime]


class ActivationClaimRow(Base):
    """At most one running activation per (group, access, principal), whatever its id."""

    __tablename__ = "activation_claims"
    group_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    access: Mapped[str] = mapped_column(String(8), primary_key=True)
    principal_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    request_id: Mapped[str] = mapped_column(String(400))
    claimed_at: Mapped[datetime]

    __table_args__ = (Index("ix_activation_claims_request", "request_id"),)  # released by request id


class MfaEnrolmentRow(Base):
    __tablename__ = "mfa_enrolments"
    principal_id: Mapped[str] = mapped_column(ForeignKey("principals.id"), primary_key=True)
    method: Mapped[str] = mapped_column(String(16), default="totp")
    # Encrypted (pim/identity/secrets.py): "v1:<key id>:<base64 of nonce and ciphertext>".
    secret: Mapped[str] = mapped_column(String(256))
    enrolled_at: Mapped[datetime]
    # Replay protection: a TOTP time step is accepted once, by one request.
    last_step: Mapped[int | None] = mapped_column(Integer)
    last_step_request_id: Mapped[str | None] = mapped_column(String(400))
    # Guessing: wrong codes in a row, and the lock they earn (pim/identity/totp.py).
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    locked_until: Mapped[datetime | None]
    lockouts: Mapped[int] = mapped_column(Integer, default=0)  # in a row: each one doubles the lock


class ProofUseRow(Base):
    """Actor proofs already accepted (pim/identity/proofs.py): each proof id counts once.
    Rows outlive the proof's expiry only until `forget_expired_proofs` runs."""

    __tablename__ = "proof_uses"
    proof_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Who used it: the same use (an activity retry) is accepted again, any other is a replay.
    use_key: Mapped[str] = mapped_column(String(500))
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(32))
    target: Mapped[str] = mapped_column(String(400))
    used_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class AuditRow(Base):
    """Append-only: rows are inserted, never updated or deleted."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime]
    action: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(128))
    request_id: Mapped[str | None] = mapped_column(String(400))
    group_id: Mapped[str | None] = mapped_column(String(128))
    access: Mapped[str | None] = mapped_column(String(8))
    principal_id: Mapped[str | None] = mapped_column(String(128))
    details: Mapped[dict] = mapped_column(JSON, default=dict)
    # Idempotency for activity retries: the same event is written once.
    dedupe_key: Mapped[str | None] = mapped_column(String(500), unique=True)
    # Tamper evidence: SHA-256 over the previous row's hash and this row's content
    # (pim/store/audit.py). Rows written before the chain existed have none.
    prev_hash: Mapped[str | None] = mapped_column(String(64))
    row_hash: Mapped[str | None] = mapped_column(String(64))


class NotificationRow(Base):
    """The notification outbox: written in the same transaction as the audit line
    that causes it, delivered by the worker's dispatcher (pim/dispatch.py), one
    row per channel, so a mail server that is down never re-sends a webhook."""

    __tablename__ = "notifications"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    dedupe_key: Mapped[str] = mapped_column(String(500), unique=True)
    channel: Mapped[str] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict] = mapped_column(JSON)  # a pim.notifications.model.Notification
    created_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | sent | failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None]  # a dispatcher is sending it until then
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_notifications_due", "status", "next_attempt_at"),)
