"""Plan configuration audits and rule-file audits.

A plan document is turned into plan facts (rules/facts/plan.yaml) for its plan year and every
plan rule fires on it through the engine. A document that does not load yields one
plan-document-invalid finding per problem, with its file, line and key. Every finding points
at the document key its rule names (`locate`), so text and SARIF output can show the line.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from .engine import Engine
from .errors import InputError, Problem, shorten, shown
from .findings import Finding, build_finding
from .limits import LimitTable
from .money import apply_rate
from .plan import Plan, SafeHarborDesign, Source, SourceWithdrawal, load_plan_document, safe_harbor_sources
from .rulebook import Rule, Rulebook, check_built_facts, load_rulebook
from .safe_harbor import SAFE_HARBOR_FACTS, safe_harbor_facts
from .yamlio import line_of

PLAN_FILE_SUFFIXES = (".yaml", ".yml", ".json")

#: Every fact plan_facts returns; rules/facts/plan.yaml declares exactly these (tests/test_built_facts.py).
BUILT_FACTS = frozenset({
    "year", "year_has_limits", "year_has_60_63_limit", "allows_pretax", "allows_roth", "allows_after_tax",
    "catch_up_offered", "catch_up_60_63", "after_tax_in_service", "elective_in_service_before_59_half",
    "safe_harbor_in_service_before_59_half", "conversion_allowed", "conversion_sources", "conversion_from_after_tax",
    "conversion_from_roth", "safe_harbor", "has_match", "has_nonelective", "mega_backdoor_ready",
    "max_employer_additions", "limit_415c", "limit_401a17", "schema_errors",
}) | SAFE_HARBOR_FACTS


def _open_before(terms: SourceWithdrawal, age: Decimal) -> bool:
    """The source may be withdrawn in service before `age` (no minimum age, or a lower one)."""
    return terms.allowed and (terms.minimum_age is None or terms.minimum_age < age)


def plan_facts(plan: Plan, limits: LimitTable, year: int) -> dict[str, int]:
    """The plan facts of rules/facts/plan.yaml for one document and plan year (exactly BUILT_FACTS)."""
    has_limits = year in limits.years
    year_limits = limits.for_year(year) if has_limits else None
    pay_cap = year_limits.compensation_401a17 if year_limits else 0
    employer = 0
    if plan.match:
        low = 0
        for tier in plan.match.tiers:
            high = apply_rate(pay_cap, tier.up_to_percent)
            employer += apply_rate(high - low, tier.rate)
            low = high
        if plan.match.annual_cap is not None:
            employer = min(employer, plan.match.annual_cap)
    if plan.nonelective:
        employer += apply_rate(pay_cap, plan.nonelective.percent)
    withdrawals = plan.in_service_withdrawals
    conversion = plan.in_plan_roth_conversion
    age_59_half = limits.parameter("early_withdrawal_age")
    early_elective = any(_open_before(withdrawals.for_source(s), age_59_half) for s in (Source.pretax, Source.roth))
    early_safe_harbor = any(_open_before(withdrawals.for_source(s), age_59_half) for s in safe_harbor_sources(plan))
    converts_after_tax = Source.after_tax in conversion.sources
    ready = plan.contributions.after_tax and (
        withdrawals.after_tax.allowed or (conversion.allowed and plan.contributions.roth and converts_after_tax))
    return {
        "year": year,
        "year_has_limits": int(has_limits),
        "year_has_60_63_limit": int(bool(year_limits and year_limits.catch_up_60_63 is not None)),
        "allows_pretax": int(plan.contributions.pretax),
        "allows_roth": int(plan.contributions.roth),
        "allows_after_tax": int(plan.contributions.after_tax),
        "catch_up_offered": int(plan.catch_up.offered),
        "catch_up_60_63": int(plan.catch_up.age_60_63),
        "after_tax_in_service": int(withdrawals.after_tax.allowed),
        "elective_in_service_before_59_half": int(early_elective),
        "safe_harbor_in_service_before_59_half": int(early_safe_harbor),
        "conversion_allowed": int(conversion.allowed),
        "conversion_sources": len(conversion.sources),
        "conversion_from_after_tax": int(converts_after_tax),
        "conversion_from_roth": int(Source.roth in conversion.sources),
        "safe_harbor": int(plan.safe_harbor_design is not SafeHarborDesign.none),
        "has_match": int(plan.match is not None),
        "has_nonelective": int(plan.nonelective is not None),
        "mega_backdoor_ready": int(bool(ready)),
        "max_employer_additions": employer,
        "limit_415c": year_limits.annual_additions_415c if year_limits else 0,
        "limit_401a17": pay_cap,
        "schema_errors": 0,
        **safe_harbor_facts(plan, limits, pay_cap),
    }


@dataclass
class PlanAudit:
    """Findings of one plan document, with where each points."""

    path: Path
    plan_id: str
    findings: list[Finding]
    verdict: str | None  # mega-backdoor readiness: "ready", "unavailable", or None when not loaded


def _locate(rule: Rule, data: Any) -> int | None:
    if not rule.locate or data is None:
        return None
    return line_of(data, tuple(rule.locate.split(".")))


def audit_plans(paths: list[Path], limits: LimitTable, rulebook: Rulebook, engine: Engine,
                year: int | None = None) -> list[PlanAudit]:
    """Audit each plan document; a document that does not load is reported, not raised."""
    types = rulebook.fact_types("plan")
    invalid_rule = rulebook.by_id["plan-document-invalid"]
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
            audits.append(PlanAudit(path, path.stem, findings, None))
            continue
        loaded.append((path, plan, data, plan_facts(plan, limits, plan.plan_year or year or limits.last_year)))
    _refuse_duplicate_ids(loaded)
    firings = engine["plan"].fire([facts for *_, facts in loaded]) if loaded else []
    by_plan: dict[int, list[str]] = {}
    for index, rule_id in firings:
        by_plan.setdefault(index, []).append(rule_id)
    for index, (path, plan, data, facts) in enumerate(loaded):
        findings = []
        for rule_id in by_plan.get(index, []):
            rule = rulebook.by_id[rule_id]
            context = {"plan_id": plan.plan_id, "plan_name": plan.name, "file": str(path),
                       "line": _locate(rule, data), "year": facts["year"]}
            findings.append(build_finding(rule, facts, types, context))
        verdict = "ready" if facts["mega_backdoor_ready"] else "unavailable"
        audits.append(PlanAudit(path, plan.plan_id, findings, verdict))
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
            found = sorted(p for p in argument.iterdir() if p.suffix.lower() in PLAN_FILE_SUFFIXES and p.is_file())
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


@dataclass
class RuleAudit:
    """One rule file: whether it loaded, and which of its examples failed."""

    rule: str
    file: str
    line: int | None
    severity: str
    citation: str
    examples: int
    failed: list[str]


def audit_rules(rules_dir: Path) -> tuple[list[RuleAudit], list[Any]]:
    """Load every rule (compiling it) and run every example through a fresh engine.

    Returns the per-rule audits and the load problems (an empty list when all files load).
    """
    from .resources import built_facts
    try:
        rulebook = load_rulebook(rules_dir)
        check_built_facts(rulebook, built_facts())
    except InputError as exc:
        return [], exc.problems
    engine = Engine(rulebook)
    audits = []
    try:
        for subject, rules in rulebook.rules.items():
            for rule in rules:
                failed = []
                for example in rule.examples:
                    fired = {r for _, r in engine[subject].fire([rulebook.example_facts(rule, example)])}
                    if (rule.id in fired) is not example.fires:
                        failed.append(example.name)
                audits.append(RuleAudit(rule.id, rule.source, rule.line, rule.severity, rule.citation,
                                        len(rule.examples), failed))
    finally:
        engine.close()
    return audits, []
