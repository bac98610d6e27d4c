"""Roth catch-up at year end (IRC 414(v)(7), SECURE 2.0 s.603; T.D. 10033).

Read as the batch reads it (facts/period.py, README "Conventions behind the figures"):
* The rule is in force in a year whose rules/limits give a `roth_catch_up_wage_threshold` (2026 on;
  2026 is good-faith compliance, the final regulations apply from 2027).
* It applies to a participant whose prior-year FICA wages from the employer are known and above the
  threshold. Wages are the person's at the employer: the largest figure any of their rows in the
  employer's plans gives; unknown (empty) only where none gives one. Unknown is not zero: the rule
  does not apply, and pretax catch-up with unknown wages is reported as a warning.
* A plan without Roth cannot give such a participant catch-up: their catch-up limit in it is zero, so
  deferrals above the limits are excess deferrals (distributed), not catch-up.
* In a plan with Roth, Roth deferrals made at any time in the year (in any plan of the employer)
  count toward the requirement: catch-up made pretax = max(0, catch-up - Roth deferrals). The Roth
  deferrals offset the catch-up of the year's limits first (402(g), the plan's cap, 415(c)), then
  the ADP excess recharacterized as catch-up; a person's Roth surplus in one plan offsets their
  catch-up in another, in census order.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np

from plancheck.documents.census import Census
from plancheck.documents.plan import Plan
from plancheck.facts.by_person import People
from plancheck.rulebook.limits import LimitTable

#: Facts the Roth catch-up adds to each plan's year-end record (rules/facts/yearend.yaml).
ROTH_CATCH_UP_FACTS = frozenset({
    "roth_catch_up_in_force", "roth_catch_up_pretax", "roth_catch_up_adp_pretax", "roth_catch_up_employees",
    "roth_catch_up_not_allowed", "roth_catch_up_not_allowed_employees", "roth_catch_up_wages_unknown_pretax",
    "roth_catch_up_wages_unknown_employees",
})


@dataclass
class RothCatchUp:
    """Who the Roth catch-up rule reaches, and per census row what it calls for."""

    in_force: bool
    threshold: int                  # cents; 0 when not in force
    wages: np.ndarray               # the person's prior-year FICA wages at the employer (0 where unknown)
    known: np.ndarray               # bool: some row of the person gives them
    applies: np.ndarray             # bool: in force, known, above the threshold
    no_roth: np.ndarray             # bool: applies in a plan without Roth: no catch-up in it
    w2_months: Decimal = Decimal(1)  # months after the year to furnish the Form W-2 (parameter)
    removed_limit: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    to_roth: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))       # pretax catch-up
    adp_to_roth: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))   # pretax, from ADP
    not_catch_up: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # excess, no Roth
    unknown_pretax: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    @classmethod
    def of(cls, census: Census, plans: list[Plan], limits: LimitTable, year: int,
           person: np.ndarray) -> "RothCatchUp":
        threshold = limits.for_year(year).roth_catch_up_wages
        n = census.rows
        people = People(person)
        given = census.fica_known if len(census.fica_known) == n else np.zeros(n, dtype=bool)
        wages = census.prior_year_fica_wages if len(census.prior_year_fica_wages) == n else np.zeros(n, np.int64)
        known = people.any(given)
        wages = np.where(known, people.largest(np.where(given, wages, 0)), 0) if n else wages
        applies = (threshold is not None) & known & (wages > (threshold or 0))
        allows_roth = np.array([p.contributions.roth for p in plans], dtype=bool)[census.plan] if n else known
        return cls(in_force=threshold is not None, threshold=threshold or 0, wages=wages, known=known,
                   applies=applies, no_roth=applies & ~allows_roth,
                   w2_months=limits.parameter("form_w2_furnish_deadline"))

    def restrict(self, catch_up_limit: np.ndarray) -> np.ndarray:
        """The catch-up each row's plan lets its participant use, none where the rule leaves no catch-up."""
        self.removed_limit = np.where(self.no_roth, catch_up_limit, 0)
        return np.where(self.no_roth, 0, catch_up_limit)

    def settle(self, census: Census, person: np.ndarray, catch_up: np.ndarray, recharacterized: np.ndarray,
               excess_deferral: np.ndarray) -> None:
        """What the rule calls for, once the year's catch-up and the ADP recharacterization are known."""
        people = People(person)
        roth = census.money["roth"]
        regular_pretax = np.maximum(catch_up - roth, 0)
        surplus = people.total(np.maximum(roth - catch_up, 0))
        regular_pretax = regular_pretax - people.take_in_order(regular_pretax, surplus)
        left = np.maximum(surplus - people.total(np.maximum(catch_up - roth, 0)), 0)
        adp_pretax = recharacterized - people.take_in_order(recharacterized, left)
        in_force = np.full(census.rows, self.in_force)
        self.to_roth = np.where(self.applies, regular_pretax, 0)
        self.adp_to_roth = np.where(self.applies, adp_pretax, 0)
        self.unknown_pretax = np.where(in_force & ~self.known, regular_pretax + adp_pretax, 0)
        self.not_catch_up = np.minimum(excess_deferral, self.removed_limit)

    def plan_facts(self, rows: np.ndarray) -> dict[str, int]:
        """The facts of one plan's rows (census row indices)."""
        pretax = self.to_roth[rows] + self.adp_to_roth[rows]
        return {
            "roth_catch_up_in_force": int(self.in_force),
            "roth_catch_up_pretax": int(pretax.sum()),
            "roth_catch_up_adp_pretax": int(self.adp_to_roth[rows].sum()),
            "roth_catch_up_employees": int((pretax > 0).sum()),
            "roth_catch_up_not_allowed": int(self.not_catch_up[rows].sum()),
            "roth_catch_up_not_allowed_employees": int((self.not_catch_up[rows] > 0).sum()),
            "roth_catch_up_wages_unknown_pretax": int(self.unknown_pretax[rows].sum()),
            "roth_catch_up_wages_unknown_employees": int((self.unknown_pretax[rows] > 0).sum()),
        }
