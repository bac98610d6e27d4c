"""Plan documents: the features a 401(k) plan switches on and off, as a strict pydantic model."""

from __future__ import annotations

import datetime as dt
from enum import Enum
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from plancheck.documents.automatic_enrollment import AutomaticEnrollment
from plancheck.documents.folders import document_files
from plancheck.documents.plan_testing import Eligibility, NondiscriminationTesting, TopHeavy
from plancheck.documents.plan_withdrawals import (
    InPlanRothConversion,
    InServiceWithdrawals,
    Source,
)
from plancheck.documents.yamlio import read_document, validation_problems
from plancheck.errors import InputError, Problem
from plancheck.models import Reference, Strict
from plancheck.money import Cents, Ppm


class Frequency(str, Enum):
    """Payroll frequency; the value is the usual number of pay dates a year."""

    weekly = "weekly"
    biweekly = "biweekly"
    semimonthly = "semimonthly"
    monthly = "monthly"


class Payroll(Strict):
    """When participants are paid; pay dates of any year follow from it."""

    frequency: Frequency
    anchor_pay_date: dt.date | None = Field(
        default=None,
        description="Any one real pay date; weekly and biweekly schedules step from it. "
        "Semimonthly pays on the 15th and last day, monthly on the last day.")

    @model_validator(mode="after")
    def _anchor_for_stepped(self) -> "Payroll":
        if self.frequency in (Frequency.weekly, Frequency.biweekly) and self.anchor_pay_date is None:
            raise ValueError("weekly and biweekly payrolls need anchor_pay_date (any one real pay date)")
        return self


class Contributions(Strict):
    """Which employee contribution types the plan accepts, and its caps as % of pay."""

    pretax: bool = True
    roth: bool = False
    after_tax: bool = False
    max_deferral_percent: Ppm | None = Field(
        default=None, description="Plan cap on pretax + Roth deferrals, % of pay per pay period")
    max_after_tax_percent: Ppm | None = Field(
        default=None, description="Plan cap on after-tax contributions, % of pay per pay period")
    percent_increment: Ppm = Field(
        default=1, validate_default=True,
        description="Steps in which payroll accepts a percentage election (1: whole percent, 0.5, 0.01: hundredths); "
        "the nearest compliant election to a percentage election is offered in these steps")

    @field_validator("percent_increment")
    @classmethod
    def _a_step(cls, value: int) -> int:
        if value <= 0:
            raise ValueError("expected a step above zero, like 1 or 0.01")
        return value


class CatchUp(Strict):
    """Catch-up contributions under 414(v)."""

    offered: bool = False
    age_60_63: bool = Field(default=False, description="Offers the higher 414(v)(2)(E) limit at ages 60-63")


class MatchTier(Strict):
    """Match `rate` % of deferrals up to `up_to_percent` % of pay (tiers stack in order)."""

    rate: Ppm
    up_to_percent: Ppm


class Match(Strict):
    """Employer matching contribution formula."""

    tiers: list[MatchTier] = Field(min_length=1)
    sources: list[Literal["pretax", "roth", "after_tax"]] = Field(
        default_factory=lambda: ["pretax", "roth"], min_length=1)
    basis: Literal["per_period", "annual"] = Field(
        default="per_period", description="per_period: formula applied to each paycheck; annual: to year totals")
    true_up: bool = Field(default=False, description="Year-end deposit bringing per-period match up to the annual formula")
    match_catch_up: bool = Field(default=True, description="Whether catch-up contributions are matched")
    annual_cap: Cents | None = Field(default=None, description="Largest match per participant per year")

    @field_validator("tiers")
    @classmethod
    def _increasing(cls, tiers: list[MatchTier]) -> list[MatchTier]:
        bounds = [t.up_to_percent for t in tiers]
        if any(b <= a for a, b in zip([0] + bounds, bounds)):
            raise ValueError("tier up_to_percent values must be above zero and strictly increasing")
        return tiers

    @model_validator(mode="after")
    def _true_up_needs_annual(self) -> "Match":
        if self.true_up and self.basis != "annual":
            raise ValueError("true_up applies to an annual-basis match (basis: annual)")
        return self


