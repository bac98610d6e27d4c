"""Year end across an employer's plans: one ratio per HCE, 401(a)(30), top-heavy groups, terminees. Answers by hand."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from helpers import plancheck
from helpers.yearend import PLAN, by_employee, person, plan, rules_fired, write_census
from plancheck.checks.yearend import check_yearend
from plancheck.documents.census import CENSUS_COLUMNS, read_census
from plancheck.documents.feed.reader import COLUMNS as FEED_COLUMNS
from plancheck.documents.plan import Plan
from plancheck.errors import InputError

OTHER = "t-plan-2"


def run_plans(tmp_path: Path, rows: list[dict[str, Any]], plans: list[Plan], rulebook, limits, engine,
              year: int = 2026):
    census = read_census(write_census(tmp_path / "census.csv", rows), [p.plan_id for p in plans], year)
    assert not census.rejects, census.rejects
    return check_yearend(census, plans, limits, rulebook, engine, year)


def summaries(outcome) -> dict[str, dict]:
    return {s["plan_id"]: s for s in outcome.summaries}


def in_plan(plan_id: str, row: dict[str, Any]) -> dict[str, Any]:
    return {**row, "plan_id": plan_id}


# -- one ratio per HCE across the employer's plans (401(k)(3)(A); 1.401(k)-2(a)(3)(ii), 1.401(m)-2(a)(3)(ii)) -------

def _two_plan_hce(first: str, second: str, pay: str = "200000") -> list[dict[str, Any]]:
    """H (paid $200,000 in 2025 and 2026: an HCE) defers in both plans; two NHCEs in each defer 3% (ADP 3.00%,
    limit 5.00%)."""
    rows = [person("H", pay, prior_year_compensation="200000", pretax=first),
            in_plan(OTHER, person("H", pay, prior_year_compensation="200000", pretax=second))]
    for plan_id in (PLAN, OTHER):
        rows += [in_plan(plan_id, person(f"{plan_id}-N1", "50000", pretax="1500")),
                 in_plan(plan_id, person(f"{plan_id}-N2", "50000", pretax="1500"))]
    return rows


def test_an_hce_in_two_plans_of_one_employer_has_one_ratio_and_both_plans_fail(tmp_path, rulebook, limits, engine):
    """$6,000 in each plan is 3.00% plan by plan (both would pass), but the law's one ratio is $12,000 of $200,000 =
    6.00% (pay counted once, not $400,000) in each plan's test: both fail (limit 5.00%). The first plan (by plan_id)
    lowers H to 5.00% ($10,000 of pay) by distributing $2,000 of its own deferrals; that brings H's one ratio to the
    level in the second plan's test too, so H is not corrected twice for the same excess."""
    plans = [plan(employer="acme"), plan(plan_id=OTHER, employer="acme")]
    outcome = run_plans(tmp_path, _two_plan_hce("6000", "6000"), plans, rulebook, limits, engine)
    for plan_id, summary in summaries(outcome).items():
        assert (summary["adp"]["hce"], summary["adp"]["limit"], summary["adp"]["passed"]) == ("6.00", "5.00", False)
    assert (summaries(outcome)[PLAN]["adp"]["excess"], summaries(outcome)[OTHER]["adp"]["excess"]) == ("2000.00", "0.00")
    assert {h["plan_id"]: (h["adr"], h["ratio_plans"]) for h in outcome.hces} == {
        PLAN: ("6.00", [PLAN, OTHER]), OTHER: ("6.00", [PLAN, OTHER])}
    refunds = [(c.plan_id, c.employee_id, c.amount) for c in outcome.corrections if c.kind == "adp_excess_distribution"]
    assert refunds == [(PLAN, "H", 200000)]
    assert "adp-test-failed" in rules_fired(outcome)


def test_one_ratio_exactly_at_the_limit_passes(tmp_path, rulebook, limits, engine):
    """$5,000 + $5,000 of $200,000 = 5.00%, the limit: both plans pass."""
    plans = [plan(employer="acme"), plan(plan_id=OTHER, employer="acme")]
    outcome = run_plans(tmp_path, _two_plan_hce("5000", "5000"), plans, rulebook, limits, engine)
    assert {s["adp"]["hce"] for s in outcome.summaries} == {"5.00"}
    assert all(s["adp"]["passed"] for s in outcome.summaries) and not outcome.corrections


def test_plans_of_different_employers_keep_their_own_ratios(tmp_path, rulebook, limits, engine):
    """The same employee_id in plans of two employers is two people: 3.00% in each, both pass."""
    plans = [plan(employer="acme"), plan(plan_id=OTHER, employer="other-co")]
    outcome = run_plans(tmp_path, _two_plan_hce("6000", "6000"), plans, rulebook, limits, engine)
    assert {s["adp"]["hce"] for s in outcome.summaries} == {"3.00"}
    assert all(s["adp"]["passed"] for s in outcome.summaries)


