"""An election and a batch over the same year of money give the same findings (hypothesis)."""

from __future__ import annotations

import csv
import io
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import ROOT, make_election, run_batch_files
from helpers.feeds import COLUMNS
from plancheck.checks.election import check_election
from plancheck.facts.period import build_period_facts
from plancheck.facts.plan_arrays import PlanArrays
from plancheck.facts.projection import project
from plancheck.money import format_cents
from plancheck.sinks import events

PLAN_IDS = ["acme-mega-backdoor", "bayside-safe-harbor", "cedar-tiered-match", "delta-annual-true-up",
            "evergreen-roth-only", "monthly-mega-backdoor"]


def amount(high: int):
    return st.one_of(st.none(), st.integers(min_value=0, max_value=high).map(lambda c: {"amount": c / 100}),
                     st.integers(min_value=0, max_value=600_000).map(lambda ppm: {"percent": ppm / 10_000}))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan_id=st.sampled_from(PLAN_IDS), year=st.sampled_from([2024, 2025, 2026]),
       age=st.sampled_from([35, 49, 50, 55, 59, 60, 63, 64]),
       annual_pay=st.integers(min_value=20_000, max_value=500_000),
       pretax=amount(300_000), roth=amount(150_000), after_tax=amount(800_000),
       wages=st.one_of(st.none(), st.sampled_from([0, 120_000, 150_000, 150_001, 300_000])),
       other=st.sampled_from([0, 0, 5_000, 24_500]))
def test_election_and_batch_agree(plan_id, year, age, annual_pay, pretax, roth, after_tax, wages, other,
                                  plans, rulebook, limits, engine, tmp_path_factory):
    """Every finding of the election appears in the batch at the same pay date with the same figures, and no other."""
    plan = plans[plan_id]
    terms = {k: v for k, v in (("pretax", pretax), ("roth", roth), ("after_tax", after_tax)) if v is not None}
    employee = {"year_to_date": {"other_plan_deferrals": other}}
    if wages is not None:
        employee["prior_year_fica_wages"] = wages
    election = make_election(f"{year - age}-07-01", f"{year}-01-01", {"annual": annual_pay}, terms, **employee)
    result = check_election(election, plan, limits, rulebook, engine, "property")
    # Rules about what only an election states (its percentage of pay against the plan's steps) are not feed rules.
    expected = {(f.rule, f.context["pay_date"], f.amount, f.limit) for f in result.findings
                if "feed" in rulebook.by_id[f.rule].inputs}

    # The same year as a payroll feed: the projected pay, contributions and employer deposits, row by row.
    projection = project(election, plan, limits, "property")
    facts = build_period_facts(projection.rows, PlanArrays.from_plans([plan]), limits)
    folder = tmp_path_factory.mktemp("feed")
    feed = folder / "feed.csv"
    with feed.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        for row, day in enumerate(projection.dates):
            money = [format_cents(int(facts[k][row])) for k in ("compensation", "pretax", "roth", "after_tax",
                                                                 "employer_match", "employer_nonelective")]
            writer.writerow([plan_id, "E-1", f"{year - age}-07-01", day.isoformat(), *money,
                             "" if wages is None else format_cents(wages * 100), format_cents(other * 100)])
    out = io.BytesIO()
    events.configure(out)
    run_batch_files(feed, ROOT / "plans", folder / "rejects.csv")
    found = [json.loads(line) for line in out.getvalue().splitlines()]
    got = {(f["rule"], f["pay_date"], _cents(f["amount"]), _cents(f["limit"])) for f in found if f.get("rule")}
    assert got == expected


def _cents(text: str | None) -> int | None:
    return None if text is None else int(text.replace(".", ""))
