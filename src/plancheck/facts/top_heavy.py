"""Top-heavy (416) by aggregation group: key employees, the balances that count, the groups, the minimum.

Key employees are those of the year holding the determination date (the prior plan year; the plan
year itself in a first plan year, 416(g)(4)(C)). A balance counts on the determination date with the
distributions of the `distributions_1yr` and `distributions_5yr` census columns added back (416(g)(3)),
unless its owner performed no service in the year ending on it (416(g)(4)(E)) or is a former key
employee who is not key now (416(g)(4)(B)).

The decision is the aggregation group's (416(g)(2)): the employer's plans in which a key employee
participates, with the plans aggregated with them to meet 401(a)(4) or 410(b) (`top_heavy:
coverage_group`), are one required group; an employer may add other plans of its own (`top_heavy:
permissive_aggregation_group`), naming every plan of the required group too. Each plan of the
required group is top-heavy when the deciding group (the permissive one if any, else the required)
is (Treas. Reg. 1.416-1, T-6, T-7, T-9); a plan outside the required group never is. The minimum
(416(c)(2)) is the lesser of 3% and the highest key employee rate in the group, catch-up of the year
left out (Treas. Reg. 1.414(v)-1(d)(3)); a non-key person gets it once, in the first of their
top-heavy plans (plan_id order), counting the employer money they have in all of them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING

import numpy as np

from plancheck.documents.census import Census
from plancheck.documents.plan import Plan
from plancheck.errors import InputError, Problem
from plancheck.facts.employer import Employers, key_officers
from plancheck.facts.leveling import WHOLE

if TYPE_CHECKING:
    from plancheck.facts.employees import Employees
    from plancheck.facts.figures import Figures

#: Bits of `key_reasons`: why an employee is a key employee.
KEY_OFFICER, KEY_FIVE_PERCENT_OWNER, KEY_ONE_PERCENT_OWNER = 1, 2, 4


def _day(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days


@dataclass
class PlanTopHeavy:
    """One plan's top-heavy figures: those of the group that decides for it."""

    facts: dict[str, int]
    group: list[str]                  # plan_ids of the deciding group (the plan alone when it is in none)
    aggregation: str | None           # "required", "permissive" or None (tested alone)
    minimum_rate: tuple[int, int]     # the minimum as an exact fraction of pay


def _keys(census: Census, plans: list[Plan], figures: "Figures", emp: "Employees",
          employers: Employers) -> tuple[np.ndarray, np.ndarray]:
    """(key_reasons, officers paid above 416(i) who are not key because of the officer limit) for every row."""
    reasons = np.zeros(census.rows, dtype=np.int64)
    beyond = np.zeros(census.rows, dtype=bool)
    for code, plan in enumerate(plans):
        rows = np.flatnonzero(census.plan == code)
        if not len(rows):
            continue
        first = plan.nondiscrimination_testing.first_plan_year
        pay = census.compensation[rows] if first else census.prior_year_compensation[rows]
        own = emp.ownership[rows] if first else emp.prior_year_ownership[rows]
        officer_pay = figures.key_officer_pay_first_year if first else figures.key_officer_pay
        paid_above = census.officer[rows] & (pay > officer_pay)
        officers, _ = key_officers(census, rows, plan, figures, employers, first)
        reasons[rows] = (np.where(officers, KEY_OFFICER, 0)
                         | np.where(own > figures.five_percent_ppm, KEY_FIVE_PERCENT_OWNER, 0)
                         | np.where((own > figures.one_percent_ppm) & (pay > figures.one_percent_pay),
                                    KEY_ONE_PERCENT_OWNER, 0))
        beyond[rows] = paid_above & ~officers
    return reasons, beyond


