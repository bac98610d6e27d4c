"""IRS dollar limits, loaded from dated, cited YAML files under rules/limits/.

One file per limit family (OpenFisca style), values keyed by calendar year, each value with
its own citation. Every family must cover the same years up to the same last year, so a
year missing from one file is a load error instead of a silent gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from plancheck.errors import InputError, LimitYearMissing, Problem
from plancheck.models import Reference, Strict
from plancheck.money import Cents
from plancheck.rulebook.parameters import Parameter, load_folder, load_parameters


class LimitValue(Strict):
    """The figure in force for one year, or null with a note where the limit did not exist."""

    amount: Cents | None
    citation: str = Field(min_length=5)
    note: str | None = None

    @model_validator(mode="after")
    def _null_needs_note(self) -> "LimitValue":
        if self.amount is None and not self.note:
            raise ValueError("a null amount needs a note saying why the limit does not apply")
        return self


class Indexing(Strict):
    """How the figure moves from one year to the next: cost-of-living increases under 415(d),
    each rounded down to a multiple of `step`, never a decrease (`plancheck audit --rules` checks it)."""

    step: Cents = Field(gt=0, description="Increases are rounded down to a multiple of this many dollars")
    citation: str = Field(min_length=5, description="Where the law sets the step, e.g. 'IRC 402(g)(4)'")
    #: A statutory floor the figure may equal although it is no multiple of `step` (414(v)(2)(E)(i)(II):
    #: 150% of the 2024 catch-up limit, $11,250, for ages 60-63).
    minimum: Cents | None = None
    minimum_citation: str | None = None

    @model_validator(mode="after")
    def _minimum_is_cited(self) -> "Indexing":
        if (self.minimum is None) != (self.minimum_citation is None):
            raise ValueError("give minimum and minimum_citation together")
        return self


class LimitFamily(Strict):
    """One limit (e.g. 402(g)(1)) with its yearly values and references."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    section: str = Field(min_length=3, description="Statute or regulation, e.g. 'IRC 402(g)(1)'")
    description: str
    unit: Literal["USD"]
    references: list[Reference] = Field(min_length=1)
    indexing: Indexing
    #: Each year's figure is published in an IRS notice of the year before (e.g. Notice 2025-67 for 2026):
    #: `plancheck audit --rules` holds each figure's citation to it.
    published_by: Literal["irs_notice"] = "irs_notice"
    values: dict[int, LimitValue] = Field(min_length=1)


#: Family ids the checks use, mapped to the YearLimits attribute that holds them.
FAMILIES = {
    "elective_deferral_limit": "deferral_402g",
    "catch_up_limit": "catch_up",
    "catch_up_limit_age_60_63": "catch_up_60_63",
    "annual_additions_limit": "annual_additions_415c",
    "compensation_limit": "compensation_401a17",
    "hce_compensation_threshold": "hce_414q",
    "roth_catch_up_wage_threshold": "roth_catch_up_wages",
    "key_employee_compensation_416i": "key_employee_416i",
}


@dataclass(frozen=True)
class YearLimits:
    """Every limit in force for one calendar year, in cents (None: not in force that year)."""

    year: int
    deferral_402g: int
    catch_up: int
    catch_up_60_63: int | None
    annual_additions_415c: int
    compensation_401a17: int
    hce_414q: int
    roth_catch_up_wages: int | None
    citations: dict[str, str]
    #: HCE threshold of the look-back year (414(q)(1)(B) uses prior-year pay), if known.
    hce_414q_prior_year: int | None = None
    #: Officer pay above which an officer is a key employee (416(i)(1)(A)(i)).
    key_employee_416i: int | None = None


class LimitTable:
    """All limit families, queried by year, and the parameters (ages, percentages) beside them."""

    def __init__(self, families: dict[str, LimitFamily], sources: dict[str, str],
                 parameters: dict[str, Parameter] | None = None):
        self.families = families
        self.sources = sources
        self.parameters = parameters or {}
        last_years = {max(f.values) for f in families.values()}
        self.last_year = max(last_years)
        self.first_year = max(min(f.values) for f in families.values())

    def parameter(self, parameter_id: str) -> Decimal:
        """The value of a single-valued parameter (rules/parameters/<id>.yaml)."""
        value = self.parameters[parameter_id].value
        assert value is not None, f"parameter {parameter_id} has tiers, not a value"
        return value

    def amount(self, family_id: str, year: int) -> int | None:
        """One family's figure for a year in cents; None where its file has no value for that year."""
        value = self.families[family_id].values.get(year)
        return value.amount if value else None

    def age_months(self, parameter_id: str) -> int:
        """An age parameter in whole months (59.5 -> 714)."""
        return int(self.parameter(parameter_id) * 12)

    def cents(self, parameter_id: str) -> int:
        """A dollar parameter in cents."""
        return int(self.parameter(parameter_id) * 100)

    @property
    def years(self) -> range:
        return range(self.first_year, self.last_year + 1)

    def missing_year(self, year: int) -> str:
        """Why a year cannot be checked, and what to add: the one wording every command uses."""
        return (f"no IRS limits for {year}: rules/limits covers {self.first_year}-{self.last_year}; add {year} "
                "to each file under rules/limits/ once the IRS publishes its figures (docs/rules-as-data.md, 'Adding a limit year')")

    def for_year(self, year: int, *, source: str = "", field: str = "year") -> YearLimits:
        """The limits for a year; a year outside rules/limits is a clear error."""
        if year not in self.years:
            raise LimitYearMissing(Problem(source or "rules/limits", field, self.missing_year(year)))
        kwargs: dict = {}
        citations = {}
        for family_id, attr in FAMILIES.items():
            value = self.families[family_id].values[year]
            kwargs[attr] = value.amount
            citations[attr] = f"{self.families[family_id].section}; {value.citation}"
        prior = self.families["hce_compensation_threshold"].values.get(year - 1)
        return YearLimits(year=year, citations=citations,
                          hce_414q_prior_year=prior.amount if prior else None, **kwargs)


def load_limits(directory: Path) -> LimitTable:
    """Load and cross-check every limit family under a directory (parameters from ../parameters)."""
    loaded, problems = load_folder(directory, LimitFamily)
    families = {family_id: family for family_id, (family, _) in loaded.items()}
    sources = {family_id: source for family_id, (_, source) in loaded.items()}
    for family_id in FAMILIES:
        if family_id not in families and not any(family_id in p.source for p in problems):
            problems.append(Problem(str(directory / f"{family_id}.yaml"), "", "limit file is missing"))
    if problems:
        raise InputError(problems)
    last_year = max(max(f.values) for f in families.values())
    first_year = max(min(f.values) for f in families.values())
    for family_id, family in families.items():
        years = sorted(family.values)
        expected = range(years[0], last_year + 1)
        for year in expected:
            if year not in family.values:
                problems.append(Problem(
                    sources[family_id], f"values.{year}",
                    f"year {year} is missing (limit files cover {first_year}-{last_year}; "
                    "write null with a note if the limit did not exist)"))
        for attr_year in family.values:
            value = family.values[attr_year]
            if value.amount is None and family_id not in ("catch_up_limit_age_60_63", "roth_catch_up_wage_threshold"):
                problems.append(Problem(sources[family_id], f"values.{attr_year}.amount",
                                        "this limit exists every year; a number is required"))
    if problems:
        raise InputError(problems)
    return LimitTable(families, sources, load_parameters(directory.parent / "parameters"))
