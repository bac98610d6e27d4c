"""Figures of the law that are not yearly dollar limits (ages, percentages, tolerances), from rules/parameters/.

One file per parameter, each citing the section of law it comes from; the ones the code reads
(PARAMETERS) must be present, with their unit. The limit families (limits.py) are loaded the
same way (`load_folder`) and carry the parameters beside them in their LimitTable.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Literal, TypeVar

from pydantic import Field, ValidationError, model_validator

from plancheck.documents.folders import document_files
from plancheck.documents.yamlio import read_document, validation_problems
from plancheck.errors import InputError, Problem
from plancheck.models import Reference, Strict


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


def load_folder(directory: Path, model: type[M]) -> tuple[dict[str, tuple[M, str]], list[Problem]]:
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
    loaded, problems = load_folder(directory, Parameter)
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
