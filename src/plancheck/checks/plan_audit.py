"""Plan configuration audits: each plan document's facts fire every plan rule through the engine.
A document that does not load yields one finding of the plan rule the loader raises (`raised_by: loader`)
per problem, with its file, line and key; every finding points at the document key its rule names (`locate`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plancheck.documents.folders import document_files
from plancheck.documents.plan import Plan, load_plan_document
from plancheck.documents.yamlio import line_of
from plancheck.engine import Engine
from plancheck.errors import InputError, Problem, shorten, shown
from plancheck.facts.plan import plan_facts
from plancheck.findings import Finding, build_finding
from plancheck.rulebook.limits import LimitTable
from plancheck.rulebook.rules import Rule, Rulebook

PLAN_FILE_SUFFIXES = (".yaml", ".yml", ".json")


@dataclass
class PlanAudit:
    """Findings of one plan document, with where each points."""

    path: Path
    plan_id: str
    findings: list[Finding]
    #: What the fired rules' `verdict:` say of the plan, e.g. {"mega_backdoor": "ready"}; empty when not loaded.
    verdicts: dict[str, str]
    #: The rules that gave those verdicts (a text report says them once, in the plan's heading).
    verdict_rules: frozenset[str] = frozenset()
    #: The plan year audited (the document's, else --year, else the last year with limits); None when not loaded.
    year: int | None = None


def _locate(rule: Rule, data: Any) -> int | None:
    if not rule.locate or data is None:
        return None
    return line_of(data, tuple(rule.locate.split(".")))


def audit_plans(paths: list[Path], limits: LimitTable, rulebook: Rulebook, engine: Engine,
                year: int | None = None) -> list[PlanAudit]:
    """Audit each plan document; a document that does not load is reported, not raised."""
    types = rulebook.fact_types("plan")
    invalid_rule = next(r for r in rulebook.rules["plan"] if r.raised_by == "loader")
    audits: list[PlanAudit] = []
    loaded: list[tuple[Path, Plan, Any, dict[str, int]]] = []
    for path in paths:
        try:
            plan, data = load_plan_document(path)
        except InputError as exc:
            findings = []
            for problem in exc.problems:
                facts = dict.fromkeys(types, 0) | {"schema_errors": len(exc.problems)}
                text = f"{problem.field}: {problem.expected}" if problem.field else problem.expected
                if problem.got:
                    text += f" (got {shorten(problem.got)})"
                context = {"plan_id": path.stem, "plan_name": None, "file": str(path), "line": problem.line,
                           "field": problem.field or None, "problem": text}
                findings.append(build_finding(invalid_rule, facts, types, context))
            audits.append(PlanAudit(path, path.stem, findings, {}))
            continue
        loaded.append((path, plan, data, plan_facts(plan, limits, plan.plan_year or year or limits.last_year)))
    _refuse_duplicate_ids(loaded)
    return audits + _audit_loaded(loaded, rulebook, engine)


def audit_document(data: Any, source: str, limits: LimitTable, rulebook: Rulebook, engine: Engine,
                   year: int | None = None) -> PlanAudit:
    """Audit one plan document already parsed (a posted JSON body); schema problems raise InputError."""
    from pydantic import ValidationError

    from plancheck.documents.yamlio import validation_problems
    if not isinstance(data, dict):
        raise InputError(Problem(source, "", "a plan document must be a mapping of keys"))
    try:
        plan = Plan.model_validate(data)
    except ValidationError as exc:
        raise validation_problems(exc, data, source) from None
    facts = plan_facts(plan, limits, plan.plan_year or year or limits.last_year)
    return _audit_loaded([(Path(source), plan, data, facts)], rulebook, engine)[0]


def _audit_loaded(loaded: list[tuple[Path, Plan, Any, dict[str, int]]], rulebook: Rulebook,
                  engine: Engine) -> list[PlanAudit]:
    """Fire every plan rule on each loaded document's facts."""
    types = rulebook.fact_types("plan")
    audits: list[PlanAudit] = []
    firings = engine["plan"].fire([facts for *_, facts in loaded]) if loaded else []
    by_plan: dict[int, list[str]] = {}
    for index, rule_id in firings:
        by_plan.setdefault(index, []).append(rule_id)
    for index, (path, plan, data, facts) in enumerate(loaded):
        findings, verdicts, verdict_rules = [], {}, set()
        for rule_id in by_plan.get(index, []):
            rule = rulebook.by_id[rule_id]
            context = {"plan_id": plan.plan_id, "plan_name": plan.name, "file": str(path),
                       "line": _locate(rule, data), "year": facts["year"]}
            findings.append(build_finding(rule, facts, types, context))
            if rule.verdict:
                verdicts.update(rule.verdict)
                verdict_rules.add(rule.id)
        audits.append(PlanAudit(path, plan.plan_id, findings, verdicts, frozenset(verdict_rules), facts["year"]))
    return audits


def plan_paths(arguments: list[Path], default_dir: Path) -> list[Path]:
    """The plan files named, folders expanded; every plan file in default_dir when none is named.

    A file that does not exist, or a folder without plan documents, is an InputError: an audit
    of nothing must not pass.
    """
    paths: list[Path] = []
    problems: list[Problem] = []
    if not arguments:
        try:
            default_dir = default_dir.resolve().relative_to(Path.cwd().resolve())
        except ValueError:
            pass
    for argument in arguments or [default_dir]:
        if argument.is_dir():
            try:
                found = document_files(argument, PLAN_FILE_SUFFIXES)
            except InputError as exc:
                problems.extend(exc.problems)
                continue
            if not found:
                problems.append(Problem(str(argument), "", "no plan documents (.yaml, .yml or .json) in this directory"))
            paths.extend(found)
        elif argument.exists():
            paths.append(argument)
        else:
            problems.append(Problem(str(argument), "", "file not found"))
    if problems:
        raise InputError(problems)
    return paths


def _refuse_duplicate_ids(loaded: list[tuple[Path, Plan, Any, dict[str, int]]]) -> None:
    """Two documents with one plan_id would make every batch and withdrawal check ambiguous: exit status 2."""
    first: dict[str, Path] = {}
    problems = []
    for path, plan, data, _facts in loaded:
        if plan.plan_id in first:
            problems.append(Problem(str(path), "plan_id", f"duplicate plan_id {shown(plan.plan_id)}, also in "
                                                          f"{first[plan.plan_id]}", line_of(data, ("plan_id",))))
        else:
            first[plan.plan_id] = path
    if problems:
        raise InputError(problems)
