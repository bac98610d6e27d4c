"""The years a run over dated data covered, and each finding a run resolved.

Revision ID: 0003
Revises: 0002

Until 0002 a run was compared with the last run of its scope whatever years its input covered,
and what it resolved was worked out again on every read. From 0003 a `batch` or `withdrawals` run
is compared, year by year, with the last run that covered that year (`run_years`), and what it
resolved is stored (`resolutions`). Runs recorded before are carried over as well as can be known:

* a withdrawal finding's `year` (null before) becomes its request date's year, the year its
  fingerprint already used;
* a `batch` or `withdrawals` run covered the years of its findings (what its input covered was
  not kept), compared with the run its summary names as `previous_run`;
* what each run resolved is the previous run's findings it does not have, as `runs show` printed.
"""

import datetime as dt
import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

#: Commands whose input is dated (pay dates, request dates): compared year by year.
DATED = ("batch", "withdrawals")


def upgrade() -> None:
    op.create_table(
        "run_years",
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("year", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("previous_run", sa.Integer),
        sa.Column("resolved", sa.Integer, nullable=False, server_default="0"),
    )
    op.create_index("ix_run_years_year", "run_years", ["year", "run_id"])
    op.create_table(
        "resolutions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("finding_id", sa.Integer, sa.ForeignKey("findings.id", ondelete="CASCADE"), nullable=False),
        sa.Column("fingerprint", sa.String(64), nullable=False),
    )
    op.create_index("ix_resolutions_run", "resolutions", ["run_id"])
    _carry_over(op.get_bind())


def _carry_over(connection) -> None:
    runs = sa.table("runs", sa.column("id", sa.Integer), sa.column("command", sa.String),
                    sa.column("ended_at", sa.DateTime), sa.column("counts", sa.JSON))
    findings = sa.table("findings", sa.column("id", sa.Integer), sa.column("run_id", sa.Integer),
                        sa.column("fingerprint", sa.String), sa.column("year", sa.Integer),
                        sa.column("event", sa.Text))
    run_years = sa.table("run_years", sa.column("run_id", sa.Integer), sa.column("year", sa.Integer),
                         sa.column("previous_run", sa.Integer), sa.column("resolved", sa.Integer))
    resolutions = sa.table("resolutions", sa.column("run_id", sa.Integer), sa.column("finding_id", sa.Integer),
                           sa.column("fingerprint", sa.String))

    years = []
    for finding_id, event in connection.execute(sa.select(findings.c.id, findings.c.event)
                                                .where(findings.c.year.is_(None))):
        request_date = json.loads(event).get("request_date")
        if request_date:
            years.append({"finding": finding_id, "year": dt.date.fromisoformat(str(request_date)[:10]).year})
    if years:
        connection.execute(findings.update().where(findings.c.id == sa.bindparam("finding"))
                           .values(year=sa.bindparam("year")), years)

    done = connection.execute(sa.select(runs.c.id, runs.c.command, runs.c.counts)
                              .where(runs.c.ended_at.is_not(None)).order_by(runs.c.id)).all()
    for run_id, command, counts in done:
        previous = (counts or {}).get("previous_run")
        resolved_years: dict[int | None, int] = {}
        if previous:
            have = set(connection.execute(sa.select(findings.c.fingerprint).where(findings.c.run_id == run_id))
                       .scalars())
            gone = [{"run_id": run_id, "finding_id": fid, "fingerprint": fp, "year": year}
                    for fid, fp, year in connection.execute(
                        sa.select(findings.c.id, findings.c.fingerprint, findings.c.year)
                        .where(findings.c.run_id == previous).order_by(findings.c.id))
                    if fp not in have]
            if gone:
                connection.execute(resolutions.insert(), [{k: g[k] for k in ("run_id", "finding_id", "fingerprint")}
                                                          for g in gone])
            for g in gone:
                resolved_years[g["year"]] = resolved_years.get(g["year"], 0) + 1
        if command in DATED:
            covered = set(connection.execute(sa.select(findings.c.year).distinct().where(
                findings.c.run_id == run_id, findings.c.year.is_not(None))).scalars())
            covered |= {year for year in resolved_years if year is not None}
            if covered:
                connection.execute(run_years.insert(), [
                    {"run_id": run_id, "year": year, "previous_run": previous, "resolved": resolved_years.get(year, 0)}
                    for year in sorted(covered)])


def downgrade() -> None:
    op.drop_table("resolutions")
    op.drop_table("run_years")
