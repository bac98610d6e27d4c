"""The law's figures for one plan year, read once from rules/limits and rules/parameters."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from plancheck.errors import InputError, Problem
from plancheck.facts.calendar import months_after_year_end
from plancheck.rulebook.limits import LimitTable


@dataclass(frozen=True)
class Figures:
    """The law's figures for one plan year, as integers (cents, hundredths of a percent, ppm)."""

    year: int
    deferral_402g: int
    catch_up: int
    catch_up_60_63: int | None
    annual_additions_415c: int
    compensation_401a17: int
    hce_threshold_lookback: int
    key_officer_pay: int          # 416(i) figure of the year key employees are determined in
    key_officer_pay_first_year: int
    catch_up_age: int
    band_first: int
    band_last: int
    basic: Decimal
    alternative: Decimal
    spread: Decimal
    first_year_nhce: int
    top_paid_percent: Decimal
    top_paid_age: int
    top_paid_service_months: int
    five_percent_ppm: int
    one_percent_ppm: int
    one_percent_pay: int
    top_heavy_percent: Decimal
    top_heavy_minimum: int        # hundredths of a percent
    officer_limit: int            # 416(i)(1)(A): at most this many officers are key employees,
    officer_minimum: int          # ... at least this many may be,
    officer_percent: Decimal      # ... and otherwise this share of the employees
    deadlines: dict[str, dt.date]
    deadline_months: dict[str, Decimal]

    @classmethod
    def for_year(cls, limits: LimitTable, year: int) -> "Figures":
        year_limits = limits.for_year(year)
        lookback = year_limits.hce_414q_prior_year
        key_prior = limits.amount("key_employee_compensation_416i", year - 1)
        if lookback is None or key_prior is None:
            raise InputError(Problem("rules/limits", "values", f"year-end tests for {year} need the {year - 1} figures "
                                     "of hce_compensation_threshold and key_employee_compensation_416i"))
        p = limits.parameter
        months = {name: p(parameter) for name, parameter in (
            ("excise", "excess_contribution_excise_deadline"),
            ("excise_eaca", "excess_contribution_excise_deadline_eaca"),
            ("final", "excess_contribution_final_deadline"),
            ("excess_deferral", "excess_deferral_deadline"))}
        return cls(
            year=year, deferral_402g=year_limits.deferral_402g, catch_up=year_limits.catch_up,
            catch_up_60_63=year_limits.catch_up_60_63, annual_additions_415c=year_limits.annual_additions_415c,
            compensation_401a17=year_limits.compensation_401a17, hce_threshold_lookback=lookback,
            key_officer_pay=key_prior, key_officer_pay_first_year=year_limits.key_employee_416i or 0,
            catch_up_age=int(p("catch_up_eligibility_age")), band_first=int(p("catch_up_age_60_63_first")),
            band_last=int(p("catch_up_age_60_63_last")), basic=p("adp_acp_multiplier_basic"),
            alternative=p("adp_acp_multiplier_alternative"), spread=p("adp_acp_alternative_spread"),
            first_year_nhce=int(p("first_plan_year_nhce_percentage") * 100),
            top_paid_percent=p("top_paid_group_percent"), top_paid_age=int(p("top_paid_group_exclusion_age")),
            top_paid_service_months=int(p("top_paid_group_exclusion_service")),
            five_percent_ppm=int(p("five_percent_owner") * 10_000), one_percent_ppm=int(p("one_percent_owner") * 10_000),
            one_percent_pay=limits.cents("one_percent_owner_compensation"), top_heavy_percent=p("top_heavy_ratio"),
            top_heavy_minimum=int(p("top_heavy_minimum_contribution") * 100),
            officer_limit=int(p("top_heavy_officer_limit")), officer_minimum=int(p("top_heavy_officer_minimum")),
            officer_percent=p("top_heavy_officer_percent"),
            deadlines={name: months_after_year_end(year, value) for name, value in months.items()},
            deadline_months=months,
        )
