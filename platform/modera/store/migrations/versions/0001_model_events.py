"""Audit trail of model alias moves (promotions, rollbacks, moves made in the MLflow UI).

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_events",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(256), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("from_version", sa.String(32), nullable=True),
        sa.Column("to_version", sa.String(32), nullable=False),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("gate_passed", sa.Boolean, nullable=True),
        sa.Column("gate_summary", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_model_events_model_name", "model_events", ["model_name"])
    op.create_index("ix_model_events_created_at", "model_events", ["created_at"])


def downgrade() -> None:
    op.drop_table("model_events")
