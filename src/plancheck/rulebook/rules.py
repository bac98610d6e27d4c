"""Rule files and fact catalogues under rules/: loading, validation and compilation.

One rule, one file, one permanent id (sqlfluff/ruff style). A rule names its subject (the
kind of fact it reads: a pay period, a withdrawal request, a plan document), its condition in
the language of conditions.py, what to report as amount and limit, a message template, a
citation, examples that must fire and must not fire, and for a period rule the repair the
nearest compliant election makes (repairs.py). The catalogue for each subject (catalogue.py) lists
every fact with its type, so a rule that reads a fact that does not exist fails at load with
its file and id.
"""

from __future__ import annotations

import hashlib
import os
import string
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from plancheck.documents.folders import document_files
from plancheck.documents.yamlio import line_of, read_document, validation_problems
from plancheck.errors import InputError, Problem
from plancheck.models import Reference, Strict
from plancheck.rulebook.catalogue import FactCatalogue, Subject, load_catalogue
from plancheck.rulebook.conditions import (
    Condition,
    ConditionError,
    coerce_constant,
    condition_json_schema,
    facts_used,
    parse_condition,
)
from plancheck.rulebook.repairs import Repair, repair_problems

Severity = Literal["error", "warning", "info"]
SUBJECTS: tuple[str, ...] = ("period", "withdrawal", "plan", "yearend")

#: Placeholders every message may use besides the subject's facts.
COMMON_PLACEHOLDERS = frozenset({"amount", "limit", "excess", "rule", "title", "citation"})
#: Subject-specific context placeholders (filled from the subject, not from facts).
CONTEXT_PLACEHOLDERS = {
    "period": frozenset({"plan_id", "employee_id", "pay_date"}),
    "withdrawal": frozenset({"plan_id", "employee_id", "request_id", "source", "request_kind", "request_date",
                             "age", "minimum_age", "amount_requested"}),
    "plan": frozenset({"plan_id", "plan_name", "file", "problem"}),
    "yearend": frozenset({"plan_id", "plan_name"}),
}


class Report(Strict):
    """Which facts a finding reports as amount and limit (excess = amount - limit)."""

    amount: str
    limit: str | None = None
    total: Literal["year_to_date", "per_period"] = Field(
        default="year_to_date", description="period rules: how an election's year_end_amount and year_end_excess "
        "are made. year_to_date: the amount is a running total, read at the year's last pay period; per_period: "
        "the amount is one pay period's, added up over the year (the excess over the periods the rule fires on)")
    year_excess: str | None = Field(
        default=None, description="period rules: a year-to-date fact that is the year's excess itself, read at the "
        "last pay period, where the per-period excess overstates it (deferrals above a plan's cap that catch-up covers)")


class Example(Strict):
    """A case the rule must decide: facts (those not given are zero), or for a plan rule a plan document."""

    name: str = Field(min_length=5)
    fires: bool
    facts: dict[str, Any] = Field(default_factory=dict)
    plan: dict[str, Any] | None = Field(
        default=None, description="plan rules: a plan document, as in plans/, whose facts the rule is decided on")
    year: int | None = Field(default=None, ge=1990, le=2100,
                             description="with plan: the plan year (default: the document's, else the last with limits)")

    @model_validator(mode="after")
    def _facts_or_plan(self) -> "Example":
        if self.plan is not None and self.facts:
            raise ValueError("give facts or a plan, not both")
        if self.year is not None and self.plan is None:
            raise ValueError("year goes with plan")
        return self


class CorrectionSpec(Strict):
    """A correction a rule's failure calls for: its kind (the `correction` event's `kind`) and its law."""

    kind: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    citation: str = Field(min_length=5)


