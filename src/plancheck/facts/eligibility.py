"""Eligibility (410(a)): the plan's terms against the law's maxima, and who is eligible when."""

from __future__ import annotations

import numpy as np

from plancheck.documents.census import Census
from plancheck.documents.plan import Plan
from plancheck.errors import Problem
from plancheck.facts.calendar import add_months, entry_dates
from plancheck.rulebook.limits import LimitTable

_ENTRY_STEP = {"immediate": 0, "monthly": 1, "quarterly": 3, "semiannual": 6}


def eligibility_problems(plan: Plan, limits: LimitTable, source: str) -> list[Problem]:
    """The plan's eligibility terms against the 410(a) maxima (cited parameters)."""
    problems = []
    maximum_age = int(limits.parameter("eligibility_maximum_age"))
    maximum_service = int(limits.parameter("eligibility_maximum_service"))
    if plan.eligibility.minimum_age > maximum_age:
        problems.append(Problem(source, "eligibility.minimum_age", f"at most {maximum_age} (IRC 410(a)(1)(A)(i))",
                                got=str(plan.eligibility.minimum_age)))
    if plan.eligibility.months_of_service > maximum_service:
        problems.append(Problem(source, "eligibility.months_of_service",
                                f"at most {maximum_service} months (IRC 410(a)(1)(A)(ii), 401(k)(2)(D))",
                                got=str(plan.eligibility.months_of_service)))
    return problems


def per_plan(census: Census, plans: list[Plan], getter, dtype=np.int64) -> np.ndarray:
    """A plan term for each census row (plans[i] is census plan code i)."""
    return np.array([getter(p) for p in plans], dtype=dtype)[census.plan] if len(plans) else np.zeros(0, dtype)


def eligibility(census: Census, plans: list[Plan], start: int, end: int) -> tuple[np.ndarray, np.ndarray]:
    """Each row's entry date (age and service met, then the plan's next entry date) and whether the employee
    was eligible in the year from day number `start` to `end` (entered by its end, not gone before entry)."""
    min_age = per_plan(census, plans, lambda p: p.eligibility.minimum_age)
    service = per_plan(census, plans, lambda p: p.eligibility.months_of_service)
    step = per_plan(census, plans, lambda p: _ENTRY_STEP[p.eligibility.entry])
    met = np.maximum(add_months(census.birth, 12 * min_age), add_months(census.hire, service)) if census.rows else census.hire
    entry = entry_dates(met, step) if census.rows else met
    return entry, (entry <= end) & (census.termination >= entry) & (census.termination >= start)
