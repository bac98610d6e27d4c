"""Every rule file's own examples, run through the real engine, plus completeness checks."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import ROOT
from plancheck.checks.rule_audit import example_record
from plancheck.checks.ruleset import load_rules
from plancheck.engine.prescreen import evaluate_columns

RULEBOOK, LIMITS = load_rules(ROOT / "rules")
CASES = [(rule, example) for rules in RULEBOOK.rules.values() for rule in rules for example in rule.examples]


@pytest.mark.parametrize(("rule", "example"), CASES, ids=[f"{r.id}: {e.name}" for r, e in CASES])
def test_rule_example(rule, example, engine):
    """A rule fires on its firing examples and stays silent on the others."""
    facts = example_record(RULEBOOK, LIMITS, rule, example)
    fired = {rule_id for _, rule_id in engine[rule.subject].fire([facts])}
    assert (rule.id in fired) is example.fires


@pytest.mark.parametrize(("rule", "example"), CASES, ids=[f"{r.id}: {e.name}" for r, e in CASES])
def test_prescreen_agrees_with_engine_on_examples(rule, example):
    """The vectorized form of a condition decides each example as the engine does."""
    facts = example_record(RULEBOOK, LIMITS, rule, example)
    columns = {k: np.array([v], dtype=np.int64) for k, v in facts.items()}
    assert bool(evaluate_columns(rule.condition, columns)[0]) is example.fires


def test_interface_rule_ids_exist():
    """Rule ids that are part of the interface are present."""
    ids = set(RULEBOOK.by_id)
    assert {"402g-deferral-limit", "415c-annual-additions", "after-tax-not-permitted", "roth-not-permitted",
            "catch-up-not-permitted", "roth-catch-up-required", "deferral-rate-above-plan-max",
            "match-formula-mismatch"} <= ids


@pytest.mark.parametrize("rule", [r for rules in RULEBOOK.rules.values() for r in rules], ids=lambda r: r.id)
def test_rule_is_complete(rule):
    """Each rule carries a title, severity, citation naming a source, and both kinds of example."""
    assert rule.title and rule.severity in ("error", "warning", "info")
    assert any(word in rule.citation for word in ("IRC", "Treas. Reg.", "Notice", "Rev. Proc.", "ERISA"))
    assert any(e.fires for e in rule.examples) and any(not e.fires for e in rule.examples)


def test_every_catalogue_fact_is_documented():
    """Each fact in every catalogue has a description a reader can use."""
    for catalogue in RULEBOOK.catalogues.values():
        for name, spec in catalogue.facts.items():
            assert len(spec.description) >= 10, name
