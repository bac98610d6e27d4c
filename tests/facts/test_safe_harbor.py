"""Safe-harbor designs against the statutory formulas, with every figure worked out by hand."""

from __future__ import annotations

import json
from typing import Any

import pytest

from helpers import plancheck
from plancheck.documents.plan import Plan, SafeHarborDesign
from plancheck.errors import InputError
from plancheck.facts.plan import plan_facts
from plancheck.facts.safe_harbor import largest_shortfall, match_at, parameter_formula

SAFE_HARBOR_RULES = {
    "safe-harbor-design-missing-formula", "safe-harbor-match-not-qualifying", "safe-harbor-match-rate-increases",
    "safe-harbor-match-above-6-percent", "safe-harbor-match-excludes-roth", "safe-harbor-match-excludes-pretax",
    "safe-harbor-match-excludes-catch-up", "safe-harbor-match-capped", "safe-harbor-nonelective-below-minimum",
    "safe-harbor-in-service-before-59-half"}


def plan(design: str, tiers: list[tuple[Any, Any]] | None = None, **extra: Any) -> Plan:
    """A 2026 monthly plan with pretax and Roth, catch-up offered, claiming `design` with the given match tiers."""
    doc: dict[str, Any] = {"plan_id": "p", "name": "P", "plan_year": 2026, "payroll": {"frequency": "monthly"},
                           "contributions": {"pretax": True, "roth": True}, "catch_up": {"offered": True},
                           "safe_harbor": design}
    if tiers is not None:
        doc["match"] = {"tiers": [{"rate": r, "up_to_percent": u} for r, u in tiers]}
    doc.update(extra)
    return Plan.model_validate(doc)


@pytest.fixture
def audit(engine, limits):
    """Audit a plan through the engine: (safe-harbor rule ids that fired, facts)."""
    def run(document: Plan) -> tuple[set[str], dict[str, int]]:
        facts = plan_facts(document, limits, 2026)
        fired = {rule for _, rule in engine["plan"].fire([facts])}
        return fired & SAFE_HARBOR_RULES, facts
    return run


BASIC = [(100, 3), (50, 5)]
QACA = [(100, 1), (50, 6)]


def test_statutory_formulas_come_from_the_parameters(limits):
    """The basic formula is 100% up to 3% and 50% up to 5%; the QACA one 100% up to 1% and 50% up to 6% (ppm)."""
    assert parameter_formula(limits, "safe_harbor_basic_match") == ((1_000_000, 30_000), (500_000, 50_000))
    assert parameter_formula(limits, "safe_harbor_qaca_match") == ((1_000_000, 10_000), (500_000, 60_000))


def test_match_at_a_deferral_rate_is_exact():
    """Basic formula at a 4.5% deferral: 3% + 50% x 1.5% = 3.75% of pay (37,500 ppm, carried as ppm x ppm)."""
    basic = ((1_000_000, 30_000), (500_000, 50_000))
    assert match_at(basic, 45_000) == 37_500 * 1_000_000
    assert match_at(basic, 90_000) == 40_000 * 1_000_000  # flat at 4% above a 5% deferral
    assert match_at(basic, 0) == 0


def test_basic_formula_qualifies(audit):
    """The basic formula claimed as basic, on pretax and Roth, catch-up matched, no cap: no safe-harbor finding."""
    fired, facts = audit(plan("basic_match", BASIC))
    assert fired == set() and facts["safe_harbor_match_short"] == 0


def test_basic_claim_one_tier_short(audit):
    """100% of the first 3% only: at a 5% deferral it gives 3% of pay where the basic formula gives 3% + 1% = 4%."""
    fired, facts = audit(plan("basic_match", [(100, 3)]))
    assert fired == {"safe-harbor-match-not-qualifying"}
    assert (facts["safe_harbor_match_short_at"], facts["safe_harbor_match_given"],
            facts["safe_harbor_match_required"]) == (50_000, 30_000, 40_000)


def test_enhanced_100_percent_of_4_qualifies(audit):
    """100% up to 4% gives 3% at 3%, 4% at 4% and at 5% (basic: 3%, 3.5%, 4%): never less, and within 6% of pay."""
    fired, _ = audit(plan("enhanced_match", [(100, 4)]))
    assert fired == set()


def test_enhanced_one_tier_short(audit):
    """100% up to 2% then 50% up to 6%: at 3% it gives 2.5% (basic 3%), at 4% 3% (3.5%), at 5% 3.5% (4%).

    Half a point short at each of those rates; the lowest, 3%, is reported. At 6% it gives 4% = basic.
    """
    fired, facts = audit(plan("enhanced_match", [(100, 2), (50, 6)]))
    assert fired == {"safe-harbor-match-not-qualifying"}
    assert (facts["safe_harbor_match_short_at"], facts["safe_harbor_match_given"],
            facts["safe_harbor_match_required"]) == (30_000, 25_000, 30_000)


