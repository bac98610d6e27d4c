"""Highly compensated employees (414(q)): 5% owners this year or last, with 318 attribution, or paid
above the look-back figure (within the top-paid group where the plan elects it)."""

from __future__ import annotations

import numpy as np

from plancheck.documents.census import Census
from plancheck.documents.plan import Plan
from plancheck.facts.employer import Employers, top_paid
from plancheck.facts.figures import Figures

#: Bits of `hce_reasons`: why an employee is highly compensated.
OWNER_THIS_YEAR, OWNER_PRIOR_YEAR, PAID_ABOVE_THRESHOLD = 1, 2, 4


def _attributed(own: np.ndarray, related: np.ndarray) -> np.ndarray:
    """Ownership counting the family member's named in related_to (318(a)(1); one level, 318(a)(5)(B))."""
    return own + np.where(related >= 0, own[np.maximum(related, 0)], 0) if len(own) else own


def highly_compensated(census: Census, plans: list[Plan], figures: Figures,
                       employers: Employers) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each row's `hce_reasons` bits (0: not an HCE), and the ownership this year and last with attribution."""
    ownership = _attributed(census.ownership, census.related)
    prior_ownership = _attributed(census.prior_year_ownership, census.related)
    pay_test = census.prior_year_compensation > figures.hce_threshold_lookback
    for code, plan in enumerate(plans):
        if plan.nondiscrimination_testing.top_paid_group_election:
            rows = employers.rows[plan.employer_id]
            in_plan = census.plan[rows] == code
            pay_test[rows[in_plan]] &= top_paid(census, rows, figures, employers)[in_plan]
    hce_reasons = (np.where(ownership > figures.five_percent_ppm, OWNER_THIS_YEAR, 0)
                   | np.where(prior_ownership > figures.five_percent_ppm, OWNER_PRIOR_YEAR, 0)
                   | np.where(pay_test, PAID_ABOVE_THRESHOLD, 0)).astype(np.int64)
    return hce_reasons, ownership, prior_ownership
