"""Posts' view and report counts as 64-bit integers: the platform's absolute view count of a viral post can pass
2**31 - 1, which PostgreSQL's INTEGER refuses (SQLite's INTEGER was always 64-bit; batch mode rebuilds the table).

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.alter_column("views", existing_type=sa.Integer, type_=sa.BigInteger, existing_nullable=False)
        batch.alter_column("reports", existing_type=sa.Integer, type_=sa.BigInteger, existing_nullable=False)


def downgrade() -> None:
    with op.batch_alter_table("posts") as batch:
        batch.alter_column("reports", existing_type=sa.BigInteger, type_=sa.Integer, existing_nullable=False)
        batch.alter_column("views", existing_type=sa.BigInteger, type_=sa.Integer, existing_nullable=False)
