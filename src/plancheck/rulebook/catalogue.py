"""Fact catalogues under rules/facts/: every fact a subject's rules may read, and their named conditions."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from plancheck.documents.yamlio import line_of, read_document, validation_problems
from plancheck.errors import InputError, Problem
from plancheck.models import Strict
from plancheck.rulebook.conditions import FACT_TYPES, Condition, ConditionError, parse_condition

Subject = Literal["period", "withdrawal", "plan", "yearend"]


class FactSpec(Strict):
    """One fact of a subject: its type and what it holds."""

    type: Literal[FACT_TYPES]  # type: ignore[valid-type]
    description: str = Field(min_length=10)


class NamedConditionSpec(Strict):
    """A condition with a name, written once in the catalogue and reused by rules as {condition: NAME}."""

    description: str = Field(min_length=10)
    when: dict[str, Any]


class FactCatalogue(Strict):
    """Every fact the rules of one subject may read, and the named conditions they share."""

    subject: Subject
    description: str
    facts: dict[str, FactSpec] = Field(min_length=1)
    conditions: dict[str, NamedConditionSpec] = Field(
        default_factory=dict, description="Named conditions, in order; each may use the ones above it")

    @model_validator(mode="after")
    def _identifiers(self) -> "FactCatalogue":
        bad = [name for name in self.facts if not name.isidentifier() or name in ("id", "sid", "kind")]
        if bad:
            raise ValueError(f"fact names must be identifiers other than id, sid, kind: {bad}")
        return self


def load_catalogue(path: Path) -> tuple[FactCatalogue, dict[str, Condition]]:
    """A catalogue and its named conditions, parsed in order (each may use the ones before it)."""
    data = read_document(path)
    try:
        catalogue = FactCatalogue.model_validate(data)
    except ValidationError as exc:
        raise validation_problems(exc, data, str(path)) from None
    types = {n: s.type for n, s in catalogue.facts.items()}
    named: dict[str, Condition] = {}
    for name, spec in catalogue.conditions.items():
        try:
            named[name] = parse_condition(spec.when, types, f"conditions.{name}.when", named)
        except ConditionError as exc:
            raise InputError(Problem(str(path), exc.path, str(exc).split(": ", 1)[1],
                                     line_of(data, ("conditions", name)))) from None
    return catalogue, named