def test_enhanced_match_above_6_percent_of_pay(audit):
    """100% up to 7% is generous enough everywhere but matches deferrals above 6% of pay."""
    fired, _ = audit(plan("enhanced_match", [(100, 7)]))
    assert fired == {"safe-harbor-match-above-6-percent"}
    assert audit(plan("enhanced_match", [(100, 6)]))[0] == set()


@pytest.mark.parametrize(("up_to", "fires"), [(6, False), ("6.01", True)], ids=["6%", "6.01%"])
def test_a_match_above_6_percent_is_a_valid_adp_safe_harbor_that_is_acp_tested(up_to, fires, rulebook, audit):
    """401(k)(12)(B)(iii) holds at 6.01% (the match is at least basic, its rate flat): only the ACP exemption of
    401(m)(11)(B) is lost, so the audit warns and reports no error."""
    fired, _ = audit(plan("enhanced_match", [(100, up_to)]))
    assert fired == ({"safe-harbor-match-above-6-percent"} if fires else set())
    assert rulebook.by_id["safe-harbor-match-above-6-percent"].severity == "warning"


def test_enhanced_match_whose_rate_increases(audit):
    """100% up to 3%, 50% up to 4%, 100% up to 5%: 3.5% at 4% and 4.5% at 5% (basic 3.5%, 4%), but the rate rises."""
    fired, facts = audit(plan("enhanced_match", [(100, 3), (50, 4), (100, 5)]))
    assert fired == {"safe-harbor-match-rate-increases"} and facts["safe_harbor_match_short"] == 0


def test_fractional_bound_is_checked_exactly(audit):
    """100% up to 2.5% then 100% up to 3.5% then 50% up to 5.5%: at 5% it gives 3.5% + 0.75% = 4.25%, never short."""
    assert audit(plan("enhanced_match", [(100, 2.5), (100, 3.5), (50, 5.5)]))[0] == set()


def test_qaca_formula_qualifies_and_basic_formula_is_more_generous(audit):
    """A QACA match of 100% up to 1% + 50% up to 6% qualifies; so does the basic formula (4% >= 3.5% at 6%)."""
    assert audit(plan("qaca_match", QACA))[0] == set()
    assert audit(plan("qaca_match", BASIC))[0] == set()


def test_qaca_claim_one_tier_short(audit):
    """100% of the first 1% only: at a 6% deferral it gives 1% where the QACA formula gives 1% + 2.5% = 3.5%."""
    fired, facts = audit(plan("qaca_match", [(100, 1)]))
    assert fired == {"safe-harbor-match-not-qualifying"}
    assert (facts["safe_harbor_match_short_at"], facts["safe_harbor_match_given"],
            facts["safe_harbor_match_required"]) == (60_000, 10_000, 35_000)


def test_qaca_formula_claimed_as_basic_is_short(audit):
    """The QACA formula called basic: at 3% it gives 1% + 1% = 2% against 3%, a point short (also at 4% and 5%)."""
    fired, facts = audit(plan("basic_match", QACA))
    assert fired == {"safe-harbor-match-not-qualifying"}
    assert (facts["safe_harbor_match_short_at"], facts["safe_harbor_match_given"],
            facts["safe_harbor_match_required"]) == (30_000, 20_000, 30_000)


def test_shortfall_is_none_when_equal():
    """A formula compared with itself is never short."""
    basic = ((1_000_000, 30_000), (500_000, 50_000))
    assert largest_shortfall(basic, basic) is None


def test_roth_deferrals_must_be_matched(audit):
    """A basic match on pretax only in a plan with a Roth program leaves Roth savers unmatched."""
    fired, _ = audit(plan("basic_match", BASIC).model_copy(
        update={"match": plan("basic_match", BASIC).match.model_copy(update={"sources": ["pretax"]})}))
    assert fired == {"safe-harbor-match-excludes-roth"}


def test_catch_up_must_be_matched(audit):
    """match_catch_up: false under a safe-harbor match, in a plan offering catch-up, is reported."""
    document = plan("basic_match", BASIC)
    document = document.model_copy(update={"match": document.match.model_copy(update={"match_catch_up": False})})
    assert audit(document)[0] == {"safe-harbor-match-excludes-catch-up"}


def test_capped_match_reports_the_dollars(audit, rulebook, engine, limits):
    """An $8,000 cap on a basic match in 2026: at the $360,000 pay limit the formula requires 4% = $14,400; $6,400 short."""
    document = plan("basic_match", BASIC)
    document = document.model_copy(update={"match": document.match.model_copy(update={"annual_cap": 800_000})})
    fired, facts = audit(document)
    assert fired == {"safe-harbor-match-capped"}
    assert (facts["safe_harbor_match_required_at_pay_limit"], facts["match_annual_cap"]) == (1_440_000, 800_000)
    capped = plan("basic_match", BASIC)
    ok = capped.model_copy(update={"match": capped.match.model_copy(update={"annual_cap": 1_440_000})})
    assert audit(ok)[0] == set()


@pytest.mark.parametrize(("design", "percent", "fires"), [
    ("nonelective", 3, False), ("nonelective", 2.9999, True), ("nonelective", 2, True),
    ("qaca_nonelective", 3, False), ("qaca_nonelective", 2.5, True)])
