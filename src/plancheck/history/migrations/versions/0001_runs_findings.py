"""Runs and their findings.

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
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("command", sa.String(32), nullable=False),
        sa.Column("scope", sa.String(64), nullable=False),
        sa.Column("scope_label", sa.Text, nullable=False),
        sa.Column("run_key", sa.String(64)),
        sa.Column("inputs", sa.JSON, nullable=False),
        sa.Column("ruleset_revision", sa.String(64)),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("counts", sa.JSON),
        sa.Column("exit_status", sa.Integer),
    )
    op.create_index("ix_runs_scope", "runs", ["scope", "id"])
    op.create_table(
        "findings",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
        sa.Column("figures", sa.String(64), nullable=False),
        sa.Column("rule", sa.String(128), nullable=False),
        sa.Column("severity", sa.String(16), nullable=False),
        sa.Column("plan_id", sa.String(256)),
        sa.Column("employee_id", sa.String(256)),
        sa.Column("year", sa.Integer),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("first_seen", sa.Integer, nullable=False),
        sa.Column("event", sa.Text, nullable=False),
    )
    op.create_index("ix_findings_run", "findings", ["run_id"])


def downgrade() -> None:
    op.drop_table("findings")
    op.drop_table("runs")