def test_the_401a17_limit_applies_once_to_the_one_ratio(tmp_path, rulebook, limits, engine):
    """Paid $500,000: the ratio's pay is the 2026 401(a)(17) limit of $360,000 once; $9,000 + $9,000 is 5.00%."""
    plans = [plan(employer="acme"), plan(plan_id=OTHER, employer="acme")]
    outcome = run_plans(tmp_path, _two_plan_hce("9000", "9000", pay="500000"), plans, rulebook, limits, engine)
    assert {s["adp"]["hce"] for s in outcome.summaries} == {"5.00"}


def test_an_hce_not_eligible_in_the_second_plan_counts_only_the_first(tmp_path, rulebook, limits, engine):
    """Eligibility in the other plan is what joins the ratios: a plan H has not entered (age 21 + 12 months, hired
    2026-07-01) adds nothing, so the first plan's 3.00% passes."""
    plans = [plan(employer="acme"), plan(plan_id=OTHER, employer="acme",
                                         eligibility={"minimum_age": 21, "months_of_service": 12})]
    rows = _two_plan_hce("6000", "0")
    rows[1]["hire_date"] = rows[0]["hire_date"] = "2026-07-01"
    outcome = run_plans(tmp_path, rows, plans, rulebook, limits, engine)
    assert summaries(outcome)[PLAN]["adp"]["hce"] == "3.00" and summaries(outcome)[PLAN]["adp"]["passed"]


def test_after_tax_money_in_two_plans_makes_one_contribution_ratio(tmp_path, rulebook, limits, engine):
    """ACP too (1.401(m)-2(a)(3)(ii)): $4,000 after-tax in each plan is 4.00% of $200,000 combined; NHCEs at 1.00%
    allow 2.00%: both plans fail the ACP; the first lowers H to 2.00% with its $4,000, which the second then sees."""
    plans = [plan(employer="acme"), plan(plan_id=OTHER, employer="acme")]
    rows = [person("H", "200000", after_tax="4000"), in_plan(OTHER, person("H", "200000", after_tax="4000"))]
    for plan_id in (PLAN, OTHER):
        rows += [in_plan(plan_id, person(f"{plan_id}-N{i}", "50000", after_tax="500")) for i in (1, 2)]
    outcome = run_plans(tmp_path, rows, plans, rulebook, limits, engine)
    for summary in outcome.summaries:
        assert (summary["acp"]["hce"], summary["acp"]["limit"], summary["acp"]["passed"]) == ("4.00", "2.00", False)
    assert [(c.plan_id, c.amount) for c in outcome.corrections if c.kind == "acp_excess_distribution"] == \
        [(PLAN, 400000)]


def test_an_adp_excess_is_recharacterized_as_catch_up_once_across_the_plans(tmp_path, rulebook, limits, engine):
    """H, 56, defers $12,000 in each plan: one ratio of 12.00% against a limit of 5.00% ($10,000). The first plan's
    excess is its $12,000 (the $14,000 reduction, at most what it holds); the second levels what is left ($12,000,
    6.00%) to 5.00%: $2,000. The catch-up limit ($8,000) is the person's, once across the employer's plans
    (414(v)(2)(D)): the first plan recharacterizes $8,000 and distributes $4,000; the second has no catch-up left
    and distributes its $2,000."""
    plans = [plan(employer="acme"), plan(plan_id=OTHER, employer="acme")]
    rows = _two_plan_hce("12000", "12000")
    rows[0]["birth_date"] = rows[1]["birth_date"] = "1970-01-01"
    outcome = run_plans(tmp_path, rows, plans, rulebook, limits, engine)
    kinds = ("adp_recharacterized_as_catch_up", "adp_excess_distribution")
    assert sorted((c.plan_id, c.kind, c.amount) for c in outcome.corrections if c.kind in kinds) == [
        (PLAN, "adp_excess_distribution", 400000), (PLAN, "adp_recharacterized_as_catch_up", 800000),
        (OTHER, "adp_excess_distribution", 200000)]


def test_a_safe_harbor_match_in_another_plan_counts_in_the_hce_s_one_contribution_ratio(tmp_path, rulebook, limits,
                                                                                       engine):
    """H's match in a safe-harbor plan (exempt from that plan's ACP test under 401(m)(11)) would count were that plan
    tested, so it is in H's one ratio for the other plan's test (1.401(m)-2(a)(3)(ii)): $2,000 + $8,000 of $200,000 =
    5.00% against NHCEs at 2.00% (limit 4.00%): the second plan fails; alone H's 1.00% would pass. The safe-harbor
    plan itself runs no ACP test. (H's one deferral ratio, 6.00%, passes the second plan's ADP limit of 7.00%.)"""
    match = {"tiers": [{"rate": 100, "up_to_percent": 3}, {"rate": 50, "up_to_percent": 5}]}
    plans = [plan(plan_id="a-safe", employer="acme", safe_harbor="basic_match", match=match,
                  contributions={"pretax": True}),
             plan(plan_id="b-tested", employer="acme", match={"tiers": [{"rate": 100, "up_to_percent": 4}]},
                  contributions={"pretax": True})]
    rows = [in_plan("a-safe", person("H", "200000", pretax="10000", employer_match="8000")),
            in_plan("b-tested", person("H", "200000", pretax="2000", employer_match="2000"))]
    rows += [in_plan("b-tested", person(f"N{i}", "50000", pretax="2500", employer_match="1000")) for i in (1, 2)]
    outcome = run_plans(tmp_path, rows, plans, rulebook, limits, engine)
    tested = summaries(outcome)["b-tested"]["acp"]
    assert (tested["hce"], tested["limit"], tested["passed"]) == ("5.00", "4.00", False)
    assert summaries(outcome)["a-safe"]["acp"]["tested"] is False


