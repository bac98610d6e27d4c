"""An election document: what one employee elects from a start date, with what was paid before it."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from pydantic import Field, ValidationError, model_validator

from plancheck.documents.yamlio import read_document, validation_problems
from plancheck.errors import InputError, Problem
from plancheck.models import Strict
from plancheck.money import Cents, Ppm


def _exactly_one_of(model, first: str, second: str):
    if (getattr(model, first) is None) == (getattr(model, second) is None):
        raise ValueError(f"give exactly one of {first} or {second}")
    return model


class Compensation(Strict):
    """Pay: either a yearly figure (spread evenly over the year's pay dates) or a figure per pay date."""

    annual: Cents | None = None
    per_period: Cents | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Compensation":
        return _exactly_one_of(self, "annual", "per_period")


class EmployerPlans(Strict):
    """Year-to-date amounts in the employer's other defined contribution plans (controlled group).

    401(a)(30) and 415(c) count every plan of one employer (414(b), (c), (m); 415(f)), so these
    add to this plan's figures for the plan-level 402(g) limit, catch-up and annual additions.
    """

    pretax: Cents = 0
    roth: Cents = 0
    after_tax: Cents = 0
    employer_match: Cents = 0
    employer_nonelective: Cents = 0


class YearToDate(Strict):
    """Amounts already paid this year before the election's start date."""

    compensation: Cents | None = Field(default=None, description="Default: the annual pay's share of earlier pay dates")
    pretax: Cents = 0
    roth: Cents = 0
    after_tax: Cents = 0
    employer_match: Cents = 0
    employer_nonelective: Cents = 0
    other_plan_deferrals: Cents = Field(default=0, description="Deferrals this year in other, unrelated employers' "
                                        "plans (the individual's 402(g) limit only)")
    same_employer_plans: EmployerPlans = Field(
        default=EmployerPlans(), description="Amounts this year in the employer's other plans (401(a)(30), 415(c))")


class Employee(Strict):
    """The participant."""

    id: str = Field(min_length=1, max_length=64)
    birth_date: dt.date
    compensation: Compensation
    prior_year_fica_wages: Cents | None = Field(
        default=None, description="Prior-year W-2 box 3 wages from this employer: 0 for none (a new hire); "
        "omitted means unknown, which from 2026 matters for Roth catch-up")
    year_to_date: YearToDate = YearToDate()


class Contribution(Strict):
    """A contribution per pay period: a percentage of plan pay or a flat dollar amount."""

    percent: Ppm | None = None
    amount: Cents | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "Contribution":
        return _exactly_one_of(self, "percent", "amount")


class Terms(Strict):
    """What the participant elects, from a start date to the end of that year."""

    start_date: dt.date
    pretax: Contribution | None = None
    roth: Contribution | None = None
    after_tax: Contribution | None = None


class ElectionFile(Strict):
    """An election document."""

    plan_id: str | None = Field(default=None, description="Must match the plan checked against, if given")
    employee: Employee
    election: Terms

    @model_validator(mode="after")
    def _plausible_birth_date(self) -> "ElectionFile":
        start, born = self.election.start_date, self.employee.birth_date
        if born >= start:
            raise ValueError("employee.birth_date must be before election.start_date")
        if start.year - born.year > 120:
            raise ValueError("employee.birth_date gives an age over 120")
        return self


def load_election(path: Path) -> ElectionFile:
    data = read_document(path)
    if not isinstance(data, dict):
        raise InputError(Problem(str(path), "", "an election must be a mapping with employee and election"))
    try:
        return ElectionFile.model_validate(data)
    except ValidationError as exc:
        raise validation_problems(exc, data, str(path)) from None