def _groups(plans: list[Plan], has_key: list[bool]) -> tuple[list[bool], dict[int, list[int]]]:
    """(in the required group, per plan code the codes of its deciding group) for every plan."""
    required = list(has_key)
    for plan_code, plan in enumerate(plans):  # plans aggregated for coverage with a required plan are required
        name = plan.top_heavy.coverage_group
        if name and any(required[c] for c, p in enumerate(plans)
                        if p.employer_id == plan.employer_id and p.top_heavy.coverage_group == name):
            required[plan_code] = True
    deciding: dict[int, list[int]] = {}
    problems = []
    for kind in ("coverage_group", "permissive_aggregation_group"):  # a group is one employer's plans (416(g)(2))
        employers_of: dict[str, set[str]] = {}
        for plan in plans:
            if name := getattr(plan.top_heavy, kind):
                employers_of.setdefault(name, set()).add(plan.employer_id)
        problems += [Problem(f"top_heavy.{kind} {name}", "employer", "plans of one employer (the same `employer`)",
                             got=", ".join(sorted(owners))) for name, owners in employers_of.items() if len(owners) > 1]
    for employer in sorted({p.employer_id for p in plans}):
        codes = [c for c, p in enumerate(plans) if p.employer_id == employer]
        core = [c for c in codes if required[c]]
        names = sorted({plans[c].top_heavy.permissive_aggregation_group for c in codes} - {None})
        permissive = [c for c in codes if plans[c].top_heavy.permissive_aggregation_group] if names else []
        if names and core:
            missing = [plans[c].plan_id for c in core if plans[c].top_heavy.permissive_aggregation_group != names[0]]
            if len(names) > 1 or missing:
                problems.append(Problem(
                    f"plans of employer {employer}", "top_heavy.permissive_aggregation_group",
                    "one permissive aggregation group that names every plan of the required aggregation group "
                    "(IRC 416(g)(2)(A)(ii); Treas. Reg. 1.416-1, T-7)",
                    got=f"groups {names}; required-group plans not in {names[0]!r}: {missing}"))
                continue
        for c in codes:
            if required[c]:
                deciding[c] = permissive or core
            elif c in permissive and core:
                deciding[c] = permissive
            else:
                deciding[c] = [c]
    if problems:
        raise InputError(problems)
    return required, deciding


