"""Year-end test helpers: a test plan, census rows and files, and what a run corrected and fired."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from plancheck.documents.census import CENSUS_COLUMNS
from plancheck.documents.plan import Plan
from plancheck.money import format_cents

PLAN = "t-plan"


def plan(**overrides: Any) -> Plan:
    """A calendar-year plan with pretax, Roth and after-tax money, catch-up, no match, immediate entry."""
    doc: dict[str, Any] = {"plan_id": PLAN, "name": "Test plan", "payroll": {"frequency": "monthly"},
                           "contributions": {"pretax": True, "roth": True, "after_tax": True},
                           "catch_up": {"offered": True}}
    doc.update(overrides)
    return Plan.model_validate(doc)


def person(employee_id: str, pay: str, **values: Any) -> dict[str, Any]:
    """One census row: born 1990 (no catch-up), hired 2015, paid the same last year unless told."""
    row = {"plan_id": PLAN, "employee_id": employee_id, "birth_date": "1990-01-01", "hire_date": "2015-01-01",
           "compensation": pay, "prior_year_compensation": pay}
    row.update(values)
    return row


def write_census(path: Path, rows: list[dict[str, Any]], columns=CENSUS_COLUMNS) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        for row in rows:
            writer.writerow(row)
    return path


def by_employee(outcome, kind: str) -> dict[str, str]:
    return {c.employee_id: format_cents(c.amount) for c in outcome.corrections if c.kind == kind}


def rules_fired(outcome) -> set[str]:
    return {f.rule for f in outcome.findings}
