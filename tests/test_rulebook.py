"""The rule loader against deliberately broken rule files: each is a load error with file and rule id."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from plancheck.errors import InputError
from plancheck.rulebook import load_rulebook

ROOT = Path(__file__).resolve().parents[1]
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
    ("all:\n", "every:\n", "expected all, any, or fact"),
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
