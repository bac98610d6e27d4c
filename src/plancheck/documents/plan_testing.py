"""Who takes part and how the plan is tested: eligibility (410(a)), the ADP/ACP testing method and the
top-heavy grouping (part of the plan document, documents/plan.py)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from plancheck.models import Strict
from plancheck.money import Ppm


class Eligibility(Strict):
    """When an employee may start deferring (410(a)); the statutory maxima are checked where tests run.

    The maxima (age 21, one year of service: 410(a)(1)(A), 401(k)(2)(D)) are cited parameters
    under rules/parameters/, so the year-end check compares these terms with them rather than the
    model carrying the figures.
    """

    minimum_age: int = Field(default=0, ge=0, le=100, description="Age in whole years an employee must reach")
    months_of_service: int = Field(default=0, ge=0, le=120,
                                   description="Months of elapsed service from the hire date (0: none)")
    employer_contributions: EmployerEligibility | None = Field(
        default=None, description="Longer service for employer contributions than for deferrals (default: the same)")
    entry: Literal["immediate", "monthly", "quarterly", "semiannual"] = Field(
        default="immediate", description="Entry dates once age and service are met: at once, or on the first "
        "day of the next month, calendar quarter or half year (coinciding with or next following)")


class EmployerEligibility(Strict):
    """Service employer contributions (match, nonelective) require, where it differs from deferrals'."""

    months_of_service: int = Field(ge=0, le=120, description="Months of elapsed service from the hire date")
    full_immediate_vesting: bool = Field(
        default=False, description="Employer money is 100% vested when contributed: 410(a)(1)(B)(i) then allows "
        "up to two years of service (never for the deferrals themselves, 401(k)(2)(D))")


class NondiscriminationTesting(Strict):
    """How the ADP and ACP tests are run (401(k)(3), 401(m)(2); Treas. Reg. 1.401(k)-2(c))."""

    method: Literal["current_year", "prior_year"] = Field(
        default="current_year", description="Which year's NHCE figures the HCEs are compared with")
    prior_year_nhce_adp: Ppm | None = Field(
        default=None, description="Prior-year method: the NHCEs' ADP of the prior year, percent to the hundredth")
    prior_year_nhce_acp: Ppm | None = Field(
        default=None, description="Prior-year method: the NHCEs' ACP of the prior year, percent to the hundredth")
    first_plan_year: bool = Field(
        default=False, description="The plan's first plan year (not a successor plan): under the prior-year "
        "method the NHCE figures are deemed 3% (401(k)(3)(E))")
    top_paid_group_election: bool = Field(
        default=False, description="Pay makes an HCE only within the top-paid 20% (414(q)(1)(B)(ii))")
    eaca: bool = Field(default=False, description="The arrangement is an EACA (414(w)): six months to correct "
                       "excesses without the 4979 excise tax")

    @field_validator("prior_year_nhce_adp", "prior_year_nhce_acp")
    @classmethod
    def _hundredths(cls, value: int | None) -> int | None:
        if value is not None and value % 100:
            raise ValueError("give the percentage to the hundredth of a percent, like 3.25")
        return value

    @model_validator(mode="after")
    def _prior_year_figures(self) -> "NondiscriminationTesting":
        if self.method == "prior_year" and not self.first_plan_year and self.prior_year_nhce_adp is None:
            raise ValueError("the prior-year method needs prior_year_nhce_adp (or first_plan_year: true)")
        return self


class TopHeavy(Strict):
    """How the plan is grouped with the employer's other plans for the top-heavy test (416(g)(2)).

    Plans in which a key employee participates form the employer's required aggregation group on
    their own (416(g)(2)(A)(i)(I)); these terms add what the census cannot tell.
    """

    coverage_group: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64,
        description="Plans of one employer that are aggregated with each other to meet 401(a)(4) or 410(b) share "
        "this name: when one of them is in the required aggregation group, all of them are (416(g)(2)(A)(i)(II))")
    permissive_aggregation_group: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64,
        description="The employer's permissive aggregation group (416(g)(2)(A)(ii); Treas. Reg. 1.416-1, T-7): "
        "every plan of the group names it, the plans of the required aggregation group included; the group as a "
        "whole must still meet 401(a)(4) and 410(b). The group's balances then decide for the required group's "
        "plans; a plan only in the permissive group is never top-heavy")
