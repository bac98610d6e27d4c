"""Rule-file audits: every rule compiles, is cited, reads only facts the code builds, and its
examples are decided as written by a fresh engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from plancheck.documents.plan import Plan
from plancheck.documents.yamlio import validation_problems
from plancheck.engine import Engine
from plancheck.errors import InputError
from plancheck.facts.plan import plan_facts
from plancheck.rulebook.limits import LimitTable, load_limits
from plancheck.rulebook.rules import Example, Rule, Rulebook, check_built_facts, load_rulebook


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


def example_record(rulebook: Rulebook, limits: LimitTable | None, rule: Rule, example: Example) -> dict[str, int]:
    """The fact record an example stands for: its facts (the rest zero), or the facts of its plan document."""
    if example.plan is None:
        return rulebook.example_facts(rule, example)
    assert limits is not None, "a plan example needs the limits"
    try:
        plan = Plan.model_validate(example.plan)
    except ValidationError as exc:
        raise validation_problems(exc, example.plan, f"{rule.source}: example {example.name!r}") from None
    return plan_facts(plan, limits, example.year or plan.plan_year or limits.last_year)


def audit_rules(rules_dir: Path) -> tuple[list[RuleAudit], list[Any]]:
    """Load every rule (compiling it) and run every example through a fresh engine.

    Returns the per-rule audits and the problems: files that do not load, or limit figures that break
    their indexing or citation (checks/limit_audit.py); an empty list when there are none.
    """
    from plancheck.checks.limit_audit import limit_problems
    from plancheck.checks.ruleset import built_facts
    try:
        rulebook = load_rulebook(rules_dir)
        check_built_facts(rulebook, built_facts())
        cases = [(rule, example) for rules in rulebook.rules.values() for rule in rules for example in rule.examples]
        has_limits = (rules_dir / "limits").is_dir()
        # A plan-document example needs the limits (its facts are built for a plan year); so does their own audit.
        limits = load_limits(rules_dir / "limits") if has_limits or any(e.plan is not None for _, e in cases) else None
        records = {(rule.id, example.name): example_record(rulebook, limits, rule, example) for rule, example in cases}
    except InputError as exc:
        return [], exc.problems
    figure_problems = limit_problems(limits) if limits is not None else []
    engine = Engine(rulebook)
    audits = []
    try:
        for subject, rules in rulebook.rules.items():
            for rule in rules:
                failed = []
                for example in rule.examples:
                    fired = {r for _, r in engine[subject].fire([records[rule.id, example.name]])}
                    if (rule.id in fired) is not example.fires:
                        failed.append(example.name)
                audits.append(RuleAudit(rule.id, rule.source, rule.line, rule.severity, rule.citation,
                                        len(rule.examples), failed))
    finally:
        engine.close()
    return audits, figure_problems
