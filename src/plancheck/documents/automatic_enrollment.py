"""Automatic enrollment terms of a plan document (401(k)(13)(C), 414(w), 414A), as a strict model.

Kept apart from documents/plan.py so the EACA and 414A features (permissive withdrawals,
exemptions, the 10%-15% escalation of 414A) can extend it without growing the plan model.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from plancheck.models import Strict
from plancheck.money import Ppm


class AutomaticEnrollment(Strict):
    """Automatic enrollment: the deferral an eligible employee is deemed to elect until they elect otherwise.

    A QACA (401(k)(13)) needs it, with a qualified percentage of at least 3% rising to 6% by the
    fourth year and never above the maximum (rules/parameters/qaca_*); an EACA (414(w)) and the
    414A mandate build on the same terms. Percentages of plan pay, in the plan's percent steps.
    """

    default_percent: Ppm = Field(description="Deemed deferral in year 1 of automatic enrollment, % of pay: for a "
                                 "QACA the initial period, to the end of the plan year after the one of the first "
                                 "deemed deferral (401(k)(13)(C)(iii)(I))")
    source: Literal["pretax", "roth"] = Field(default="pretax", description="Where the deemed deferral goes")
    annual_increase: Ppm = Field(default=0, description="Points added in each plan year after year 1 (0: none)")
    cap: Ppm | None = Field(default=None, description="Highest deemed deferral the escalation reaches, % of pay "
                            "(required with annual_increase)")
    covered: Literal["new_entrants", "all"] = Field(
        default="new_entrants", description="new_entrants: employees who become eligible from the effective date; "
        "all: every eligible employee without an affirmative election")

    @model_validator(mode="after")
    def _schedule(self) -> "AutomaticEnrollment":
        if self.default_percent <= 0:
            raise ValueError("default_percent must be above zero (a 0% default is no automatic enrollment)")
        if self.annual_increase and self.cap is None:
            raise ValueError("annual_increase needs cap: the percentage the escalation stops at")
        if self.cap is not None and self.cap < self.default_percent:
            raise ValueError("cap must be at least default_percent")
        if self.cap is not None and self.cap > self.default_percent and not self.annual_increase:
            raise ValueError("a cap above default_percent needs annual_increase (points a year)")
        return self

    def percent_in_year(self, year: int) -> int:
        """The deemed deferral (ppm) in the `year`th plan year of automatic enrollment (1: the first)."""
        if not self.annual_increase:
            return self.default_percent
        return min(self.default_percent + (year - 1) * self.annual_increase, self.cap)
