"""Video items in banks: the media kind of an item and its sampled frames' signals.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bank_items") as batch:
        batch.add_column(sa.Column("media", sa.String(16), nullable=False, server_default="image"))
        batch.add_column(sa.Column("frames", sa.JSON, nullable=True))
        batch.add_column(sa.Column("frame_embeddings", sa.LargeBinary, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("bank_items") as batch:
        batch.drop_column("frame_embeddings")
        batch.drop_column("frames")
        batch.drop_column("media")
