"""Acknowledgements, and whether one covered each finding.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "acks",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("figures", sa.String(64), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("until", sa.Date),
        sa.Column("acknowledged_by", sa.String(256), nullable=False),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_acks_fingerprint", "acks", ["fingerprint"])
    with op.batch_alter_table("findings") as batch:
        batch.add_column(sa.Column("acknowledged", sa.Boolean, nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table("findings") as batch:
        batch.drop_column("acknowledged")
    op.drop_table("acks")
