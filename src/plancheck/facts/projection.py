"""An election laid over the plan's remaining pay dates of the year, as period rows for the facts."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from plancheck.documents.election import Contribution, ElectionFile
from plancheck.documents.plan import Plan
from plancheck.errors import InputError, Problem
from plancheck.facts.period import EMPLOYER_AMOUNTS, PeriodRows, plan_compensation
from plancheck.facts.schedule import pay_dates
from plancheck.money import apply_rate
from plancheck.rulebook.limits import LimitTable


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


def off_step(election: ElectionFile, plan: Plan) -> bool:
    """Whether a percentage of the election falls between the steps the plan's payroll accepts
    (`contributions.percent_increment`: 5.5% where the plan takes whole percents)."""
    step = plan.contributions.percent_increment
    terms = election.election
    return any(c is not None and c.percent is not None and c.percent % step != 0
               for c in (terms.pretax, terms.roth, terms.after_tax))


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
        percent_off_step=np.array([off_step(election, plan)]),
    )
    return Projection(rows=rows, dates=dates, year=year)
