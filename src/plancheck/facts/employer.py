"""What the law counts across an employer's plans at year end, person by person.

The plans whose documents name the same `employer` are one employer (controlled group, 414(b),
(c), (m)); an `employee_id` at one employer is one person however many of its plans list them.
Counted here, by person: the top-paid group and the officer limit (414(q)(3), 416(i)(1)(A)); the
402(g) limit the employer's plans police together (401(a)(30)) and the catch-up above it
(414(v)(2)(D): the employer's plans are one plan for the catch-up limit); an HCE's one deferral
and one contribution ratio from every plan of the employer they are eligible in (401(k)(3)(A),
last sentence; Treas. Reg. 1.401(k)-2(a)(3)(ii), 1.401(m)-2(a)(3)(ii)).

Where one person's amount must come from several plans (an excess deferral to give back, the
part of deferrals that is catch-up), it is taken from the plan holding the most of the person's
deferrals first, then the next, ties in plan_id order, each plan at most what the person
deferred in it: a plan can only give back money it holds.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from plancheck.documents.census import Census
from plancheck.documents.plan import Plan
from plancheck.facts.by_person import fill_in_order
from plancheck.facts.calendar import add_months

if TYPE_CHECKING:
    from plancheck.facts.figures import Figures


def _day(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days


def _add_months(days: np.ndarray, months: int) -> np.ndarray:
    return add_months(days, months)


@dataclass
class Employers:
    """Who is one person at one employer: the plans of an employer (their documents' `employer`, else their
    plan_id) share a top-paid group and an officer limit (414(q), 416(i)), counted by person, not by row."""

    person: np.ndarray                   # (rows,) a person's number: the same employee_id at the same employer
    rows: dict[str, np.ndarray]          # employer -> its rows, in every plan of it
    #: Every employer has one plan here, so a person is a row.
    one_row_each: bool = False
    #: (employer, first plan year) -> (key officers as a mask of every census row, the limit on them)
    officers: dict[tuple[str, bool], tuple[np.ndarray, int]] = field(default_factory=dict)

    @classmethod
    def of(cls, census: Census, plans: list[Plan]) -> "Employers":
        names = sorted({p.employer_id for p in plans})
        code = np.array([names.index(p.employer_id) for p in plans], dtype=np.int64)
        row_employer = code[census.plan] if census.rows else np.zeros(0, dtype=np.int64)
        rows = {name: np.flatnonzero(row_employer == k) for k, name in enumerate(names)}
        if len(names) == len(plans):  # a plan per employer: an employee_id is once in its plan (census.py), one row each
            return cls(person=np.arange(census.rows, dtype=np.int64), rows=rows, one_row_each=True)
        ids = pc.dictionary_encode(pa.array(census.employee_id, type=pa.string())).indices
        person = ids.to_numpy(zero_copy_only=False).astype(np.int64) * len(names) + row_employer
        return cls(person=person, rows=rows)

    def persons(self, rows: np.ndarray, flags: np.ndarray) -> int:
        """How many people of `rows` have a row with the flag set."""
        return int(flags.sum()) if self.one_row_each else len(np.unique(self.person[rows][flags]))

    def total(self, values: np.ndarray, members: np.ndarray | None = None) -> np.ndarray:
        """Each row's person's sum of `values` over their member rows (all rows when None); other rows keep theirs."""
        return self._combine(values, members, np.add)

    def most(self, values: np.ndarray, members: np.ndarray | None = None) -> np.ndarray:
        """Each row's person's largest value over their member rows; other rows keep theirs."""
        return self._combine(values, members, np.maximum)

    def _combine(self, values: np.ndarray, members: np.ndarray | None, ufunc) -> np.ndarray:
        out = np.array(values, dtype=np.int64, copy=True)
        if self.one_row_each or not len(values):
            return out
        chosen = np.ones(len(values), dtype=bool) if members is None else members
        if not chosen.any():
            return out
        people, inverse = np.unique(self.person[chosen], return_inverse=True)
        start = np.zeros(len(people), dtype=np.int64) if ufunc is np.add else np.full(len(people), np.iinfo(np.int64).min)
        ufunc.at(start, inverse, values[chosen])
        out[chosen] = start[inverse]
        return out

    def take_in_order(self, totals: np.ndarray, capacity: np.ndarray, plan_ids: np.ndarray) -> np.ndarray:
        """Split each person's total (the same figure on each of their rows) over their rows: the row with the most
        `capacity` first, ties in plan_id order, each row at most its capacity. One row each: min(total, capacity)."""
        totals = np.maximum(np.asarray(totals, dtype=np.int64), 0)
        if self.one_row_each or not len(totals):
            return np.minimum(totals, capacity)
        return fill_in_order(np.lexsort((plan_ids, -capacity, self.person)), self.person, totals,
                             np.asarray(capacity, dtype=np.int64))


@dataclass
class Deferrals:
    """Per row: the catch-up part of the deferrals, the excess to give back from this plan, and the person's total."""

    catch_up: np.ndarray
    excess: np.ndarray
    employer_total: np.ndarray          # the person's deferrals in every plan of the employer


