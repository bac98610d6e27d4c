"""The plans and years a run over dated data covered, each compared with the last run that covered it.

Revision ID: 0004
Revises: 0003

Until 0003 a `batch` or `withdrawals` run covered whole years: a run of one plan's feed resolved
the findings of every other plan of the scope in the years it covered, so plans whose feeds come
separately resolved each other's findings. From 0004 a run covers the (plan, year) pairs of the
rows (requests) it checked, and each finding is compared with the last run that covered its
plan and year (`run_plan_years`). Runs recorded before cover each of their years for every plan
(`plan_id` "*"), which is what they were compared as.
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

#: The plan_id of a row that covers every plan of the run's scope (a run recorded before 0004).
EVERY_PLAN = "*"


def upgrade() -> None:
    op.create_table(
        "run_plan_years",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("plan_id", sa.String(256), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("previous_run", sa.Integer),
        sa.Column("resolved", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_run_plan_years_run", "run_plan_years", ["run_id"])
    op.create_index("ix_run_plan_years_cover", "run_plan_years", ["year", "plan_id", "run_id"])
    connection = op.get_bind()
    run_years = sa.table("run_years", sa.column("run_id", sa.Integer), sa.column("year", sa.Integer),
                         sa.column("previous_run", sa.Integer), sa.column("resolved", sa.Integer))
    run_plan_years = sa.table("run_plan_years", sa.column("run_id", sa.Integer), sa.column("plan_id", sa.String),
                              sa.column("year", sa.Integer), sa.column("previous_run", sa.Integer),
                              sa.column("resolved", sa.Integer))
    connection.execute(run_plan_years.insert().from_select(
        ["run_id", "plan_id", "year", "previous_run", "resolved"],
        sa.select(run_years.c.run_id, sa.literal(EVERY_PLAN), run_years.c.year, run_years.c.previous_run,
                  run_years.c.resolved)))


def downgrade() -> None:
    op.drop_table("run_plan_years")
