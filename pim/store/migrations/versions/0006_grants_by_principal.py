"""grants looked up by principal

Eligibility through a group asks which groups the principal is an active member
of: without this index, every activation scanned the whole grants table.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-02 21:45:00
"""

from typing import Sequence, Union

from alembic import op

revision: str = "0006"
down_revision: Union[str, None] = "0005"
branch_labels: Union[str, Sequence[str], None] = None
depends_on: Union[str, Sequence[str], None] = None


def upgrade() -> None:
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.create_index("ix_grants_principal", ["principal_id", "access"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("grants", schema=None) as batch_op:
        batch_op.drop_index("ix_grants_principal")