def deferral_limits(employers: Employers, plan_ids: np.ndarray, deferrals: np.ndarray, limit_402g: int,
                    catch_up_limit: np.ndarray, by_age: np.ndarray, other_employers: np.ndarray,
                    above_415: np.ndarray, above_plan_cap: np.ndarray) -> Deferrals:
    """402(g) as the employer's plans police it together (401(a)(30)), and the catch-up above it.

    Catch-up is the part of deferrals above the first applicable limit (Treas. Reg. 1.414(v)-1(b)(1)): the
    402(g) figure on the person's deferrals in all the employer's plans, 415(c), or the plan's cap; up to the
    person's catch-up limit, once for the employer (414(v)(2)(D)). The excess to give back is the larger of the
    plan-level one (the employer's plans' deferrals above 402(g) and the catch-up they permit) and the
    individual's (402(g)(1): other employers' deferrals too, the catch-up by age whatever the plans offer), at
    most what was deferred.
    """
    total = employers.total(deferrals)
    limit = employers.most(catch_up_limit)
    above_402g = employers.take_in_order(total - limit_402g, deferrals, plan_ids)
    catch_up = np.minimum(np.minimum(catch_up_limit, deferrals), np.maximum(np.maximum(above_402g, above_415),
                                                                           above_plan_cap))
    if not employers.one_row_each:  # the catch-up limit is the person's, once across the employer's plans
        catch_up = employers.take_in_order(np.minimum(employers.total(catch_up), limit), catch_up, plan_ids)
    individual = total + employers.most(other_employers) - limit_402g - employers.most(by_age)
    person_excess = np.clip(np.maximum(total - limit_402g - limit, individual), 0, total)
    excess = employers.take_in_order(person_excess, deferrals, plan_ids)
    return Deferrals(catch_up=catch_up, excess=excess, employer_total=total)


def counted(census: Census, rows: np.ndarray, figures: "Figures", year: int) -> tuple[np.ndarray, np.ndarray]:
    """(employed, counted) of `rows` in `year`: hired by its end, and of those the ones not excluded under
    414(q)(5) by age or service (Treas. Reg. 1.414(q)-1T A-9(b)), as the top-paid group and the officer limit count."""
    year_end = _day(dt.date(year, 12, 31))
    hire, birth = census.hire[rows], census.birth[rows]
    employed = hire <= year_end
    counted = (employed & (_add_months(birth, 12 * figures.top_paid_age) <= year_end)
               & (_add_months(hire, figures.top_paid_service_months) <= year_end + 1))
    return employed, counted


def top_paid(census: Census, rows: np.ndarray, figures: "Figures", employers: Employers) -> np.ndarray:
    """Rows (of `rows`, the rows of one employer) in the top-paid group of the look-back year (414(q)(3), Treas.
    Reg. 1.414(q)-1T A-9): the group is the employer's, of people (someone in two of its plans counts once)."""
    employed, counted_rows = counted(census, rows, figures, figures.year - 1)
    size = int((Decimal(employers.persons(rows, counted_rows)) * figures.top_paid_percent / 100 + Decimal("0.5")) // 1)
    return highest_paid(employers.person[rows], employed, census.prior_year_compensation[rows], size)


def highest_paid(person: np.ndarray, candidate: np.ndarray, pay: np.ndarray, size: int) -> np.ndarray:
    """The rows of the `size` highest paid people among the candidate rows (a person's pay: the most any of their
    rows shows; ties in census order), as a mask of the rows."""
    rows = np.flatnonzero(candidate)
    if not len(rows) or size <= 0:
        return np.zeros(len(person), dtype=bool)
    people, first = np.unique(person[rows], return_index=True)
    best = np.zeros(len(people), dtype=np.int64)
    np.maximum.at(best, np.searchsorted(people, person[rows]), pay[rows])
    ranked = people[np.lexsort((first, -best))]
    members = np.isin(person, ranked[:size])
    return members & candidate


def key_officers(census: Census, rows: np.ndarray, plan: Plan, figures: "Figures", employers: Employers,
                 first: bool) -> tuple[np.ndarray, int]:
    """Which of a plan's rows are officers who are key employees, and the limit on them (416(i)(1)(A)).

    Officers are the employer's, of the determination year: those paid above its 416(i) figure, no
    more than 50 of them, or if fewer the greater of 3 and 10% of the employer's employees (a
    fraction raised to the next whole number, Treas. Reg. 1.416-1, T-14; employees excluded under
    414(q)(5) by age or service not counted): the highest paid, ties in census order.
    """
    cached = employers.officers.get((plan.employer_id, first))
    if cached is None:  # once per employer (and determination year), whichever of its plans asks first
        year = figures.year if first else figures.year - 1
        scope = employers.rows[plan.employer_id]
        pay = census.compensation[scope] if first else census.prior_year_compensation[scope]
        threshold = figures.key_officer_pay_first_year if first else figures.key_officer_pay
        people = employers.persons(scope, counted(census, scope, figures, year)[1])
        limit = min(figures.officer_limit, max(figures.officer_minimum,
                                               math.ceil(Decimal(people) * figures.officer_percent / 100)))
        mask = np.zeros(census.rows, dtype=bool)
        mask[scope] = highest_paid(employers.person[scope], census.officer[scope] & (pay > threshold), pay, limit)
        cached = employers.officers[(plan.employer_id, first)] = (mask, limit)
    mask, limit = cached
    return mask[rows], limit
