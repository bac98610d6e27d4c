"""One employee's contribution election: input model, projection over the year, and checks.

The projection turns the election into pay periods from its start date to year end (amounts
already paid this year come in as year-to-date figures), builds the period facts, lets the
engine fire every rule on every period, and reports each rule at the first period it breaks.
It also reports the room left: the largest after-tax contribution that keeps 415(c) whole once
the employer match is counted, and the pay period in which 402(g) is reached.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import Field, ValidationError, model_validator

from .engine import Engine
from .errors import InputError, Problem
from .findings import Finding, build_finding
from .firings import fire_on_rows
from .limits import LimitTable
from .models import Strict
from .money import Cents, Ppm, apply_rate, format_cents
from .period_facts import EMPLOYER_AMOUNTS, PeriodRows, build_period_facts, plan_compensation
from .plan import Plan
from .plan_arrays import PlanArrays
from .rulebook import Rulebook
from .schedule import pay_dates
from .yamlio import read_document, validation_problems


def _exactly_one_of(model, first: str, second: str):
    if (getattr(model, first) is None) == (getattr(model, second) is None):
        raise ValueError(f"give exactly one of {first} or {second}")
    return model


class Compensation(Strict):
    """Pay: either a yearly figure (spread evenly over the year's pay dates) or a figure per pay date."""

    annual: Cents | None = None
    per_period: Cents | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Compensation":
        return _exactly_one_of(self, "annual", "per_period")


class EmployerPlans(Strict):
    """Year-to-date amounts in the employer's other defined contribution plans (controlled group).

    401(a)(30) and 415(c) count every plan of one employer (414(b), (c), (m); 415(f)), so these
    add to this plan's figures for the plan-level 402(g) limit, catch-up and annual additions.
    """

    pretax: Cents = 0
    roth: Cents = 0
    after_tax: Cents = 0
    employer_match: Cents = 0
    employer_nonelective: Cents = 0


class YearToDate(Strict):
    """Amounts already paid this year before the election's start date."""

    compensation: Cents | None = Field(default=None, description="Default: the annual pay's share of earlier pay dates")
    pretax: Cents = 0
    roth: Cents = 0
    after_tax: Cents = 0
    employer_match: Cents = 0
    employer_nonelective: Cents = 0
    other_plan_deferrals: Cents = Field(default=0, description="Deferrals this year in other, unrelated employers' "
                                        "plans (the individual's 402(g) limit only)")
    same_employer_plans: EmployerPlans = Field(
        default=EmployerPlans(), description="Amounts this year in the employer's other plans (401(a)(30), 415(c))")


class Employee(Strict):
    """The participant."""

    id: str = Field(min_length=1, max_length=64)
    birth_date: dt.date
    compensation: Compensation
    prior_year_fica_wages: Cents | None = Field(
        default=None, description="Prior-year W-2 box 3 wages from this employer: 0 for none (a new hire); "
        "omitted means unknown, which from 2026 matters for Roth catch-up")
    year_to_date: YearToDate = YearToDate()


class Contribution(Strict):
    """A contribution per pay period: a percentage of plan pay or a flat dollar amount."""

    percent: Ppm | None = None
    amount: Cents | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Contribution":
        return _exactly_one_of(self, "percent", "amount")


class Terms(Strict):
    """What the participant elects, from a start date to the end of that year."""

    start_date: dt.date
    pretax: Contribution | None = None
    roth: Contribution | None = None
    after_tax: Contribution | None = None


class ElectionFile(Strict):
    """An election document."""

    plan_id: str | None = Field(default=None, description="Must match the plan checked against, if given")
    employee: Employee
    election: Terms

    @model_validator(mode="after")
    def _plausible_birth_date(self) -> "ElectionFile":
        start, born = self.election.start_date, self.employee.birth_date
        if born >= start:
            raise ValueError("employee.birth_date must be before election.start_date")
        if start.year - born.year > 120:
            raise ValueError("employee.birth_date gives an age over 120")
        return self


def load_election(path: Path) -> ElectionFile:
    data = read_document(path)
    if not isinstance(data, dict):
        raise InputError(Problem(str(path), "", "an election must be a mapping with employee and election"))
    try:
        return ElectionFile.model_validate(data)
    except ValidationError as exc:
        raise validation_problems(exc, data, str(path)) from None


@dataclass(frozen=True)
class Projection:
    """The election laid out over the year's remaining pay dates."""

    rows: PeriodRows
    dates: list[dt.date]
    year: int


def _spread(annual: int, periods: int) -> np.ndarray:
    """An annual amount over pay periods, in whole cents that add up exactly."""
    edges = np.array([annual * i // periods for i in range(periods + 1)], dtype=np.int64)
    return np.diff(edges)


def project(election: ElectionFile, plan: Plan, limits: LimitTable, source: str) -> Projection:
    """Pay periods from the start date to year end with the elected amounts."""
    terms, employee = election.election, election.employee
    year = terms.start_date.year
    year_limits = limits.for_year(year, source=source, field="election.start_date")
    schedule = pay_dates(plan.payroll, year)
    dates = [d for d in schedule if d >= terms.start_date]
    if not dates:
        raise InputError(Problem(source, "election.start_date", f"no pay dates of plan {plan.plan_id} remain in {year} "
                                 f"after {terms.start_date}"))
    first = len(schedule) - len(dates)
    ytd = employee.year_to_date
    if employee.compensation.annual is not None:
        shares = _spread(employee.compensation.annual, len(schedule))
        comp = shares[first:]
        comp_before = ytd.compensation if ytd.compensation is not None else int(shares[:first].sum())
    else:
        comp = np.full(len(dates), employee.compensation.per_period, dtype=np.int64)
        comp_before = ytd.compensation or 0
    paid_before = comp_before + np.cumsum(comp) - comp
    plan_pay = plan_compensation(comp, paid_before, year_limits.compensation_401a17)

    def elected(contribution: Contribution | None) -> np.ndarray:
        if contribution is None:
            return np.zeros(len(dates), dtype=np.int64)
        if contribution.percent is not None:
            return apply_rate(plan_pay, contribution.percent)
        return np.full(len(dates), contribution.amount, dtype=np.int64)

    rows = PeriodRows(
        group_start=np.array([0]),
        plan_index=np.array([0]),
        year=np.array([year]),
        age=np.array([year - employee.birth_date.year]),
        prior_year_fica_wages=np.array([employee.prior_year_fica_wages or 0]),
        fica_known=np.array([employee.prior_year_fica_wages is not None]),
        other_plan_deferrals=np.array([ytd.other_plan_deferrals]),
        employer_other={k: np.full(len(dates), getattr(ytd.same_employer_plans, k), dtype=np.int64)
                        for k in EMPLOYER_AMOUNTS},
        period=np.arange(first + 1, len(schedule) + 1),
        amounts={"compensation": comp, "pretax": elected(terms.pretax), "roth": elected(terms.roth),
                 "after_tax": elected(terms.after_tax)},
        before={"compensation": np.array([comp_before]),
                **{k: np.array([getattr(ytd, k)]) for k in
                   ("pretax", "roth", "after_tax", "employer_match", "employer_nonelective")}},
        closes_year=np.array([True]),
    )
    return Projection(rows=rows, dates=dates, year=year)


@dataclass
class ElectionResult:
    """Findings, year-end projection and room for one election."""

    findings: list[Finding]
    summary: dict[str, Any]


def _milestone(facts: dict[str, np.ndarray], mask: np.ndarray, dates: list[dt.date]) -> dict[str, Any] | None:
    hits = np.flatnonzero(mask)
    if not len(hits):
        return None
    row = int(hits[0])
    return {"period": int(facts["period"][row]), "pay_date": dates[row].isoformat()}


def _after_tax_room(election: ElectionFile, plan: Plan, limits: LimitTable, arrays: PlanArrays,
                    projection: Projection, after_tax_cap: np.ndarray) -> dict[str, Any]:
    """Largest after-tax contribution per year and per period that keeps 415(c) whole.

    Worked on the election's one projection: only its after-tax column changes. `after_tax_cap`
    is the election's per-period after_tax_cap fact (the plan's % of pay cap).
    """
    if not plan.contributions.after_tax:
        return {"year": "0.00", "remaining": "0.00", "per_period": "0.00", "periods": 0,
                "reason": f"plan {plan.plan_id} does not accept after-tax contributions"}
    periods = len(projection.dates)

    def year_end(per_period: int) -> dict[str, int]:
        amounts = {**projection.rows.amounts, "after_tax": np.full(periods, per_period, dtype=np.int64)}
        facts = build_period_facts(replace(projection.rows, amounts=amounts), arrays, limits)
        return {k: int(v[-1]) for k, v in facts.items()}

    base = year_end(0)
    already = election.employee.year_to_date.after_tax
    limit = base["annual_additions_limit"]
    year_room = max(0, limit - (base["ytd_annual_additions"] - base["ytd_after_tax"]))
    remaining = max(0, year_room - already)
    per_period = remaining // periods
    if plan.match and "after_tax" in plan.match.sources:
        # After-tax money is matched: more after-tax brings more match, so search the largest that fits.
        low, high = 0, per_period
        while low < high:
            middle = (low + high + 1) // 2
            if year_end(middle)["ytd_annual_additions"] <= limit:
                low = middle
            else:
                high = middle - 1
        per_period = low
        remaining = per_period * periods
        year_room = already + remaining
    room = {"year": format_cents(year_room), "remaining": format_cents(remaining),
            "per_period": format_cents(per_period), "periods": periods,
            "annual_additions_limit": format_cents(limit)}
    if plan.contributions.max_after_tax_percent is not None:
        room["per_period_within_plan_max"] = format_cents(min(per_period, int(after_tax_cap.min())))
    return room


def check_election(election: ElectionFile, plan: Plan, limits: LimitTable, rulebook: Rulebook, engine: Engine,
                   source: str) -> ElectionResult:
    """Fire every period rule on every projected period; report each rule at its first period."""
    if election.plan_id is not None and election.plan_id != plan.plan_id:
        raise InputError(Problem(source, "plan_id", f"the election is for plan {election.plan_id!r} "
                                 f"but was checked against plan {plan.plan_id!r}"))
    arrays = PlanArrays.from_plans([plan])
    projection = project(election, plan, limits, source)
    facts = build_period_facts(projection.rows, arrays, limits)
    n = len(projection.dates)
    firings = fire_on_rows(engine["period"], facts, np.arange(n))
    first: dict[str, int] = {}
    affected: dict[str, int] = {}
    for row, rule_id in firings:
        first.setdefault(rule_id, row)
        affected[rule_id] = affected.get(rule_id, 0) + 1
    types = rulebook.fact_types("period")
    employee = election.employee
    findings = []
    rules = rulebook.rules["period"]
    for rule in sorted((r for r in rules if r.id in first), key=lambda r: first[r.id]):
        row = first[rule.id]
        at_row = {k: int(v[row]) for k, v in facts.items()}
        extra: dict[str, Any] = {"periods_affected": affected[rule.id]}
        if rule.report:
            end_amount = int(facts[rule.report.amount][-1])
            end_limit = int(facts[rule.report.limit][-1]) if rule.report.limit else 0
            extra.update(year_end_amount=format_cents(end_amount), year_end_excess=format_cents(end_amount - end_limit))
        context = {"plan_id": plan.plan_id, "employee_id": employee.id, "year": projection.year,
                   "period": at_row["period"], "pay_date": projection.dates[row].isoformat()}
        findings.append(build_finding(rule, at_row, types, context, extra))
    end = {k: int(v[-1]) for k, v in facts.items()}
    summary = {
        "plan_id": plan.plan_id,
        "employee_id": employee.id,
        "year": projection.year,
        "first_pay_date": projection.dates[0].isoformat(),
        "periods": n,
        "year_end": {name: format_cents(end[fact]) for name, fact in (
            ("compensation", "ytd_compensation"), ("deferrals", "ytd_deferrals"),
            ("deferrals_employer", "ytd_deferrals_employer"), ("deferrals_all_plans", "ytd_deferrals_all_plans"),
            ("catch_up", "ytd_catch_up"),
            ("after_tax", "ytd_after_tax"), ("employer_match", "ytd_employer_match"),
            ("employer_nonelective", "ytd_employer_nonelective"), ("annual_additions", "ytd_annual_additions"),
            ("deferral_limit", "deferral_limit"), ("individual_deferral_limit", "individual_deferral_limit"),
            ("annual_additions_limit", "annual_additions_limit"))},
        "limit_402g_reached": _milestone(facts, facts["ytd_deferrals_all_plans"] >= facts["limit_402g"], projection.dates),
        "deferral_limit_reached": _milestone(facts, facts["ytd_deferrals_all_plans"] >= facts["deferral_limit"],
                                             projection.dates),
        "after_tax_room": _after_tax_room(election, plan, limits, arrays, projection, facts["after_tax_cap"]),
    }
    return ElectionResult(findings=findings, summary=summary)