def test_nonelective_minimum(audit, design, percent, fires):
    """A safe-harbor nonelective contribution of less than 3% of pay does not qualify (QACA too)."""
    fired, _ = audit(plan(design, nonelective={"percent": percent}))
    assert fired == ({"safe-harbor-nonelective-below-minimum"} if fires else set())


@pytest.mark.parametrize("design", ["basic_match", "enhanced_match", "qaca_match"])
def test_match_design_without_a_match(audit, design):
    """A match design with no match formula promises nothing."""
    assert audit(plan(design))[0] == {"safe-harbor-design-missing-formula"}


def test_nonelective_design_without_a_nonelective(audit):
    """A nonelective design with only a match is missing its formula."""
    assert audit(plan("nonelective", BASIC))[0] == {"safe-harbor-design-missing-formula"}


def test_legacy_nonelective_flag_is_a_nonelective_claim(audit):
    """nonelective.safe_harbor: true with safe_harbor: none reads as the nonelective design, and 2% is short."""
    document = plan("none", nonelective={"percent": 2, "safe_harbor": True})
    assert document.safe_harbor_design is SafeHarborDesign.nonelective
    assert audit(document)[0] == {"safe-harbor-nonelective-below-minimum"}


def test_legacy_flag_contradicting_a_match_design_is_a_schema_error(tmp_path):
    """nonelective.safe_harbor: true beside safe_harbor: basic_match says two different things."""
    path = tmp_path / "p.yaml"
    path.write_text("plan_id: p\nname: P\npayroll: {frequency: monthly}\nmatch:\n  tiers: [{rate: 100, up_to_percent: 3}, "
                    "{rate: 50, up_to_percent: 5}]\nnonelective: {percent: 3, safe_harbor: true}\nsafe_harbor: basic_match\n")
    from plancheck.documents.plan import load_plan
    with pytest.raises(InputError, match="names a match design"):
        load_plan(path)


def test_safe_harbor_money_in_service_before_59_half(audit):
    """Match money open at 55 under a match design, or the safe_harbor source with no minimum age, is reported."""
    early_match = plan("basic_match", BASIC, in_service_withdrawals={"employer_match": {"allowed": True,
                                                                                       "minimum_age": 55}})
    assert audit(early_match)[0] == {"safe-harbor-in-service-before-59-half"}
    early_source = plan("basic_match", BASIC, in_service_withdrawals={"safe_harbor": {"allowed": True}})
    assert audit(early_source)[0] == {"safe-harbor-in-service-before-59-half"}
    at_59_half = plan("basic_match", BASIC, in_service_withdrawals={"safe_harbor": {"allowed": True,
                                                                                   "minimum_age": 59.5}})
    assert audit(at_59_half)[0] == set()
    # Not a safe-harbor plan: match money at 55 is the plan's own business.
    ordinary = plan("none", BASIC, in_service_withdrawals={"employer_match": {"allowed": True, "minimum_age": 55}})
    assert audit(ordinary)[0] == set()


def test_hardship_from_safe_harbor_money_is_not_reported(audit):
    """Since 2019 (401(k)(14)(A), T.D. 9875) a plan may pay hardship withdrawals from safe-harbor money."""
    document = plan("basic_match", BASIC, in_service_withdrawals={
        "hardship": {"allowed": True, "sources": ["pretax", "roth", "safe_harbor"]}})
    assert audit(document)[0] == set()


def test_false_safe_harbor_document_through_the_cli():
    """tests/data/plans/false-safe-harbor.yaml: every defect is reported, each on its own line of the document."""
    result = plancheck("audit", "tests/data/plans/false-safe-harbor.yaml")
    found = {e["rule"]: e for e in map(json.loads, result.stdout.splitlines()) if "rule" in e}
    assert set(found) & SAFE_HARBOR_RULES == {
        "safe-harbor-match-not-qualifying", "safe-harbor-match-excludes-roth", "safe-harbor-match-excludes-catch-up",
        "safe-harbor-match-capped", "safe-harbor-in-service-before-59-half"}
    short = found["safe-harbor-match-not-qualifying"]
    assert short["message"].endswith("at a deferral of 5% of pay it matches 3% of pay where the statutory formula "
                                     "requires 4%.")
    assert short["line"] == 14
    # A $5,000 cap against 4% of the 2026 limit of $360,000 = $14,400.
    capped = found["safe-harbor-match-capped"]
    assert (capped["amount"], capped["limit"], capped["excess"]) == ("14400.00", "5000.00", "9400.00")
    assert found["safe-harbor-match-excludes-roth"]["line"] == 16
    assert result.returncode == 1


def test_bundled_safe_harbor_plans_pass(audit, plans):
    """plans/bayside-safe-harbor.yaml (basic match) and evergreen-roth-only (3% nonelective) are real safe harbors."""
    for plan_id in ("bayside-safe-harbor", "evergreen-roth-only"):
        fired, facts = audit(plans[plan_id])
        assert facts["safe_harbor"] == 1 and fired == set(), plan_id