# -- 402(g) across the employer's plans (401(a)(30)) ---------------------------------------------------------------

@pytest.mark.parametrize(("first", "second", "birth", "expected"), [
    ("14000", "13000", "1990-01-01", {PLAN: 250000}),             # 27,000 - 24,500, from the plan holding the most
    ("12250", "12250", "1990-01-01", {}),                         # exactly 24,500
    ("12250", "12250.01", "1990-01-01", {OTHER: 1}),              # one cent over: the plan holding the cent more
    ("13000", "14000", "1990-01-01", {OTHER: 250000}),            # the other plan holds the most
    ("2000", "25000", "1990-01-01", {OTHER: 250000}),             # all of it from the one plan, which holds it
    ("14000", "13000", "1970-01-01", {}),                         # 56 and catch-up in both plans: 2,500 is catch-up
    ("20000", "20500", "1970-01-01", {PLAN: 0, OTHER: 800000}),   # 40,500 - (24,500 + 8,000 once, not twice)
], ids=["2,500 over", "at the limit", "a cent over", "the other plan", "one plan holds it", "catch-up", "catch-up once"])
def test_excess_deferrals_count_every_plan_of_the_employer(first, second, birth, expected, tmp_path, rulebook, limits,
                                                           engine):
    """401(a)(30): deferrals in all the employer's plans count against one 402(g) limit (2026: $24,500) and one
    catch-up limit (414(v)(2)(D)); the excess comes back by April 15 from the plan holding the most deferrals
    first, each plan at most what it holds."""
    plans = [plan(employer="acme"), plan(plan_id=OTHER, employer="acme")]
    rows = [person("A", "150000", birth_date=birth, pretax=first),
            in_plan(OTHER, person("A", "150000", birth_date=birth, pretax=second))]
    outcome = run_plans(tmp_path, rows, plans, rulebook, limits, engine)
    excess = {c.plan_id: c for c in outcome.corrections if c.kind == "excess_deferral"}
    assert {plan_id: c.amount for plan_id, c in excess.items()} == {k: v for k, v in expected.items() if v}
    for correction in excess.values():
        assert correction.deadline.isoformat() == "2027-04-15" and "401(a)(30)" in correction.citation
        event = correction.as_event()
        assert event["employer_deferrals"] == f"{float(first) + float(second):.2f}"
        assert event["returned_from"][0] == correction.plan_id
    if expected.get(PLAN) or expected.get(OTHER):
        assert "excess-deferrals-to-distribute" in rules_fired(outcome)


def test_separate_employers_do_not_share_the_plan_level_limit(tmp_path, rulebook, limits, engine):
    """Two unrelated employers' plans each police only their own deferrals; 27,000 split over them is the
    individual's 402(g)(1) excess only where the other employer's deferrals are known (other_plan_deferrals)."""
    plans = [plan(employer="acme"), plan(plan_id=OTHER, employer="other-co")]
    rows = [person("A", "150000", pretax="14000"), in_plan(OTHER, person("A", "150000", pretax="13000"))]
    outcome = run_plans(tmp_path, rows, plans, rulebook, limits, engine)
    assert not [c for c in outcome.corrections if c.kind == "excess_deferral"]


# -- top-heavy by aggregation group (416(g)(2)) ---------------------------------------------------------------------

def _key(plan_id: str, employee_id: str, balance: str, **values: Any) -> dict[str, Any]:
    """A 10% owner (key in 2025, the determination year) with a balance, deferring 5% (so the minimum is 3%)."""
    values = {"pretax": "5000", **values}
    return in_plan(plan_id, person(employee_id, "100000", ownership_percent="10", prior_year_ownership_percent="10",
                                   account_balance=balance, **values))


def _staff(plan_id: str, employee_id: str, balance: str, **values: Any) -> dict[str, Any]:
    return in_plan(plan_id, person(employee_id, "50000", account_balance=balance, **values))


