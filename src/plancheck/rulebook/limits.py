"""IRS dollar limits, loaded from dated, cited YAML files under rules/limits/.

One file per limit family (OpenFisca style), values keyed by calendar year, each value with
its own citation. Every family must cover the same years up to the same last year, so a
year missing from one file is a load error instead of a silent gap.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, model_validator

from plancheck.documents.folders import document_files
from plancheck.documents.yamlio import read_document, validation_problems
from plancheck.errors import InputError, LimitYearMissing, Problem
from plancheck.models import Reference, Strict
from plancheck.money import Cents


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


class ParameterTier(Strict):
    """One tier of a percentage formula: `rate` % of deferrals up to `up_to_percent` % of pay."""

    rate: Decimal = Field(ge=0, le=100)
    up_to_percent: Decimal = Field(gt=0, le=100)


class Parameter(Strict):
    """A figure of the law that is not a yearly dollar limit: an age, a percentage, a tolerance.

    Either one `value` or, for a match formula, `tiers`. Like a limit family it carries the
    section of law it comes from and references; unlike one it does not change by year (a rule
    that starts in a given year is gated by a limit family whose earlier years are null).
    """

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    title: str
    section: str = Field(min_length=3, description="Statute or regulation, e.g. 'IRC 414(v)(5)(A)'")
    description: str
    unit: Literal["years", "months", "percent", "multiplier", "USD", "USD per pay period", "employees", "calendar year"]
    references: list[Reference] = Field(min_length=1)
    value: Decimal | None = Field(default=None, ge=0)
    tiers: list[ParameterTier] | None = None

    @model_validator(mode="after")
    def _value_or_tiers(self) -> "Parameter":
        if (self.value is None) == (self.tiers is None):
            raise ValueError("give exactly one of value or tiers")
        if self.tiers is not None and self.unit != "percent":
            raise ValueError("tiers are percentages: unit must be percent")
        return self


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
                "to each file under rules/limits/ once the IRS publishes its figures (README, 'Adding a limit year')")

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


M = TypeVar("M", bound=Strict)  # a document with an `id`: LimitFamily or Parameter

#: Parameters the code reads (rules/parameters/<id>.yaml); each must exist, with its unit.
PARAMETERS = {
    "catch_up_eligibility_age": "years",
    "catch_up_age_60_63_first": "years",
    "catch_up_age_60_63_last": "years",
    "match_rounding_tolerance": "USD per pay period",
    "early_withdrawal_age": "years",
    "safe_harbor_basic_match": "percent",
    "safe_harbor_qaca_match": "percent",
    "safe_harbor_enhanced_match_max_pay_percent": "percent",
    "safe_harbor_nonelective_percent": "percent",
    "safe_harbor_qaca_nonelective_percent": "percent",
    "early_distribution_additional_tax_percent": "percent",
    "early_distribution_separation_age": "years",
    "emergency_personal_expense_distribution_limit": "USD",
    "emergency_personal_expense_distribution_first_year": "calendar year",
    "qualified_birth_adoption_distribution_limit": "USD",
    "qualified_birth_adoption_distribution_period": "months",
    "qualified_birth_adoption_distribution_first_year": "calendar year",
    # Year-end testing (facts/yearend.py)
    "adp_acp_multiplier_basic": "multiplier",
    "adp_acp_multiplier_alternative": "multiplier",
    "adp_acp_alternative_spread": "percent",
    "first_plan_year_nhce_percentage": "percent",
    "top_paid_group_percent": "percent",
    "top_paid_group_exclusion_age": "years",
    "top_paid_group_exclusion_service": "months",
    "five_percent_owner": "percent",
    "one_percent_owner": "percent",
    "one_percent_owner_compensation": "USD",
    "top_heavy_ratio": "percent",
    "top_heavy_minimum_contribution": "percent",
    "top_heavy_officer_limit": "employees",
    "top_heavy_officer_minimum": "employees",
    "top_heavy_officer_percent": "percent",
    "top_heavy_no_service_period": "years",
    "top_heavy_distribution_period": "years",
    "top_heavy_in_service_distribution_period": "years",
    "excess_contribution_excise_deadline": "months",
    "excess_contribution_excise_deadline_eaca": "months",
    "excess_contribution_final_deadline": "months",
    "excess_deferral_deadline": "months",
    "eligibility_maximum_age": "years",
    "eligibility_maximum_service": "months",
    "eligibility_maximum_service_full_vesting": "months",
    # QACA automatic enrollment (facts/enrollment.py)
    "qaca_minimum_initial_percent": "percent",
    "qaca_minimum_annual_increase_percent": "percent",
    "qaca_minimum_final_percent": "percent",
    "qaca_maximum_percent": "percent",
    "qaca_maximum_initial_percent": "percent",
    "qaca_maximum_percent_first_year": "calendar year",
}


def _load_folder(directory: Path, model: type[M]) -> tuple[dict[str, tuple[M, str]], list[Problem]]:
    """Every YAML file of a folder as `model`, keyed by id (which must equal the file name), and the problems."""
    loaded: dict[str, tuple[M, str]] = {}
    problems: list[Problem] = []
    try:
        paths = document_files(directory)
    except InputError as exc:
        return loaded, list(exc.problems)
    for path in paths:
        data = read_document(path)
        try:
            document = model.model_validate(data)
        except ValidationError as exc:
            problems.extend(validation_problems(exc, data, str(path)).problems)
            continue
        if document.id != path.stem:
            problems.append(Problem(str(path), "id", f"must equal the file name '{path.stem}'", got=repr(document.id)))
            continue
        loaded[document.id] = (document, str(path))
    return loaded, problems


def load_parameters(directory: Path) -> dict[str, Parameter]:
    """Every parameter file of a directory; the ones the code reads must be present with their unit."""
    loaded, problems = _load_folder(directory, Parameter)
    parameters = {parameter_id: parameter for parameter_id, (parameter, _) in loaded.items()}
    for parameter_id, unit in PARAMETERS.items():
        path = str(directory / f"{parameter_id}.yaml")
        if parameter_id not in parameters:
            if not any(p.source == path for p in problems):
                problems.append(Problem(path, "", "parameter file is missing"))
        elif parameters[parameter_id].unit != unit:
            problems.append(Problem(path, "unit", f"must be {unit!r}", got=repr(parameters[parameter_id].unit)))
    if problems:
        raise InputError(problems)
    return parameters


def load_limits(directory: Path) -> LimitTable:
    """Load and cross-check every limit family under a directory (parameters from ../parameters)."""
    loaded, problems = _load_folder(directory, LimitFamily)
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
