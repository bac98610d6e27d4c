"""Plan audits of eligibility (410(a), 401(k)(2)(D)) and QACA automatic enrollment (401(k)(13)(C)), by hand."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from helpers import plancheck
from plancheck.documents.plan import Plan
from plancheck.facts.plan import plan_facts

RULES = {"eligibility-age-above-21", "eligibility-service-above-one-year", "employer-eligibility-service-above-maximum",
         "qaca-without-automatic-enrollment", "qaca-percentage-below-minimum", "qaca-percentage-above-maximum"}


def document(**extra: Any) -> dict[str, Any]:
    return {"plan_id": "p", "name": "P", "plan_year": 2026, "payroll": {"frequency": "monthly"}, **extra}


@pytest.fixture
def audit(engine, limits):
    """(rules of this file that fire, facts) of a plan document audited for its plan year."""
    def run(doc: dict[str, Any]) -> tuple[set[str], dict[str, int]]:
        plan = Plan.model_validate(doc)
        facts = plan_facts(plan, limits, plan.plan_year or 2026)
        return {rule for _, rule in engine["plan"].fire([facts])} & RULES, facts
    return run


@pytest.mark.parametrize(("age", "fires"), [(0, False), (21, False), (22, True)])
def test_a_minimum_age_above_21_is_an_error(age, fires, audit, rulebook):
    fired, _ = audit(document(eligibility={"minimum_age": age}))
    assert fired == ({"eligibility-age-above-21"} if fires else set())
    assert rulebook.by_id["eligibility-age-above-21"].severity == "error"


@pytest.mark.parametrize(("months", "fires"), [(12, False), (13, True), (24, True)])
def test_deferrals_may_wait_one_year_at_most(months, fires, audit):
    """Even 24 months with employer money vesting at once is too long for the deferrals themselves (401(k)(2)(D))."""
    doc = document(eligibility={"months_of_service": months,
                                "employer_contributions": {"months_of_service": 12, "full_immediate_vesting": True}})
    assert audit(doc)[0] == ({"eligibility-service-above-one-year"} if fires else set())


@pytest.mark.parametrize(("months", "vesting", "fires"), [
    (12, False, False), (13, False, True), (24, False, True), (24, True, False), (25, True, True)])
def test_employer_money_may_wait_two_years_only_with_full_immediate_vesting(months, vesting, fires, audit):
    doc = document(eligibility={"months_of_service": 12, "employer_contributions": {
        "months_of_service": months, "full_immediate_vesting": vesting}})
    assert audit(doc)[0] == ({"employer-eligibility-service-above-maximum"} if fires else set())


def test_employer_money_without_its_own_terms_is_reported_once_with_the_deferrals(audit):
    """13 months for deferrals with nothing said of employer money: one error, on the deferrals' key."""
    fired, facts = audit(document(eligibility={"months_of_service": 13}))
    assert fired == {"eligibility-service-above-one-year"}
    assert facts["employer_eligibility_months_of_service"] == 13


QACA = {"safe_harbor": "qaca_nonelective", "nonelective": {"percent": 3}}


def test_a_qaca_needs_automatic_enrollment_terms(audit):
    assert audit(document(**QACA))[0] == {"qaca-without-automatic-enrollment"}
    assert audit(document(**QACA, automatic_enrollment={"default_percent": 3, "annual_increase": 1, "cap": 6}))[0] \
        == set()
    assert audit(document(safe_harbor="nonelective", nonelective={"percent": 3}))[0] == set()


@pytest.mark.parametrize(("terms", "year", "given", "required"), [
    ({"default_percent": 3}, 2, 30_000, 40_000),                                           # no escalation
    ({"default_percent": "2.99"}, 1, 29_900, 30_000),                                      # a hundredth short
    ({"default_percent": 3, "annual_increase": "0.5", "cap": 6}, 2, 35_000, 40_000),        # half a point a year
    ({"default_percent": 3, "annual_increase": 1, "cap": "5.99"}, 4, 59_900, 60_000),       # stops short of 6%
])
def test_a_qaca_percentage_below_3_4_5_6_is_reported_at_its_first_short_year(terms, year, given, required, audit):
    fired, facts = audit(document(**QACA, automatic_enrollment=terms))
    assert fired == {"qaca-percentage-below-minimum"}
    assert (facts["qaca_percent_short_year"], facts["qaca_percent_given"], facts["qaca_percent_required"]) == (
        year, given, required)


@pytest.mark.parametrize(("terms", "plan_year", "above"), [
    ({"default_percent": 10, "annual_increase": 1, "cap": 15}, 2026, None),
    ({"default_percent": "10.01"}, 2026, (1, 100_100, 100_000)),                           # year 1: at most 10%
    ({"default_percent": 10, "annual_increase": 1, "cap": "15.01"}, 2026, (7, 150_100, 150_000)),
    ({"default_percent": 6, "annual_increase": 1, "cap": 11}, 2019, (6, 110_000, 100_000)),  # 10% before 2020
    ({"default_percent": 6, "annual_increase": 1, "cap": 11}, 2020, None),
])
def test_a_qaca_percentage_above_10_then_15_is_reported(terms, plan_year, above, audit):
    fired, facts = audit(document(**{**QACA, "plan_year": plan_year}, automatic_enrollment=terms))
    assert fired == (set() if above is None else {"qaca-percentage-above-maximum"})
    if above:
        assert (facts["qaca_percent_above_year"], facts["qaca_percent_highest"], facts["qaca_percent_maximum"]) == above


@pytest.mark.parametrize(("terms", "message"), [
    ({"default_percent": 0}, "default_percent must be above zero"),
    ({"default_percent": 3, "annual_increase": 1}, "annual_increase needs cap"),
    ({"default_percent": 6, "annual_increase": 1, "cap": 5}, "cap must be at least default_percent"),
    ({"default_percent": 3, "cap": 6}, "needs annual_increase"),
    ({"default_percent": 3, "covered": "some"}, "new_entrants"),
    ({"default_percent": 3, "source": "after_tax"}, "pretax"),
    ({"default_percent": 3, "escalation": 1}, "Extra inputs are not permitted"),
    ({"default_percent": 101}, "from 0 to 100"),
])
def test_the_automatic_enrollment_block_is_strictly_validated(terms, message):
    with pytest.raises(ValidationError, match=message):
        Plan.model_validate(document(automatic_enrollment=terms))


def test_a_roth_default_needs_a_roth_program():
    with pytest.raises(ValidationError, match="contributions.roth is false"):
        Plan.model_validate(document(automatic_enrollment={"default_percent": 3, "source": "roth"}))
    assert Plan.model_validate(document(contributions={"pretax": True, "roth": True},
                                        automatic_enrollment={"default_percent": 3, "source": "roth"}))


def test_the_audit_points_at_the_key_at_fault(tmp_path):
    """The command line names the file and line of each finding (text) and exits 1 on an error."""
    path = tmp_path / "qaca.json"
    path.write_text(json.dumps(document(**QACA, eligibility={"minimum_age": 22})))
    result = plancheck("audit", str(path), "--format", "jsonl")
    found = {e["rule"]: e for e in map(json.loads, result.stdout.splitlines()) if "rule" in e}
    assert {"qaca-without-automatic-enrollment", "eligibility-age-above-21"} <= set(found)
    assert found["eligibility-age-above-21"]["severity"] == "error" and result.returncode == 1
