"""The feed's rows as the law counts them: employee-years of limitation years, and the employer's totals.

A feed row is one pay date of one employee in one plan. The limits count by limitation year
(a row's employer money may belong to the year before its pay date) and by employer (401(a)(30)
and 415(c) add up every plan of a controlled group): `Entries.of` splits the rows into
employee-years of limitation years, `period_rows` groups them as the period facts take them
(facts/period.py), and `add_employer_totals` adds what the employer's other plans hold. An
election is laid out the same way, as PeriodRows, by facts/projection.py.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from plancheck.documents.feed.parse import Parsed, years_of
from plancheck.facts.period import EMPLOYER_AMOUNTS, PeriodRows


@dataclass
class Entries:
    """Accepted rows as the limits count them, sorted into employee-years in pay-date order.

    A row whose `limitation_year` is the year before its pay date is split in two: its pay and
    employee contributions stay in the pay date's year, its employer money joins the limitation
    year it was allocated for (Treas. Reg. 1.415(c)-1(b)(6)), after that year's own pay dates.
    A row left with nothing in its pay date's year is not an entry there.
    """

    row: np.ndarray                # parsed row of each entry
    year: np.ndarray               # year of the entry's employee-year
    employee_money: np.ndarray     # the entry carries the row's pay and employee contributions
    employer_money: np.ndarray     # the entry carries the row's match and nonelective money

    @classmethod
    def of(cls, parsed: Parsed, accepted: np.ndarray) -> "Entries":
        """`accepted`: the kept rows in (plan, employee, pay date) order, which is already employee-year
        order unless some row's employer money moves to the year before."""
        moved = parsed.limitation_year[accepted] != parsed.year[accepted]
        if not moved.any():
            every = np.ones(len(accepted), dtype=bool)
            return cls(row=accepted, year=parsed.year[accepted], employee_money=every, employer_money=every)
        own = sum(parsed.money[k][accepted] for k in ("compensation", "pretax", "roth", "after_tax"))
        stays = ~moved | (own > 0)
        main, extra = accepted[stays], accepted[moved]
        row = np.concatenate([main, extra])
        entries = cls(row=row, year=np.concatenate([parsed.year[main], parsed.limitation_year[extra]]),
                      employee_money=np.concatenate([np.ones(len(main), bool), np.zeros(len(extra), bool)]),
                      employer_money=np.concatenate([~moved[stays], np.ones(len(extra), bool)]))
        order = np.lexsort((parsed.pay_day[row], entries.year, parsed.employee[row], parsed.plan_index[row]))
        return cls(row=row[order], year=entries.year[order], employee_money=entries.employee_money[order],
                   employer_money=entries.employer_money[order])


def period_rows(parsed: Parsed, entries: Entries) -> PeriodRows:
    """The entries, grouped into employee-years, as PeriodRows."""
    rows = entries.row
    plan, employee, year = parsed.plan_index[rows], parsed.employee[rows], entries.year
    n = len(rows)
    new_group = np.ones(n, dtype=bool)
    new_group[1:] = (np.diff(plan) != 0) | (np.diff(employee) != 0) | (np.diff(year) != 0)
    starts = np.flatnonzero(new_group)
    counts = np.diff(np.append(starts, n))
    birth_year = years_of(parsed.birth_day[rows][starts])
    mine, employer = entries.employee_money, entries.employer_money
    if mine.all() and employer.all():  # no employer money moved to the year before: every entry carries it all
        money = {k: v[rows] for k, v in parsed.money.items()}
    else:
        money = {k: np.where(employer if k.startswith("employer_") else mine, v[rows], 0)
                 for k, v in parsed.money.items()}

    def per_group(values: np.ndarray, reduce=np.maximum) -> np.ndarray:
        return reduce.reduceat(values, starts) if n else starts

    return PeriodRows(
        group_start=starts, plan_index=plan[starts], year=year[starts], age=year[starts] - birth_year,
        prior_year_fica_wages=per_group(money["prior_year_fica_wages"]),
        fica_known=per_group(parsed.fica_known[rows] & mine, np.logical_or).astype(bool),
        other_plan_deferrals=per_group(money["other_plan_deferrals"]),
        period=np.arange(n) - np.repeat(starts, counts) + 1,
        amounts={k: money[k] for k in ("compensation", "pretax", "roth", "after_tax", "employer_match",
                                       "employer_nonelective")},
    )


def _segment_cumsum(values: np.ndarray, new_segment: np.ndarray) -> np.ndarray:
    """Running totals that restart wherever new_segment is true."""
    total = np.cumsum(values)
    starts = np.flatnonzero(new_segment)
    base = np.repeat((total - values)[starts], np.diff(np.append(starts, len(values))))
    return total - base


def add_employer_totals(employer_of: np.ndarray, parsed: Parsed, entries: Entries, rows: PeriodRows) -> None:
    """What the employer's other plans hold as of each entry (401(a)(30), 415(c) count them all).

    The entries of one employee-year in every plan of one employer are put in (pay date, plan)
    order and summed; what a plan's own entries account for is taken away again. Pay for 415(c)
    is the largest year's pay among the employer's plans (each plan's rows report the employee's pay);
    prior-year wages and other employers' deferrals are the employee's, whichever plan's rows carry them.
    `employer_of` is the employer code of each plan index (parsed.plan_index).
    """
    n = len(entries.row)
    if not n:
        return
    plan = parsed.plan_index[entries.row]
    employer = employer_of[plan]
    employee, year, day = parsed.employee[entries.row], entries.year, parsed.pay_day[entries.row]
    by_employer = np.lexsort((plan, day, year, employee, employer))
    new_person = np.ones(n, dtype=bool)
    keys = (employer[by_employer], employee[by_employer], year[by_employer])
    new_person[1:] = np.any([np.diff(k) != 0 for k in keys], axis=0)
    new_group = np.zeros(n, dtype=bool)
    new_group[rows.group_start] = True
    for name in EMPLOYER_AMOUNTS:
        values = rows.amounts[name]
        everyone = np.empty(n, dtype=np.int64)
        everyone[by_employer] = _segment_cumsum(values[by_employer], new_person)
        rows.employer_other[name] = everyone - _segment_cumsum(values, new_group)
    pay = np.add.reduceat(rows.amounts["compensation"], rows.group_start)
    person_of_row = np.empty(n, dtype=np.int64)
    person_of_row[by_employer] = np.cumsum(new_person) - 1
    person = person_of_row[rows.group_start]

    def across_plans(values: np.ndarray, reduce=np.maximum) -> np.ndarray:
        """The employee-year's figure over every plan of the employer, back on each plan's group."""
        out = np.zeros(int(person.max()) + 1, dtype=values.dtype)
        reduce.at(out, person, values)
        return out[person]

    rows.employer_compensation = across_plans(pay)
    # Per-person figures repeated on the rows of each plan: one value for the employee at this employer.
    rows.prior_year_fica_wages = across_plans(rows.prior_year_fica_wages.astype(np.int64))
    rows.other_plan_deferrals = across_plans(rows.other_plan_deferrals.astype(np.int64))
    rows.fica_known = across_plans(rows.fica_known.astype(bool), np.logical_or)