@pytest.mark.parametrize(("second_key", "heavy"), [("900000", True), ("700000", False)])
def test_the_required_aggregation_group_decides_for_each_of_its_plans(second_key, heavy, tmp_path, rulebook, limits,
                                                                      engine):
    """Key employees participate in both plans, so both are one required group (416(g)(2)(A)(i)). Keys hold 400,000
    of 1,000,000 in the first (40%) and 900,000 of 1,000,000 in the second: 1,300,000 of 2,000,000 = 65%, so both
    plans are top-heavy, the first too. With 700,000 in the second: 1,100,000 of 2,000,000 = 55%, neither is (the
    second alone would be 70%)."""
    plans = [plan(employer="acme"), plan(plan_id=OTHER, employer="acme")]
    rows = [_key(PLAN, "K1", "400000"), _staff(PLAN, "S1", "600000"),
            _key(OTHER, "K2", second_key), _staff(OTHER, "S2", str(1000000 - int(second_key)))]
    outcome = run_plans(tmp_path, rows, plans, rulebook, limits, engine)
    for summary in outcome.summaries:
        group = summary["top_heavy"]
        assert (group["top_heavy"], group["aggregation"], group["group"]) == (heavy, "required", [PLAN, OTHER])
    assert by_employee(outcome, "top_heavy_minimum") == ({"S1": "1500.00", "S2": "1500.00"} if heavy else {})


@pytest.mark.parametrize(("second_key", "heavy"), [("800000.00", False), ("800000.01", True)])
def test_the_group_s_60_percent_boundary(second_key, heavy, tmp_path, rulebook, limits, engine):
    """Keys hold 400,000 + 800,000 of 2,000,000 in the group: exactly 60% is not top-heavy; a cent more is."""
    plans = [plan(employer="acme"), plan(plan_id=OTHER, employer="acme")]
    rows = [_key(PLAN, "K1", "400000"), _staff(PLAN, "S1", "600000"),
            _key(OTHER, "K2", second_key), _staff(OTHER, "S2", "200000")]
    outcome = run_plans(tmp_path, rows, plans, rulebook, limits, engine)
    assert [s["top_heavy"]["top_heavy"] for s in outcome.summaries] == [heavy, heavy]


@pytest.mark.parametrize(("permissive", "heavy"), [(False, True), (True, False)])
def test_a_permissive_aggregation_group_can_take_a_plan_out_of_top_heavy(permissive, heavy, tmp_path, rulebook,
                                                                         limits, engine):
    """The first plan alone: keys hold 700,000 of 1,000,000 (70%): top-heavy. The second plan has no key employee,
    so it is not in the required group; aggregated permissively (416(g)(2)(A)(ii)) the group holds 700,000 of
    2,000,000 (35%): neither plan is top-heavy, and the second never is."""
    terms = {"top_heavy": {"permissive_aggregation_group": "acme-all"}} if permissive else {}
    plans = [plan(employer="acme", **terms), plan(plan_id=OTHER, employer="acme", **terms)]
    rows = [_key(PLAN, "K1", "700000"), _staff(PLAN, "S1", "300000"), _staff(OTHER, "S2", "1000000")]
    outcome = run_plans(tmp_path, rows, plans, rulebook, limits, engine)
    first, second = summaries(outcome)[PLAN]["top_heavy"], summaries(outcome)[OTHER]["top_heavy"]
    assert first["top_heavy"] is heavy and second["top_heavy"] is False
    assert (first["ratio"], first["aggregation"]) == (("35.00", "permissive") if permissive else ("70.00", None))
    assert second["required_group"] is False


def test_a_plan_aggregated_for_coverage_joins_the_required_group(tmp_path, rulebook, limits, engine):
    """A plan with no key employee that the key employees' plan needs to meet 410(b) (the same coverage_group) is in
    the required group (416(g)(2)(A)(i)(II)): 700,000 of 2,000,000 is 35%, neither top-heavy."""
    terms = {"top_heavy": {"coverage_group": "acme-410b"}}
    plans = [plan(employer="acme", **terms), plan(plan_id=OTHER, employer="acme", **terms)]
    rows = [_key(PLAN, "K1", "700000"), _staff(PLAN, "S1", "300000"), _staff(OTHER, "S2", "1000000")]
    outcome = run_plans(tmp_path, rows, plans, rulebook, limits, engine)
    assert [(s["top_heavy"]["aggregation"], s["top_heavy"]["required_group"], s["top_heavy"]["top_heavy"])
            for s in outcome.summaries] == [("required", True, False)] * 2


def test_a_permissive_group_must_hold_the_whole_required_group(tmp_path, rulebook, limits, engine):
    """Naming a permissive group on a plan while a plan of the required group does not name it is refused."""
    plans = [plan(employer="acme"), plan(plan_id=OTHER, employer="acme",
                                         top_heavy={"permissive_aggregation_group": "acme-all"})]
    rows = [_key(PLAN, "K1", "700000"), _staff(OTHER, "S2", "1000000")]
    with pytest.raises(InputError, match="permissive aggregation group that names every plan of the required"):
        run_plans(tmp_path, rows, plans, rulebook, limits, engine)