class Nonelective(Strict):
    """Employer nonelective (profit-sharing or safe-harbor) contribution, % of plan pay."""

    percent: Ppm
    safe_harbor: bool = Field(
        default=False,
        description="Older way to say the nonelective contribution is the plan's safe-harbor contribution: "
        "the same as the plan-level safe_harbor: nonelective (or qaca_nonelective), which is preferred.")


class SafeHarborDesign(str, Enum):
    """The safe-harbor contribution a plan document claims (IRC 401(k)(12), (13)).

    The formula itself is written where every plan writes it: a match design in `match:`, a
    nonelective design in `nonelective:`. plancheck checks the formula against the statutory one.

    * none - not a safe-harbor plan (ADP/ACP tested).
    * basic_match - 401(k)(12)(B)(i): 100% of deferrals up to 3% of pay plus 50% of the next 2%.
    * enhanced_match - 401(k)(12)(B)(iii): any match at least as generous as the basic one at every
      deferral rate, with a rate that never increases, on deferrals up to at most 6% of pay.
    * nonelective - 401(k)(12)(C): at least 3% of pay to every eligible employee.
    * qaca_match - 401(k)(13)(D)(i)(I): at least 100% of deferrals up to 1% plus 50% of the next 5%.
    * qaca_nonelective - 401(k)(13)(D)(i)(II): at least 3% of pay.
    """

    none = "none"
    basic_match = "basic_match"
    enhanced_match = "enhanced_match"
    nonelective = "nonelective"
    qaca_match = "qaca_match"
    qaca_nonelective = "qaca_nonelective"

    @property
    def is_match(self) -> bool:
        """The safe-harbor contribution is a match (written in `match:`)."""
        return self in (SafeHarborDesign.basic_match, SafeHarborDesign.enhanced_match, SafeHarborDesign.qaca_match)

    @property
    def is_nonelective(self) -> bool:
        """The safe-harbor contribution is nonelective (written in `nonelective:`)."""
        return self in (SafeHarborDesign.nonelective, SafeHarborDesign.qaca_nonelective)