def top_heavy(census: Census, plans: list[Plan], figures: "Figures", emp: "Employees", employers: Employers,
              match_left: np.ndarray, exempt: list[bool], no_service_years: int,
              plan_rank: np.ndarray) -> list[PlanTopHeavy]:
    """Every plan's top-heavy figures (plans[i] is census plan code i); fills emp.key, key_reasons and
    top_heavy_minimum."""
    money = census.money
    reasons, beyond = _keys(census, plans, figures, emp, employers)
    key = reasons > 0
    emp.key[:], emp.key_reasons[:] = key, reasons
    first = np.array([p.nondiscrimination_testing.first_plan_year for p in plans], dtype=bool)[census.plan] \
        if len(plans) else np.zeros(0, bool)
    window_start = np.where(first, _day(dt.date(figures.year - no_service_years + 1, 1, 1)),
                            _day(dt.date(figures.year - no_service_years, 1, 1)))
    served = census.termination >= window_start                         # 416(g)(4)(E)
    former = census.former_key & ~key                                   # 416(g)(4)(B)
    balance = np.where(served & ~former, money["account_balance"] + money["distributions_1yr"]
                       + money["distributions_5yr"], 0)
    has_key = [bool(key[census.plan == c].any()) for c in range(len(plans))]
    required, deciding = _groups(plans, has_key)

    # Contributions of the year the minimum compares: catch-up left out of the key employees' (1.414(v)-1(d)(3)).
    deferrals = money["pretax"] + money["roth"]
    employer_money = match_left + money["employer_nonelective"]
    key_given = np.maximum(deferrals - emp.catch_up - emp.recharacterized, 0) + employer_money
    plan_codes = np.asarray(census.plan, dtype=np.int64)
    end = _day(dt.date(figures.year, 12, 31))
    out = []
    heavy_plans = np.zeros(len(plans), dtype=bool)
    group_figures: dict[tuple[int, ...], tuple[int, int, int, tuple[int, int]]] = {}
    for code in range(len(plans)):
        group = tuple(deciding[code])
        if group not in group_figures:
            in_group = np.isin(plan_codes, group)
            key_balances, all_balances = int(balance[in_group & key].sum()), int(balance[in_group].sum())
            limit = int(Decimal(all_balances) * figures.top_heavy_percent / 100 // 1)
            group_figures[group] = (key_balances, all_balances, limit, _key_rate(
                employers, in_group & key, key_given, emp.plan_pay, figures.top_heavy_minimum))
        key_balances, all_balances, limit, _ = group_figures[group]
        heavy_plans[code] = required[code] and key_balances > limit and not exempt[code]
    # The minimum, once per non-key person, in the first of their top-heavy plans (M-7, M-8: no duplication).
    in_heavy = heavy_plans[plan_codes] if len(plans) else np.zeros(0, bool)
    owed_to = in_heavy & emp.eligible & ~key & (census.termination >= end)
    rate_num = np.zeros(census.rows, dtype=np.int64)
    rate_den = np.ones(census.rows, dtype=np.int64)
    for code in range(len(plans)):
        numerator, denominator = group_figures[tuple(deciding[code])][3]
        rate_num[plan_codes == code], rate_den[plan_codes == code] = numerator, denominator
    required_pay = (2 * emp.plan_pay * rate_num + rate_den) // (2 * rate_den)
    need = employers.most(np.where(owed_to, required_pay, 0), owed_to)
    credited = employers.total(np.where(in_heavy, employer_money, 0), in_heavy)
    shortfall = np.where(owed_to, np.maximum(need - credited, 0), 0)
    minimum = employers.take_in_order(shortfall, np.where(owed_to, shortfall, 0), plan_rank)
    emp.top_heavy_minimum[:] = np.where(owed_to, minimum, 0)

    for code, plan in enumerate(plans):
        rows = plan_codes == code
        group = tuple(deciding[code])
        key_balances, all_balances, limit, (numerator, denominator) = group_figures[group]
        owed = emp.top_heavy_minimum[rows]
        aggregation = None if group == (code,) else ("permissive" if any(not required[c] for c in group)
                                                      or plans[code].top_heavy.permissive_aggregation_group
                                                      else "required")
        facts = {
            "top_heavy_exempt": int(exempt[code]), "top_heavy_required_group": int(required[code]),
            "top_heavy_group_plans": len(group),
            "key_employees": int(key[rows].sum()),
            "key_officer_limit": key_officers(census, np.flatnonzero(rows), plan, figures, employers,
                                              bool(plan.nondiscrimination_testing.first_plan_year))[1],
            "officers_beyond_limit": int(beyond[rows].sum()),
            "key_account_balances": key_balances, "account_balances": all_balances, "top_heavy_balance_limit": limit,
            "top_heavy_ratio": int((2 * key_balances * WHOLE + all_balances) // (2 * all_balances)) if all_balances else 0,
            "top_heavy_minimum_rate": int((2 * numerator * WHOLE + denominator) // (2 * denominator)),
            "top_heavy_minimum_owed": int(owed.sum()), "top_heavy_minimum_employees": int((owed > 0).sum()),
        }
        out.append(PlanTopHeavy(facts, [plans[c].plan_id for c in group], aggregation, (numerator, denominator)))
    return out


def _key_rate(employers: Employers, key_rows: np.ndarray, given: np.ndarray, pay: np.ndarray,
              minimum: int) -> tuple[int, int]:
    """The lesser of the minimum (hundredths of a percent) and the highest key employee's rate, as a fraction:
    a key person's contributions in every plan of the group over their pay (416(c)(2)(B); 1.416-1, M-7)."""
    if not key_rows.any():
        return 0, 1
    total = employers.total(np.where(key_rows, given, 0), key_rows)[key_rows]
    person_pay = employers.most(pay, key_rows)[key_rows]
    with_pay = person_pay > 0
    if not with_pay.any():
        return 0, 1
    total, person_pay = total[with_pay], person_pay[with_pay]
    best = int(np.argmax(total * WHOLE * 100 // person_pay))
    if int(total[best]) * WHOLE < minimum * int(person_pay[best]):
        return int(total[best]), int(person_pay[best])
    return minimum, WHOLE