def test_top_heavy_terms_are_validated(tmp_path):
    """An unknown key or a bad group name in top_heavy is a plan document error."""
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        plan(top_heavy={"permisive_aggregation_group": "x"})
    with pytest.raises(ValidationError, match="should match pattern"):
        plan(top_heavy={"permissive_aggregation_group": "a group"})


@pytest.mark.parametrize("kind", ["permissive_aggregation_group", "coverage_group"])
def test_a_group_of_two_employers_plans_is_refused(kind, tmp_path, rulebook, limits, engine):
    """Aggregation groups are one employer's plans (416(g)(2)): a name shared by two employers' plans is refused."""
    terms = {"top_heavy": {kind: "shared"}}
    plans = [plan(employer="acme", **terms), plan(plan_id=OTHER, employer="other-co", **terms)]
    rows = [_key(PLAN, "K1", "700000"), _staff(OTHER, "S2", "1000000")]
    with pytest.raises(InputError, match="plans of one employer"):
        run_plans(tmp_path, rows, plans, rulebook, limits, engine)


# -- the balances that count (416(g)(3), (4)(B), (4)(E)) ------------------------------------------------------------

@pytest.mark.parametrize("left", ["2025-01-01", "2025-12-31"])
def test_someone_who_left_in_the_prior_year_is_counted(left, tmp_path, rulebook, limits, engine):
    """Keys hold 610,000 of 1,000,000 (61%). A non-key who left during 2025 performed service in the year ending
    on the determination date (2025-12-31), so their 20,000 counts (416(g)(4)(E)): 610,000 of 1,020,000 = 59.80%,
    not top-heavy. They are in no test of 2026 and owed no minimum."""
    rows = [_key(PLAN, "K1", "610000"), _staff(PLAN, "S1", "390000"),
            _staff(PLAN, "GONE", "20000", termination_date=left, compensation="0")]
    outcome = run_plans(tmp_path, rows, [plan()], rulebook, limits, engine)
    heavy = outcome.summaries[0]["top_heavy"]
    assert (heavy["ratio"], heavy["top_heavy"], heavy["account_balances"]) == ("59.80", False, "1020000.00")
    assert outcome.summaries[0]["employees"] == 3 and outcome.summaries[0]["eligible"] == 2


def test_in_a_first_plan_year_a_prior_year_leaver_is_not_counted(tmp_path, rulebook, limits, engine):
    """In a first plan year the determination date is the plan year's last day (416(g)(4)(C)): someone who left in
    2025 did no service in the year ending 2026-12-31, so their 20,000 is left out (61%, top-heavy)."""
    rows = [_key(PLAN, "K1", "610000"), _staff(PLAN, "S1", "390000"),
            _staff(PLAN, "GONE", "20000", termination_date="2025-06-30", compensation="0")]
    first = plan(nondiscrimination_testing={"first_plan_year": True})
    heavy = run_plans(tmp_path, rows, [first], rulebook, limits, engine).summaries[0]["top_heavy"]
    assert (heavy["ratio"], heavy["top_heavy"], heavy["account_balances"]) == ("61.00", True, "1000000.00")


def test_someone_who_left_before_the_prior_year_is_rejected_and_not_counted(tmp_path, limits):
    """Gone on 2024-12-31: no service in the year ending 2025-12-31; the row is rejected with the reason."""
    path = write_census(tmp_path / "c.csv", [_staff(PLAN, "GONE", "20000", termination_date="2024-12-31")])
    census = read_census(path, [PLAN], 2026)
    assert census.rows_checked == 0 and "416(g)(4)(E)" in census.rejects[0].reason


@pytest.mark.parametrize(("column", "heavy"), [("distributions_1yr", True), ("distributions_5yr", True), (None, False)])
def test_distributions_are_added_back(column, heavy, tmp_path, rulebook, limits, engine):
    """Keys hold 590,000 of 990,000 (59.60%); 20,000 paid to the key employee in the period ending on the
    determination date is added back (416(g)(3)): 610,000 of 1,010,000 = 60.40%, top-heavy."""
    extra = {column: "20000"} if column else {}
    rows = [_key(PLAN, "K1", "590000", **extra), _staff(PLAN, "S1", "400000")]
    outcome = run_plans(tmp_path, rows, [plan()], rulebook, limits, engine)
    heavy_summary = outcome.summaries[0]["top_heavy"]
    assert heavy_summary["top_heavy"] is heavy
    assert heavy_summary["ratio"] == ("60.40" if heavy else "59.60")


@pytest.mark.parametrize(("former", "heavy"), [("true", True), ("false", False)])
def test_a_former_key_employee_s_balance_is_left_out(former, heavy, tmp_path, rulebook, limits, engine):
    """Keys hold 610,000; staff 390,000 plus a former key employee (key before 2025, not now) with 30,000: with them
    610,000 of 1,030,000 = 59.22%; without them (416(g)(4)(B)) 61%, top-heavy."""
    rows = [_key(PLAN, "K1", "610000"), _staff(PLAN, "S1", "390000"),
            _staff(PLAN, "EX", "30000", former_key_employee=former)]
    outcome = run_plans(tmp_path, rows, [plan()], rulebook, limits, engine)
    assert outcome.summaries[0]["top_heavy"]["top_heavy"] is heavy


