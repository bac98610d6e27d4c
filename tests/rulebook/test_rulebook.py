"""The rule loader against deliberately broken rule files: each is a load error with file and rule id."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from helpers import ROOT
from plancheck.errors import InputError
from plancheck.rulebook.rules import load_rulebook

RULE = "checks/period/after-tax-not-permitted.yaml"


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", target)
    return target


def edit(rules: Path, old: str, new: str, name: str = RULE) -> None:
    path = rules / name
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("{fact: ytd_after_tax, gt: 0}", "{fact: ytd_aftertax, gt: 0}", "unknown fact 'ytd_aftertax'"),
    ("{fact: ytd_after_tax, gt: 0}", "{fact: ytd_after_tax, above: 0}", "unknown key(s) ['above']"),
    ("{fact: ytd_after_tax, gt: 0}", "{fact: ytd_after_tax, gt: 0, lt: 5}", "exactly one operator"),
    ("{fact: ytd_after_tax, gt: 0}", "{fact: ytd_after_tax, gt: {fact: plan_allows_roth}}",
     "compares a money fact with 'plan_allows_roth', a flag fact"),
    ("{fact: plan_allows_after_tax, eq: false}", "{fact: plan_allows_after_tax, eq: 2}", "flag constant"),
    ("{fact: ytd_after_tax, gt: 0}", "{fact: ytd_after_tax, gt: '1.234'}", "money constant"),
    ("all:\n", "every:\n", "expected all, any, not, condition, or fact"),
    ("but plan {plan_id}", "but plan {plan}", "unknown placeholder(s) ['plan']"),
    ("but plan {plan_id}", "but plan {plan_id!r}", "plain name"),
    ("severity: error", "severity: fatal", "severity"),
    ("citation: ", "citaton: ", "citaton: unknown key"),
    ("report: {amount: ytd_after_tax}", "report: {amount: ytd_aftertax}", "unknown fact 'ytd_aftertax'"),
    ("id: after-tax-not-permitted", "id: after-tax-not-allowed", "must equal the file name"),
    ("facts: {plan_allows_after_tax: false, ytd_after_tax: \"100.00\", after_tax: \"100.00\"}",
     "facts: {plan_allows_after_tax: false, ytd_after_tx: \"100.00\"}", "unknown fact 'ytd_after_tx'"),
], ids=["unknown fact", "unknown operator", "two operators", "type mismatch", "bad flag", "bad money",
        "bad combinator", "unknown placeholder", "placeholder conversion", "bad severity", "misspelt key",
        "report fact", "id not file name", "example fact"])
def test_broken_rule_is_a_load_error_naming_file_and_rule(rules, old, new, expected):
    """Each kind of mistake in a rule file is refused with its file, line and a sentence saying what is wrong."""
    edit(rules, old, new)
    with pytest.raises(InputError) as info:
        load_rulebook(rules)
    text = str(info.value)
    assert "after-tax-not-permitted.yaml" in text and expected in text


def test_a_rule_needs_a_firing_and_a_silent_example(rules):
    """A rule whose examples all fire is refused."""
    path = rules / "checks/period/roth-not-permitted.yaml"
    path.write_text(path.read_text().replace("fires: false", "fires: true"))
    with pytest.raises(InputError, match="at least one case that fires and one that does not"):
        load_rulebook(rules)


def test_duplicate_rule_ids_and_aliases_are_refused(rules):
    """Ids are permanent and unique, aliases included."""
    edit(rules, "severity: error", "severity: error\naliases: [roth-not-permitted]")
    with pytest.raises(InputError, match="'roth-not-permitted' is already used"):
        load_rulebook(rules)


def test_every_problem_is_reported_at_once(rules):
    """Two broken files give two problems in one error, not one at a time."""
    edit(rules, "{fact: ytd_after_tax, gt: 0}", "{fact: nope, gt: 0}")
    edit(rules, "{fact: ytd_roth, gt: 0}", "{fact: nada, gt: 0}", "checks/period/roth-not-permitted.yaml")
    with pytest.raises(InputError) as info:
        load_rulebook(rules)
    assert len(info.value.problems) == 2


NEW_LANGUAGE_RULE = """\
id: language-sampler
title: A rule written with not, in and a named condition
severity: info
subject: period
citation: none (a test of the rule language)
description: Fires for participants of 50, 55 or 60 who are not HCEs and who defer in a plan with after-tax.
when:
  all:
    - {condition: takes_after_tax}
    - {fact: age, in: [50, 55, 60]}
    - not: {any: [{fact: prior_year_hce, eq: true}, {fact: ytd_deferrals, lte: 0}]}
