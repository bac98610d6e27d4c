"""Repairs declared in the rule files (`repair:`): validated at load, shown in the docs, and the only
thing the nearest compliant election knows about a rule."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from helpers import ROOT, make_election, make_plan, plancheck
from plancheck.checks.nearest import nearest_compliant
from plancheck.engine import Engine
from plancheck.errors import InputError
from plancheck.rulebook.rules import load_rulebook
from plancheck.sinks.docs.rules import rule_page


@pytest.fixture
def rules(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", target)
    return target


def edit(rules: Path, name: str, old: str, new: str) -> None:
    path = rules / "checks" / name
    text = path.read_text()
    assert old in text, old
    path.write_text(text.replace(old, new, 1))


DEFERRAL_CAP = "period/deferral-rate-above-plan-max.yaml"
CAP_REPAIR = ("repair: {kind: cut_excess, from: [pretax, roth], periods: first, "
              "at_most: ytd_deferrals_above_plan_max_not_catch_up, order: 40}")


@pytest.mark.parametrize(("name", "old", "new", "expected"), [
    (DEFERRAL_CAP, "at_most: ytd_deferrals_above_plan_max_not_catch_up", "at_most: ytd_above_cap",
     "repair.at_most: rule deferral-rate-above-plan-max: unknown fact 'ytd_above_cap'"),
    (DEFERRAL_CAP, "from: [pretax, roth]", "from: [pretax, bonus]",
     "repair.cut_excess.from.1: Input should be 'pretax', 'roth' or 'after_tax' (got 'bonus')"),
    (DEFERRAL_CAP, "from: [pretax, roth]", "from: [pretax, pretax]", "names a source twice"),
    (DEFERRAL_CAP, "kind: cut_excess", "kind: cap_deferrals", "Input tag 'cap_deferrals' found using 'kind'"),
    (DEFERRAL_CAP, "order: 40}", "order: 40, when: always}", "when"),
    (DEFERRAL_CAP, "order: 40}", "order: 10}", "repair order 10 is already used by"),
    ("period/roth-catch-up-required.yaml", "to: roth", "to: pretax", "must differ from the source moved from"),
    ("period/after-tax-acp-risk.yaml", "report: {amount: ytd_after_tax}\n",
     "report: {amount: ytd_after_tax}\nrepair: {kind: cut_growth, from: [after_tax], order: 99}\n", None),
], ids=["unknown fact", "unknown source", "source twice", "unknown kind", "unknown key", "order taken",
        "move to itself", "a valid repair loads"])
def test_a_broken_repair_is_a_load_error_naming_file_and_rule(rules, name, old, new, expected):
    """Each mistake in a `repair:` block is refused at load with its file and what was expected."""
    edit(rules, name, old, new)
    if expected is None:
        assert load_rulebook(rules).by_id["after-tax-acp-risk"].repair.kind == "cut_growth"
        return
    with pytest.raises(InputError) as info:
        load_rulebook(rules)
    assert Path(name).name in str(info.value) and expected in str(info.value)


def test_a_repair_needs_a_period_rule_and_a_reported_excess(rules):
    """Only period rules are repaired (the nearest election), and a cut needs the excess the rule reports."""
    plan_rule = next((rules / "checks" / "plan").glob("*.yaml"))
    plan_rule.write_text(plan_rule.read_text() + "repair: {kind: stop_source, source: roth, order: 98}\n")
    edit(rules, "period/roth-catch-up-required.yaml", "report: {amount: ytd_pretax_catch_up}\n", "")
    with pytest.raises(InputError) as info:
        load_rulebook(rules)
    text = str(info.value)
    assert "only period rules have a repair" in text and plan_rule.name in text
    assert "a move_growth repair cuts the rule's reported excess: give report:" in text


def test_the_rule_audit_reports_a_repair_naming_a_fact_that_does_not_exist(rules):
    """audit --rules fails, naming the file and the fact, when a repair names a fact no catalogue declares."""
    edit(rules, DEFERRAL_CAP, "at_most: ytd_deferrals_above_plan_max_not_catch_up", "at_most: ytd_above_cap")
    result = plancheck("audit", "--rules", "--rules-dir", str(rules))
    assert result.returncode == 1
    assert "unknown fact 'ytd_above_cap'" in result.stdout + result.stderr


def test_the_nearest_election_repairs_only_what_the_rule_files_declare(rules, limits):
    """Without its `repair:` the pretax catch-up is no longer made Roth: the search has no rule of its own.

    2026, age 56, prior-year FICA wages $200,000: $2,500 pretax a month makes $5,500 of pretax catch-up,
    which the bundled repair moves to Roth (tests/test_nearest.py)."""
    edit(rules, "period/roth-catch-up-required.yaml", "repair: {kind: move_growth, from: pretax, to: roth, order: 50}\n", "")
    rulebook = load_rulebook(rules)
    engine = Engine(rulebook)
    try:
        election = make_election("1970-03-01", "2026-01-01", {"annual": 240000}, {"pretax": {"amount": 2500}},
                                 prior_year_fica_wages=200000)
        answer = nearest_compliant(election, make_plan(), limits, rulebook, engine)
    finally:
        engine.close()
    assert answer["found"] is False and answer["remaining_rules"] == ["roth-catch-up-required"]


def test_no_rule_id_is_written_in_the_repair_search(rulebook):
    """checks/nearest.py names no rule: every rule id and alias is absent from its source."""
    source = (ROOT / "src" / "plancheck" / "checks" / "nearest.py").read_text()
    named = [name for rule in rulebook.by_id.values() for name in (rule.id, *rule.aliases)
             if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", source)]
    assert named == []


def test_each_repair_is_shown_on_its_rules_page(rulebook):
    """The reference page of a repaired rule says what the nearest election does about it, in order."""
    page = rule_page(rulebook, rulebook.by_id["415c-annual-additions"])
    assert "## Repair" in page and "latest pay period first: from `after_tax`, then from `pretax` and `roth`" in page
    assert "tried in order 70" in page
    assert "## Repair" not in rule_page(rulebook, rulebook.by_id["402g-individual-limit"])
    repaired = sorted(r.id for r in rulebook.by_id.values() if r.repair is not None)
    assert len(repaired) == 10