def test_a_key_employee_marked_former_is_still_key(tmp_path, rulebook, limits, engine):
    """former_key_employee only leaves out someone who is not key now: a 10% owner's balance counts as key."""
    rows = [_key(PLAN, "K1", "610000", former_key_employee="true"), _staff(PLAN, "S1", "390000")]
    outcome = run_plans(tmp_path, rows, [plan()], rulebook, limits, engine)
    assert outcome.summaries[0]["top_heavy"]["ratio"] == "61.00"


# -- 416(g)(4)(H) and the key employees' rate ------------------------------------------------------------------------

@pytest.mark.parametrize(("terms", "exempt"), [
    ({"safe_harbor": "nonelective", "nonelective": {"percent": 3}}, True),
    ({"safe_harbor": "qaca_nonelective", "nonelective": {"percent": 3}}, True),
    ({"nonelective": {"percent": 3, "safe_harbor": True}}, True),
    ({"nonelective": {"percent": 3}}, False),
], ids=["safe_harbor: nonelective", "QACA nonelective", "nonelective.safe_harbor", "profit sharing"])
def test_a_nonelective_safe_harbor_plan_of_deferrals_only_is_exempt(terms, exempt, tmp_path, rulebook, limits, engine):
    """416(g)(4)(H): a plan of deferrals and a safe-harbor nonelective contribution is not top-heavy, however the
    document writes its safe harbor; a plain 3% profit-sharing contribution is not exempt."""
    the_plan = plan(contributions={"pretax": True, "after_tax": False}, **terms)
    rows = [_key(PLAN, "K1", "900000", pretax="5000"), _staff(PLAN, "S1", "100000", employer_nonelective="1000")]
    outcome = run_plans(tmp_path, rows, [the_plan], rulebook, limits, engine)
    assert outcome.summaries[0]["top_heavy"]["exempt"] is exempt
    assert ("top-heavy-minimum-owed" in rules_fired(outcome)) is not exempt


@pytest.mark.parametrize(("profit_sharing", "after_tax", "exempt"), [
    ("0", "0", True), ("0.01", "0", False), ("0", "0.01", False)])
def test_the_416g4h_exemption_follows_the_year_s_money(profit_sharing, after_tax, exempt, tmp_path, rulebook, limits,
                                                       engine):
    """A basic safe-harbor match plan whose document also allows a discretionary profit-sharing contribution (and
    after-tax money) is exempt in a year when neither is made (Rev. Rul. 2004-13, Situation 1); a cent of either
    takes it out (Situation 2)."""
    the_plan = plan(safe_harbor="basic_match", nonelective={"percent": 2},
                    match={"tiers": [{"rate": 100, "up_to_percent": 3}, {"rate": 50, "up_to_percent": 5}]})
    rows = [_key(PLAN, "K1", "900000", employer_match="4000"),
            _staff(PLAN, "S1", "100000", pretax="1500", employer_match="1500", employer_nonelective=profit_sharing,
                   after_tax=after_tax)]
    outcome = run_plans(tmp_path, rows, [the_plan], rulebook, limits, engine)
    assert outcome.summaries[0]["top_heavy"]["exempt"] is exempt


@pytest.mark.parametrize(("birth", "rate"), [("1970-01-01", "2.00"), ("1990-01-01", "3.00")])
def test_the_key_rate_leaves_out_catch_up(birth, rate, tmp_path, rulebook, limits, engine):
    """The plan caps deferrals at 2% of pay. The key employee (paid $240,000) defers $12,800: at 56, $8,000 of it is
    catch-up (above the plan's cap), left out of the key rate (1.414(v)-1(d)(3)): 4,800 / 240,000 = 2.00%, so the
    minimum is 2% (N1: 1,000 - 500 match = 500). At 36 nothing is catch-up: 5.33%, so the minimum is 3%."""
    capped = plan(contributions={"pretax": True, "roth": True, "after_tax": False, "max_deferral_percent": 2})
    rows = [person("OFFICER", "240000", birth_date=birth, officer="true", prior_year_compensation="230000.01",
                   account_balance="700000", pretax="12800"),
            person("N1", "50000", pretax="1000", employer_match="500", account_balance="300000")]
    outcome = run_plans(tmp_path, rows, [capped], rulebook, limits, engine)
    assert outcome.summaries[0]["top_heavy"]["minimum_rate"] == rate
    assert by_employee(outcome, "top_heavy_minimum") == {"N1": "500.00" if rate == "2.00" else "1000.00"}