class RuleFile(Strict):
    """A rule file as written."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]*[a-z0-9]$")
    title: str = Field(min_length=5)
    severity: Severity
    subject: Subject
    citation: str = Field(min_length=5)
    description: str = Field(min_length=20)
    references: list[Reference] = Field(default_factory=list)
    aliases: list[str] = Field(default_factory=list)
    locate: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_.]*$",
                               description="plan rules: the document key a finding points at (file and line)")
    scope: Literal["plan", "employer"] = Field(
        default="plan", description="period rules: 'employer' when the rule compares figures of every plan of the "
        "employer (401(a)(30), 415(c)); a batch then reports it once per employee, at the first plan and pay date")
    raised_by: Literal["engine", "loader"] = Field(
        default="engine", description="engine: the rule fires on facts; loader: the finding is raised when an input "
        "does not load (its condition and examples describe that case over the facts)")
    inputs: list[Literal["election", "feed"]] = Field(
        default_factory=lambda: ["election", "feed"], min_length=1,
        description="period rules: what the rule is checked on, elections and payroll feeds (the default) or one of "
        "them (a rule on what only an election states, such as its percentage of pay, is not checked on feeds)")
    test: Literal["adp", "acp", "top_heavy"] | None = Field(
        default=None, description="yearend rules: the test whose figures the finding reports, and that it fails")
    corrections: list[CorrectionSpec] = Field(
        default_factory=list, description="yearend rules: the corrections the failure calls for, each with its law")
    verdict: dict[str, str] | None = Field(
        default=None, description="plan rules: what the audit's summary of the plan says when this rule fires, "
        "e.g. {mega_backdoor: ready}")
    when: dict[str, Any]
    report: Report | None = None
    repair: Repair | None = Field(default=None, description="period rules: how the nearest compliant election "
                                  "clears the rule (rulebook/repairs.py: stop_source, cut_excess, cut_growth, "
                                  "move_growth, cut_year)")
    message: str = Field(min_length=10)
    examples: list[Example] = Field(min_length=2)

    @classmethod
    def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """The schema, with `when:` (validated by parse_condition) described by the condition language."""
        schema = super().model_json_schema(*args, **kwargs)
        language = condition_json_schema()
        schema.setdefault("$defs", {}).update(language.pop("$defs", {}))
        schema["properties"]["when"] = {**language, "description": "The rule's condition (README: the rule language)"}
        return schema

    @model_validator(mode="after")
    def _both_kinds_of_example(self) -> "RuleFile":
        if not any(e.fires for e in self.examples) or all(e.fires for e in self.examples):
            raise ValueError("examples need at least one case that fires and one that does not")
        return self


@dataclass(frozen=True)
class Rule:
    """A validated, compiled rule."""

    id: str
    title: str
    severity: str
    subject: str
    citation: str
    description: str
    message: str
    condition: Condition
    report: Report | None
    examples: tuple[Example, ...]
    references: tuple[Reference, ...]
    aliases: tuple[str, ...]
    source: str
    line: int | None = None
    locate: str | None = None
    placeholders: frozenset[str] = frozenset()
    scope: str = "plan"
    raised_by: str = "engine"
    inputs: frozenset[str] = frozenset({"election", "feed"})
    verdict: dict[str, str] | None = None
    test: str | None = None
    corrections: tuple[CorrectionSpec, ...] = ()
    repair: Repair | None = None


@dataclass
class Rulebook:
    """All fact catalogues and rules, with a revision hash of every file they came from."""

    catalogues: dict[str, FactCatalogue]
    rules: dict[str, list[Rule]]
    revision: str
    root: Path
    by_id: dict[str, Rule] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_id = {r.id: r for rules in self.rules.values() for r in rules}

    def fact_types(self, subject: str) -> dict[str, str]:
        return {name: spec.type for name, spec in self.catalogues[subject].facts.items()}

    def example_facts(self, rule: Rule, example: Example) -> dict[str, int]:
        """The full integer fact record of an example: listed facts coerced, the rest zero."""
        types = self.fact_types(rule.subject)
        record = dict.fromkeys(types, 0)
        for name, value in example.facts.items():
            record[name] = coerce_constant(value, types[name], f"examples.{example.name}.{name}")
        return record


def _template_fields(template: str) -> set[str]:
    names = set()
    for _, name, spec, conv in string.Formatter().parse(template):
        if name is None:
            continue
        if not name.isidentifier() or conv or spec:
            raise ValueError(f"placeholder {{{name}}} must be a plain name without format or conversion")
        names.add(name)
    return names


def _compile_rule(path: Path, data: Any, catalogues: dict[str, FactCatalogue],
                  named: dict[str, dict[str, Condition]]) -> Rule:
    source = str(path)
    try:
        spec = RuleFile.model_validate(data)
    except ValidationError as exc:
        raise validation_problems(exc, data, source) from None
    problems: list[Problem] = []

    def problem(key: str, expected: str, loc: tuple = ()) -> None:
        problems.append(Problem(source, f"{key}", f"rule {spec.id}: {expected}", line_of(data, loc or (key.split(".")[0],))))

    if spec.id != path.stem:
        problem("id", f"must equal the file name '{path.stem}'")
    if spec.subject not in catalogues:
        raise InputError(Problem(source, "subject", f"no fact catalogue for subject {spec.subject!r}"))
    types = {n: s.type for n, s in catalogues[spec.subject].facts.items()}
    condition = None
    try:
        condition = parse_condition(spec.when, types, named=named.get(spec.subject, {}))
    except ConditionError as exc:
        problem(exc.path, str(exc).split(": ", 1)[1], ("when",))
    if spec.report:
        for key in ("amount", "limit", "year_excess"):
            name = getattr(spec.report, key)
            if name is not None and name not in types:
                problem(f"report.{key}", f"unknown fact {name!r}")
    for key, expected in repair_problems(spec.repair, spec.subject, spec.report is not None, types) if spec.repair else ():
        problem(key, expected)
    try:
        allowed = set(types) | COMMON_PLACEHOLDERS | CONTEXT_PLACEHOLDERS[spec.subject]
        unknown = _template_fields(spec.message) - allowed
        if unknown:
            problem("message", f"unknown placeholder(s) {sorted(unknown)}; use facts, {sorted(COMMON_PLACEHOLDERS)} "
                               f"or {sorted(CONTEXT_PLACEHOLDERS[spec.subject])}")
    except ValueError as exc:
        problem("message", str(exc))
    for i, example in enumerate(spec.examples):
        if example.plan is not None and spec.subject != "plan":
            problem(f"examples[{i}].plan", "a plan document is an example of plan rules only", ("examples", i))
        for name, value in example.facts.items():
            if name not in types:
                problem(f"examples[{i}].facts.{name}", f"unknown fact {name!r}", ("examples", i))
                continue
            try:
                coerce_constant(value, types[name], f"examples[{i}].facts.{name}")
            except ConditionError as exc:
                problem(f"examples[{i}].facts.{name}", str(exc).split(": ", 1)[1], ("examples", i))
    if problems:
        raise InputError(problems)
    assert condition is not None
    return Rule(
        id=spec.id, title=spec.title, severity=spec.severity, subject=spec.subject,
        citation=spec.citation, description=spec.description, message=spec.message,
        condition=condition, report=spec.report, examples=tuple(spec.examples),
        references=tuple(spec.references), aliases=tuple(spec.aliases), source=source,
        line=getattr(data, "line", None), locate=spec.locate, placeholders=frozenset(_template_fields(spec.message)),
        scope=spec.scope, raised_by=spec.raised_by, inputs=frozenset(spec.inputs), verdict=spec.verdict, test=spec.test,
        corrections=tuple(spec.corrections), repair=spec.repair,
    )


def load_rulebook(root: Path) -> Rulebook:
    """Load rules/facts/*.yaml and rules/checks/<subject>/*.yaml; every problem is reported."""
    digest = hashlib.sha256()
    problems: list[Problem] = []
    catalogues: dict[str, FactCatalogue] = {}
    named: dict[str, dict[str, Condition]] = {}
    for subject in SUBJECTS:
        path = root / "facts" / f"{subject}.yaml"
        if not path.exists() and not os.path.lexists(path) and not document_files(root / "checks" / subject):
            continue
        try:
            catalogue, named[subject] = load_catalogue(path)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        if catalogue.subject != subject:
            problems.append(Problem(str(path), "subject", f"must be {subject!r} to match the file name"))
        catalogues[subject] = catalogue
        digest.update(path.read_bytes())
    if problems:
        raise InputError(problems)
    rules: dict[str, list[Rule]] = {s: [] for s in catalogues}
    seen: dict[str, str] = {}
    for subject in catalogues:
        try:
            paths = document_files(root / "checks" / subject)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        for path in paths:
            digest.update(path.name.encode() + b"\0" + path.read_bytes())
            try:
                data = read_document(path)
                rule = _compile_rule(path, data, catalogues, named)
            except InputError as exc:
                problems.extend(exc.problems)
                continue
            if rule.subject != subject:
                problems.append(Problem(str(path), "subject", f"rule {rule.id}: file sits under checks/{subject}/"))
                continue
            taken = [("id", f"rule id or alias {n!r}") for n in (rule.id, *rule.aliases)]
            for key, name in taken + ([("repair.order", f"repair order {rule.repair.order}")] if rule.repair else []):
                if name in seen:
                    problems.append(Problem(str(path), key, f"{name} is already used by {seen[name]}"))
                seen[name] = str(path)
            rules[subject].append(rule)
    for folder in ("limits", "parameters"):
        try:
            paths = document_files(root / folder)
        except InputError as exc:
            problems.extend(exc.problems)
            continue
        for path in paths:
            digest.update(f"{folder}/{path.name}".encode() + b"\0" + path.read_bytes())
    if problems:
        raise InputError(problems)
    return Rulebook(catalogues=catalogues, rules=rules, revision=digest.hexdigest()[:12], root=root)


def check_built_facts(rulebook: Rulebook, built: dict[str, frozenset[str]]) -> None:
    """The facts each catalogue declares must be exactly the facts the code builds for that subject.

    A fact declared but never built would reach the engine as a missing value; one built but not
    declared could never be read by a rule. Either is a load error naming the catalogue file.
    """
    problems = []
    for subject, catalogue in rulebook.catalogues.items():
        if subject not in built:
            continue
        declared = set(catalogue.facts)
        path = str(rulebook.root / "facts" / f"{subject}.yaml")
        if missing := sorted(declared - built[subject]):
            problems.append(Problem(path, "facts", f"declared but not built by plancheck: {', '.join(missing)}"))
        if undeclared := sorted(built[subject] - declared):
            problems.append(Problem(path, "facts", f"built by plancheck but not declared: {', '.join(undeclared)}"))
    if problems:
        raise InputError(problems)


def used_facts(rules: list[Rule]) -> list[str]:
    """Sorted names of the facts a set of rules reads in its conditions."""
    names: set[str] = set()
    for rule in rules:
        names |= facts_used(rule.condition)
    return sorted(names)