class Plan(Strict):
    """A 401(k) plan document as plancheck reads it."""

    plan_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64)
    name: str
    sponsor: str | None = None
    employer: str | None = Field(
        default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", max_length=64,
        description="Identifier shared by the plans of one employer (controlled group, 414(b), (c), (m)): "
        "401(a)(30) and 415(c) count all of them together. Default: the plan's own plan_id")
    plan_year: int | None = Field(default=None, ge=1990, le=2100,
                                  description="The plan year this document describes (audits use its limits)")
    plan_year_begins: str = Field(default="01-01", description="MM-DD; only calendar-year plans are supported")
    payroll: Payroll
    contributions: Contributions = Contributions()
    catch_up: CatchUp = CatchUp()
    match: Match | None = None
    nonelective: Nonelective | None = None
    safe_harbor: SafeHarborDesign = Field(
        default=SafeHarborDesign.none,
        description="The safe-harbor design the document claims; the formula goes in match: (basic_match, "
        "enhanced_match, qaca_match) or nonelective: (nonelective, qaca_nonelective)")
    in_service_withdrawals: InServiceWithdrawals = InServiceWithdrawals()
    in_plan_roth_conversion: InPlanRothConversion = InPlanRothConversion()
    eligibility: Eligibility = Eligibility()
    automatic_enrollment: AutomaticEnrollment | None = Field(
        default=None, description="Automatic enrollment terms (a QACA needs them, 401(k)(13)(C))")
    nondiscrimination_testing: NondiscriminationTesting = NondiscriminationTesting()
    top_heavy: TopHeavy = TopHeavy()
    notes: str | None = None
    references: list[Reference] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_safe_harbor_claim(self) -> "Plan":
        if self.nonelective and self.nonelective.safe_harbor and self.safe_harbor.is_match:
            raise ValueError(f"nonelective.safe_harbor: true calls the nonelective contribution the safe-harbor "
                             f"contribution, but safe_harbor: {self.safe_harbor.value} names a match design; "
                             "keep one claim (safe_harbor: nonelective, or drop nonelective.safe_harbor)")
        return self

    @property
    def safe_harbor_design(self) -> SafeHarborDesign:
        """The design claimed: `safe_harbor`, or nonelective where only `nonelective.safe_harbor` says so."""
        if self.safe_harbor is SafeHarborDesign.none and self.nonelective and self.nonelective.safe_harbor:
            return SafeHarborDesign.nonelective
        return self.safe_harbor

    @field_validator("plan_year_begins")
    @classmethod
    def _calendar_year(cls, value: str) -> str:
        if value != "01-01":
            raise ValueError("only calendar-year plans (plan_year_begins: '01-01') are supported: "
                             "402(g) is a calendar-year limit and plancheck uses the calendar year as the "
                             "415 limitation year")
        return value


    @model_validator(mode="after")
    def _prior_year_acp(self) -> "Plan":
        testing = self.nondiscrimination_testing
        if (testing.method == "prior_year" and not testing.first_plan_year and testing.prior_year_nhce_acp is None
                and (self.match is not None or self.contributions.after_tax)):
            raise ValueError("nondiscrimination_testing: the prior-year method needs prior_year_nhce_acp in a plan "
                             "with a match or after-tax contributions (or first_plan_year: true)")
        return self

    @model_validator(mode="after")
    def _enrollment_source(self) -> "Plan":
        enrollment = self.automatic_enrollment
        if enrollment and not getattr(self.contributions, enrollment.source):
            raise ValueError(f"automatic_enrollment.source: {enrollment.source} deferrals are not accepted by the plan "
                             f"(contributions.{enrollment.source} is false)")
        return self

    @property
    def employer_id(self) -> str:
        """The controlled group this plan belongs to (its own plan_id unless `employer` says otherwise)."""
        return self.employer or self.plan_id


def safe_harbor_sources(plan: Plan) -> tuple[Source, ...]:
    """The sources holding a plan's safe-harbor money, which leaves in service only from 59 1/2.

    Always the safe_harbor source; in a plan that claims a match design its employer_match
    source holds that safe-harbor match too, and under a nonelective design the nonelective
    source holds the safe-harbor nonelective contribution (the document has one formula each).
    """
    design = plan.safe_harbor_design
    extra = (Source.employer_match,) if design.is_match else (Source.nonelective,) if design.is_nonelective else ()
    return (Source.safe_harbor, *extra)


def load_plan_document(path: Path) -> tuple[Plan, Any]:
    """Read and validate one plan document; also return the parsed YAML (it knows key lines)."""
    data = read_document(path)
    if not isinstance(data, dict):
        raise InputError(Problem(str(path), "", "a plan document must be a mapping of keys"))
    try:
        return Plan.model_validate(data), data
    except ValidationError as exc:
        raise validation_problems(exc, data, str(path)) from None


def load_plan(path: Path) -> Plan:
    """Read and validate one plan document; problems name the file, line and key."""
    return load_plan_document(path)[0]


def load_plans(directory: Path) -> dict[str, tuple[Plan, Path]]:
    """Every plan file (*.yaml, *.yml, *.json) in a directory, keyed by plan_id."""
    if not directory.is_dir():
        raise InputError(Problem(str(directory), "", "plans directory not found"))
    plans: dict[str, tuple[Plan, Path]] = {}
    problems: list[Problem] = []
    for path in document_files(directory, (".yaml", ".yml", ".json")):
        try:
            plan = load_plan(path)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        if plan.plan_id in plans:
            problems.append(Problem(str(path), "plan_id", f"duplicate plan_id, also in {plans[plan.plan_id][1]}",
                                    got=repr(plan.plan_id)))
            continue
        plans[plan.plan_id] = (plan, path)
    if problems:
        raise InputError(problems)
    return plans