def test_a_non_key_in_two_top_heavy_plans_gets_the_minimum_once(tmp_path, rulebook, limits, engine):
    """S is in both plans of a top-heavy required group, paid $50,000: 3% is $1,500, owed once, in the first plan;
    the match S has in the second plan ($600) counts toward it (Treas. Reg. 1.416-1, M-7, M-8)."""
    plans = [plan(employer="acme"), plan(plan_id=OTHER, employer="acme")]
    rows = [_key(PLAN, "K1", "900000"), _staff(PLAN, "S", "50000"), _key(OTHER, "K1", "900000"),
            _staff(OTHER, "S", "50000", employer_match="600")]
    outcome = run_plans(tmp_path, rows, plans, rulebook, limits, engine)
    owed = [(c.plan_id, c.employee_id, c.amount) for c in outcome.corrections if c.kind == "top_heavy_minimum"]
    assert owed == [(PLAN, "S", 90000)]


# -- the census's own year, and feeds that give it nothing (yearend --feed, --year) ----------------------------------

def _cli_setup(tmp_path: Path, rows: list[dict[str, Any]], columns=None) -> tuple[Path, Path]:
    """A plans directory with the test plan and a census file."""
    plans = tmp_path / "plans"
    plans.mkdir(exist_ok=True)
    (plans / "t-plan.json").write_text(json.dumps({
        "plan_id": PLAN, "name": "Test plan", "payroll": {"frequency": "monthly"},
        "contributions": {"pretax": True, "roth": True, "after_tax": True}, "catch_up": {"offered": True}}))
    census = write_census(tmp_path / "census.csv", rows, *([columns] if columns else []))
    return plans, census


def _yearend(tmp_path: Path, plans: Path, census: Path, *args: str):
    return plancheck("yearend", str(census), "--plans", str(plans), "--rejects", str(tmp_path / "r.csv"), *args,
                     cwd=tmp_path)  # the feed's rejects file is written in the current directory


def _yearend_2026(tmp_path: Path, plans: Path, census: Path, *args: str):
    return _yearend(tmp_path, plans, census, "--year", "2026", *args)


def _feed(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    base = {"plan_id": PLAN, "birth_date": "1990-01-01", "compensation": "5000", "pretax": "100", "roth": "0",
            "after_tax": "0", "employer_match": "0", "employer_nonelective": "0", "prior_year_fica_wages": "",
            "other_plan_deferrals": "", "limitation_year": ""}
    return write_census(tmp_path / "feed.csv", [{**base, **row} for row in rows], FEED_COLUMNS)


def test_feed_rows_matching_no_census_row_are_counted_and_shown(tmp_path):
    """One feed row for a census employee is used; one for a stranger is rejected and counted as matching no census
    row, in the text and in the run summary's feed."""
    plans, census = _cli_setup(tmp_path, [person("A", "60000"), person("B", "60000")])
    feed = _feed(tmp_path, [{"employee_id": "A", "pay_date": "2026-01-31"},
                            {"employee_id": "STRANGER", "pay_date": "2026-01-31"}])
    text = _yearend_2026(tmp_path, plans, census, "--feed", str(feed), "--format", "text", "--out", str(tmp_path / "o.txt"))
    assert text.returncode == 0, text.stderr
    shown = (tmp_path / "o.txt").read_text()
    assert "2 rows read, 1 used, 1 rejected (1 matching no census row), 0 paid in another year" in shown
    events = _yearend_2026(tmp_path, plans, census, "--feed", str(feed), "--out", str(tmp_path / "o.jsonl"))
    run = json.loads((tmp_path / "o.jsonl").read_text().splitlines()[-1])
    assert run["event"] == "yearend_run_summary" and events.returncode == 0
    assert (run["feed"]["rows_unmatched"], run["feed"]["rows_used"]) == (1, 1)


@pytest.mark.parametrize("rows", [
    [{"employee_id": "STRANGER", "pay_date": "2026-01-31"}],
    [{"employee_id": "A", "pay_date": "2025-12-31"}],
    [{"employee_id": "A", "pay_date": "2026-01-31", "pretax": "1.234"}],
], ids=["no census row", "another year", "bad amount"])
def test_a_feed_none_of_whose_rows_is_used_is_exit_2_not_a_pass(rows, tmp_path):
    """If no feed row is used the tests would run on nothing and pass: one line, exit 2, no report."""
    plans, census = _cli_setup(tmp_path, [person("A", "60000", pretax="5000")])
    result = _yearend_2026(tmp_path, plans, census, "--feed", str(_feed(tmp_path, rows)), "--format", "text",
                      "--out", str(tmp_path / "o.txt"))
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "no row used: 1 read" in result.stderr and not (tmp_path / "o.txt").exists()


@pytest.mark.parametrize(("rows", "year"), [
    ([person("A", "60000"), person("NEW", "30000", hire_date="2026-01-01")], 2026),
    ([person("A", "60000"), person("LEFT", "30000", termination_date="2025-12-31", pretax="100")], 2025),
    ([person("A", "60000"), person("LEFT", "30000", termination_date="2025-12-31")], 2025),
    ([person("A", "60000"), person("NEW", "30000", hire_date="2025-03-01", prior_year_compensation="")], 2025),
], ids=["a hire in 2026, the last year with limits", "someone who contributed and left in 2025",
        "someone paid in the year who left in 2025",
        "a 2025 hire with no 2024 pay"])
def test_the_year_defaults_to_the_census_s_own(rows, year, tmp_path):
    """Without --year the plan year is the census's own, read from its dates where they pin it."""
    plans, census = _cli_setup(tmp_path, rows)
    result = _yearend(tmp_path, plans, census, "--out", str(tmp_path / "o.jsonl"))
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "o.jsonl").read_text().splitlines()[-1])["year"] == year


