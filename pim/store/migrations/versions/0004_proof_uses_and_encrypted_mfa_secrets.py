"""proof uses and encrypted MFA secrets

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02 07:00:00
"""

from typing import Sequence, Union

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: Union[str, None] = "0003"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    op.create_table(
        "proof_uses",
        sa.Column("proof_id", sa.String(length=64), nullable=False),
        sa.Column("use_key", sa.String(length=500), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("target", sa.String(length=400), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("proof_id"),
    )
    op.create_index("ix_proof_uses_expires_at", "proof_uses", ["expires_at"], unique=False)
    # An encrypted secret is longer than the base32 text it replaces.
    with op.batch_alter_table("mfa_enrolments", schema=None) as batch_op:
        batch_op.alter_column("secret", existing_type=sa.String(length=64), type_=sa.String(length=256))


def downgrade() -> None:
    with op.batch_alter_table("mfa_enrolments", schema=None) as batch_op:
        batch_op.alter_column("secret", existing_type=sa.String(length=256), type_=sa.String(length=64))
    op.drop_index("ix_proof_uses_expires_at", table_name="proof_uses")
    op.drop_table("proof_uses")
