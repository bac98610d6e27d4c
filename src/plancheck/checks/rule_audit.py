"""Rule-file audits: every rule compiles, is cited, reads only facts the code builds, and its
examples are decided as written by a fresh engine."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plancheck.engine import Engine
from plancheck.errors import InputError
from plancheck.rulebook.rules import check_built_facts, load_rulebook


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
    from plancheck.checks.ruleset import built_facts
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