@pytest.mark.parametrize("rows", [
    [person("A", "60000"), person("NEW", "30000", hire_date="2025-12-31")],
    [person("A", "60000"), person("LEFT", "0", termination_date="2025-12-31")],
], ids=["latest hire in 2025, with 2024 pay (a rehire)", "left in 2025 without pay in the year"])
def test_dates_that_do_not_pin_the_year_need_year(rows, tmp_path):
    """A latest date in 2025 only says the census is for 2025 or later (a 2026 census with no hire in 2026, whose
    2025 leaver is counted for top-heavy): exit 2 asking for --year, which then decides."""
    plans, census = _cli_setup(tmp_path, rows)
    result = _yearend(tmp_path, plans, census, "--out", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2 and "give the year with --year" in result.stderr
    assert "is in 2025, so it is for 2025 or a later year" in result.stderr
    assert _yearend_2026(tmp_path, plans, census, "--out", str(tmp_path / "o.jsonl")).returncode == 0


def test_the_plan_year_column_states_the_year(tmp_path):
    """A plan_year column says the year even when no date falls in it; --year that disagrees is refused."""
    rows = [person("A", "60000", plan_year="2026"), person("B", "60000", plan_year="")]
    plans, census = _cli_setup(tmp_path, rows, (*CENSUS_COLUMNS,))
    result = _yearend(tmp_path, plans, census, "--out", str(tmp_path / "o.jsonl"))
    assert result.returncode == 0 and json.loads((tmp_path / "o.jsonl").read_text().splitlines()[-1])["year"] == 2026
    refused = _yearend(tmp_path, plans, census, "--year", "2025", "--out", str(tmp_path / "o2.jsonl"))
    assert refused.returncode == 2 and "--year (2025)" in refused.stderr


@pytest.mark.parametrize(("rows", "message"), [
    ([person("A", "60000", plan_year="2025"), person("B", "60000", plan_year="2026")], "2025 (line 2) and 2026 (line 3)"),
    ([person("NEW", "60000", hire_date="2026-02-01"),
      person("GONE", "60000", termination_date="2025-06-30", pretax="1000")],
     "left 2025-06-30 with contributions (line 3"),
], ids=["two plan_year values", "a prior year's participant with contributions"])
def test_a_census_that_spans_years_is_refused(rows, message, tmp_path):
    """One plan year per census: exit 2 with one line, whether or not --year is given."""
    plans, census = _cli_setup(tmp_path, rows)
    for extra in ([], ["--year", "2026"]):
        result = _yearend(tmp_path, plans, census, *extra, "--out", str(tmp_path / "o.jsonl"))
        assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1 and message in result.stderr


def test_a_census_without_dates_needs_year(tmp_path):
    """A census of only its header cannot tell its year: exit 2 asking for --year."""
    plans, census = _cli_setup(tmp_path, [])
    result = _yearend(tmp_path, plans, census, "--out", str(tmp_path / "o.jsonl"))
    assert result.returncode == 2 and "give the year with --year" in result.stderr


def test_the_text_report_shows_the_group_and_the_plans_an_excess_comes_from(tmp_path):
    """Two plans of one employer in the text report: the top-heavy line names the group that decided, and the
    excess deferral says what was deferred in each plan and comes from the plan holding the most."""
    plans, census = _cli_setup(tmp_path, [
        _key(PLAN, "K1", "900000", pretax="14000", plan_year="2026"), _staff(PLAN, "S1", "100000"),
        _key(OTHER, "K1", "900000", pretax="13000"), _staff(OTHER, "S2", "100000")], (*CENSUS_COLUMNS,))
    for plan_id in (PLAN, OTHER):
        (plans / f"{plan_id}.json").write_text(json.dumps({
            "plan_id": plan_id, "name": plan_id, "employer": "acme", "payroll": {"frequency": "monthly"}}))
    result = _yearend(tmp_path, plans, census, "--format", "text", "--out", str(tmp_path / "o.txt"))
    assert result.returncode == 1, result.stderr
    text = (tmp_path / "o.txt").read_text()
    assert text.count(f"TOP-HEAVY (required aggregation group: {PLAN}, {OTHER})") == 2
    assert (f"K1: distribute excess deferral (402(g)) $2,500.00 (deferred $27,000.00 in the employer's plans: "
            f"{PLAN} $14,000.00, {OTHER} $13,000.00) by 2027-04-15") in text