message: Sampler fired at age {age}.
examples:
  - name: fires at 55, non-HCE, deferring, after-tax plan
    fires: true
    facts: {plan_allows_after_tax: true, age: 55, ytd_deferrals: "1.00"}
  - name: age 56 is not in the list
    fires: false
    facts: {plan_allows_after_tax: true, age: 56, ytd_deferrals: "1.00"}
  - name: an HCE is excluded by the not
    fires: false
    facts: {plan_allows_after_tax: true, age: 55, ytd_deferrals: "1.00", prior_year_hce: true}
  - name: nothing deferred is excluded by the not
    fires: false
    facts: {plan_allows_after_tax: true, age: 55}
  - name: the named condition must hold
    fires: false
    facts: {plan_allows_after_tax: false, age: 55, ytd_deferrals: "1.00"}
"""


def test_not_in_and_named_conditions_decide_as_written(tmp_path, root):
    """`not`, `in` and a named condition from the catalogue compile to the engine and to numpy alike."""
    import numpy as np

    from plancheck.checks.rule_audit import audit_rules
    from plancheck.engine import Engine
    from plancheck.engine.prescreen import evaluate_columns
    from plancheck.rulebook.rules import load_rulebook

    rules = tmp_path / "rules"
    shutil.copytree(root / "rules", rules)
    catalogue = rules / "facts" / "period.yaml"
    catalogue.write_text(catalogue.read_text() + "conditions:\n  takes_after_tax:\n"
                         "    description: The plan accepts after-tax contributions.\n"
                         "    when: {fact: plan_allows_after_tax, eq: true}\n")
    (rules / "checks" / "period" / "language-sampler.yaml").write_text(NEW_LANGUAGE_RULE)
    audits, problems = audit_rules(rules)
    assert problems == [] and [a.failed for a in audits if a.rule == "language-sampler"] == [[]]
    rulebook = load_rulebook(rules)
    rule = rulebook.by_id["language-sampler"]
    engine = Engine(rulebook)
    records = [rulebook.example_facts(rule, e) for e in rule.examples]
    fired = {i for i, r in engine["period"].fire(records) if r == rule.id}
    columns = {n: np.array([r[n] for r in records], dtype=np.int64) for n in records[0]}
    assert fired == set(np.flatnonzero(evaluate_columns(rule.condition, columns)).tolist()) == {0}


def test_an_unknown_named_condition_is_a_load_error(rules):
    """A rule naming a condition the catalogue does not define is refused with the names it knows."""
    path = rules / "checks" / "period" / "after-tax-not-permitted.yaml"
    path.write_text(path.read_text().replace("- {fact: plan_allows_after_tax, eq: false}", "- {condition: no_such}"))
    with pytest.raises(InputError, match="unknown named condition 'no_such'"):
        load_rulebook(rules)


def test_the_rule_schema_describes_every_bundled_rule_and_refuses_a_bad_condition(root):
    """`plancheck schema rule` gives editors the condition language: every rule file fits it, a typo does not."""
    import jsonschema

    from plancheck.documents.yamlio import read_document
    from plancheck.rulebook.rules import RuleFile

    validator = jsonschema.Draft202012Validator(RuleFile.model_json_schema())
    for path in sorted((root / "rules" / "checks").glob("*/*.yaml")):
        errors = [e.message for e in validator.iter_errors(read_document(path))]
        assert errors == [], (path.name, errors)
    document = read_document(root / "rules" / "checks" / "period" / "after-tax-not-permitted.yaml")
    assert not validator.is_valid({**document, "when": {"every": [{"fact": "age", "gt": 1}]}})
    assert not validator.is_valid({**document, "when": {"fact": "age", "over": 1}})
    assert not validator.is_valid({**document, "when": {"fact": "age", "gt": 1, "lt": 9}})


def test_a_plan_example_is_decided_on_its_plans_facts(rules):
    """A plan rule's example may be a plan document; a wrong verdict on it fails the rules audit."""
    from plancheck.checks.rule_audit import audit_rules

    path = rules / "checks" / "plan" / "mega-backdoor-ready.yaml"
    path.write_text(path.read_text().replace(
        "  - name: a plan without after-tax money does not fire\n    fires: false",
        "  - name: a plan without after-tax money does not fire\n    fires: true"))
    audits, problems = audit_rules(rules)
    assert problems == []
    assert [a.failed for a in audits if a.rule == "mega-backdoor-ready"] == [["a plan without after-tax money does not fire"]]


def test_an_example_plan_that_does_not_validate_is_a_load_problem(rules):
    """An example plan document with a misspelt key is refused with the rule file and the key."""
    from plancheck.checks.rule_audit import audit_rules

    path = rules / "checks" / "plan" / "mega-backdoor-ready.yaml"
    path.write_text(path.read_text().replace("      contributions: {pretax: true, after_tax: true}\n",
                                             "      contributions: {pretax: true, aftertax: true}\n", 1))
    audits, problems = audit_rules(rules)
    assert audits == [] and any("mega-backdoor-ready.yaml" in p.source and "aftertax" in p.field for p in problems)
