"""The run-history tables, as SQLAlchemy Core metadata (the migrations build the same tables).

* `runs`: one row per recorded run: the command, its scope (the command, the plans and, where the
  command takes one, the year: which runs it may be compared with; a run over dated data adds
  the years its input covered, in `run_years`), inputs with their content hashes, the ruleset
  revision, start and end, the summary counts and the exit status. A run whose `ended_at` is
  null did not complete (it failed or was interrupted) and is never compared against.
* `findings`: one row per finding of a run: the fingerprint (see `fingerprint.py`), the hash of
  its figures, where it is (rule, severity, plan, employee, and year: the finding's, else its
  request date's), its status in that run (`new` or `recurring`), the run it was first seen in,
  whether an acknowledgement covered it, and the full event as JSON.
* `acks`: acknowledgements: a fingerprint known and accepted, with the figures it was accepted
  at, the reason, an optional last day, who made it and when.
* `run_years`: for a run over dated data (`batch`, `withdrawals`), each year its input covered,
  the run that year was compared with, and how many of that run's findings of the year it
  resolved. A later run of the same scope covering the year is compared with it.
* `run_plan_years`: the same, plan by plan: each (plan, year) the input covered, the run that
  plan's year was compared with, and how many of its findings it resolved. Findings are compared
  and resolved by this table (plan_id "*": every plan, for runs recorded before it existed);
  `run_years` sums it by year.
* `resolutions`: each finding a run resolved: the run, and the previous occurrence (a row of
  `findings` of the run it was compared with), so what got fixed reads back exactly as counted.
"""

from __future__ import annotations

from sqlalchemy import JSON, Boolean, Column, Date, DateTime, ForeignKey, Index, Integer, MetaData, String, Table, Text

metadata = MetaData()

runs = Table(
    "runs", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("command", String(32), nullable=False),
    Column("scope", String(64), nullable=False),
    Column("scope_label", Text, nullable=False),
    Column("run_key", String(64)),
    Column("inputs", JSON, nullable=False),
    Column("ruleset_revision", String(64)),
    Column("started_at", DateTime(timezone=True), nullable=False),
    Column("ended_at", DateTime(timezone=True)),
    Column("counts", JSON),
    Column("exit_status", Integer),
    Index("ix_runs_scope", "scope", "id"),
)

findings = Table(
    "findings", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Column("figures", String(64), nullable=False),
    Column("rule", String(128), nullable=False),
    Column("severity", String(16), nullable=False),
    Column("plan_id", String(256)),
    Column("employee_id", String(256)),
    Column("year", Integer),
    Column("status", String(16), nullable=False),
    Column("first_seen", Integer, nullable=False),
    Column("acknowledged", Boolean, nullable=False, default=False),
    Column("event", Text, nullable=False),
    Index("ix_findings_run", "run_id"),
)

acks = Table(
    "acks", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("fingerprint", String(64), nullable=False),
    Column("figures", String(64), nullable=False),
    Column("reason", Text, nullable=False),
    Column("until", Date),
    Column("acknowledged_by", String(256), nullable=False),
    Column("acknowledged_at", DateTime(timezone=True), nullable=False),
    Index("ix_acks_fingerprint", "fingerprint"),
)

run_years = Table(
    "run_years", metadata,
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("year", Integer, primary_key=True, autoincrement=False),
    Column("previous_run", Integer),
    Column("resolved", Integer, nullable=False, default=0),
    Index("ix_run_years_year", "year", "run_id"),
)

#: `run_plan_years.plan_id` of a row that covers every plan of the run's scope (runs recorded before migration 0004).
EVERY_PLAN = "*"

run_plan_years = Table(
    "run_plan_years", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("plan_id", String(256), nullable=False),
    Column("year", Integer, nullable=False),
    Column("previous_run", Integer),
    Column("resolved", Integer, nullable=False, default=0),
    Index("ix_run_plan_years_run", "run_id"),
    Index("ix_run_plan_years_cover", "year", "plan_id", "run_id"),
)

resolutions = Table(
    "resolutions", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("run_id", Integer, ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
    Column("finding_id", Integer, ForeignKey("findings.id", ondelete="CASCADE"), nullable=False),
    Column("fingerprint", String(64), nullable=False),
    Index("ix_resolutions_run", "run_id"),
)
