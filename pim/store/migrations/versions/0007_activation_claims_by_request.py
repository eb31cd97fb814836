"""activation claims looked up by request

Every activation that ends releases its claim by its request id: without this
index, each release scanned the whole claims table (one row per open
activation), a thousand times over when a thousand expire together.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 14:00:00
"""

from typing import Sequence, Union

from alembic import op

revision: str = "0007"
down_revision: Union[str, None] = "0006"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("activation_claims", schema=None) as batch_op:
        batch_op.create_index("ix_activation_claims_request", ["request_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("activation_claims", schema=None) as batch_op:
        batch_op.drop_index("ix_activation_claims_request")
