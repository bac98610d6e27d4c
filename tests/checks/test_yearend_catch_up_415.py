"""Year-end Roth catch-up (414(v)(7)) and 415(c) across the employer, on censuses worked out by hand.

2026 figures (rules/limits): 402(g) $24,500, catch-up $8,000, 415(c) $72,000, Roth catch-up wage
threshold $150,000 (2025 FICA wages), 401(a)(17) $360,000. 2025: 402(g) $23,500, catch-up $7,500, no
Roth catch-up requirement (transition).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from conftest import ROOT
from helpers import plancheck
from helpers.yearend import PLAN, by_employee, person, plan, rules_fired, write_census
from plancheck.checks.yearend import check_yearend
from plancheck.documents.census import CENSUS_COLUMNS, read_census

PLAN_2 = "t-plan-2"
NO_ROTH = {"pretax": True, "roth": False, "after_tax": True}
MATCH_4 = {"tiers": [{"rate": 100, "up_to_percent": 4}]}


def older(employee_id: str, pay: str, **values: Any) -> dict[str, Any]:
    """A census row of someone born 1970: 56 in 2026, catch-up eligible."""
    return person(employee_id, pay, birth_date="1970-01-01", **values)


def run(tmp_path, rows, plans, rulebook, limits, engine, year: int = 2026):
    census = read_census(write_census(tmp_path / "census.csv", rows), [p.plan_id for p in plans], year)
    assert not census.rejects, census.rejects
    return check_yearend(census, plans, limits, rulebook, engine, year)


def events(outcome, kind: str) -> dict[str, dict]:
    return {f"{c.plan_id}/{c.employee_id}": c.as_event() for c in outcome.corrections if c.kind == kind}


# -- Roth catch-up ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("wages, to_roth", [("149999.00", None), ("150000.00", None), ("150000.01", "8000.00"),
                                            ("150001.00", "8000.00"), ("0", None)])
def test_pretax_catch_up_of_a_high_earner_must_be_made_roth(wages, to_roth, tmp_path, rulebook, limits, engine):
    """56, $32,500 pretax in 2026: $8,000 is catch-up, all pretax. Prior-year FICA wages a cent or a dollar above
    $150,000 make it a Roth catch-up to correct; a dollar below, at $150,000 exactly (not above) or zero (a new
    hire), nothing."""
    rows = [older("H", "200000", pretax="32500", prior_year_fica_wages=wages)]
    outcome = run(tmp_path, rows, [plan()], rulebook, limits, engine)
    assert by_employee(outcome, "roth_catch_up_to_roth") == ({"H": to_roth} if to_roth else {})
    assert ("roth-catch-up-made-pretax" in rules_fired(outcome)) is bool(to_roth)
    assert "roth-catch-up-wages-unknown-at-year-end" not in rules_fired(outcome)
    assert not by_employee(outcome, "excess_deferral")


def test_the_correction_names_the_roth_method_and_its_deadlines(tmp_path, rulebook, limits, engine):
    """The event says what becomes Roth and how: W-2 correction while the 2026 W-2 is not furnished (January 31,
    2027), otherwise in-plan Roth rollover; until corrected it is not catch-up, so by April 15 (402(g))."""
    rows = [older("H", "200000", pretax="32500", prior_year_fica_wages="200000")]
    event = events(run(tmp_path, rows, [plan()], rulebook, limits, engine), "roth_catch_up_to_roth")[f"{PLAN}/H"]
    assert (event["amount"], event["deadline"], event["final_deadline"]) == ("8000.00", "2027-01-31", "2027-04-15")
    assert (event["recharacterize_as"], event["prior_year_fica_wages"], event["wage_threshold"]) == \
        ("roth", "200000.00", "150000.00")
    assert "Form W-2" in event["method"] and "in-plan Roth rollover" in event["method"]
    assert "414(v)(7)" in event["citation"] and "1.414(v)-2" in event["citation"]


@pytest.mark.parametrize("pretax, roth, pretax_catch_up", [
    ("27500", "5000", "3000.00"),   # $8,000 catch-up less $5,000 Roth of the year
    ("24500", "8000", None),        # Roth covers the catch-up: pretax never passed 402(g)
    ("24500.01", "7999.99", "0.01"),
])
def test_roth_deferrals_of_the_year_count_toward_the_requirement(pretax, roth, pretax_catch_up, tmp_path, rulebook,
                                                                   limits, engine):
    rows = [older("H", "200000", pretax=pretax, roth=roth, prior_year_fica_wages="200000")]
    outcome = run(tmp_path, rows, [plan()], rulebook, limits, engine)
    assert by_employee(outcome, "roth_catch_up_to_roth") == ({"H": pretax_catch_up} if pretax_catch_up else {})


def test_unknown_wages_are_not_zero_the_rule_is_not_applied_but_warned(tmp_path, rulebook, limits, engine):
    """An empty prior_year_fica_wages: no correction, a warning with the $8,000 of pretax catch-up; the column
    left out of the census altogether reads the same."""
    rows = [older("H", "200000", pretax="32500", prior_year_fica_wages="")]
    outcome = run(tmp_path, rows, [plan()], rulebook, limits, engine)
    assert not by_employee(outcome, "roth_catch_up_to_roth")
    warning = [f for f in outcome.findings if f.rule == "roth-catch-up-wages-unknown-at-year-end"]
    assert len(warning) == 1 and warning[0].severity == "warning" and warning[0].amount == 800000
    columns = [c for c in CENSUS_COLUMNS if c != "prior_year_fica_wages"]
    without = [{k: v for k, v in row.items() if k in columns} for row in rows]
    census = read_census(write_census(tmp_path / "old.csv", without, columns), [PLAN], 2026)
    assert census.fica_known.tolist() == [False]
    again = check_yearend(census, [plan()], limits, rulebook, engine, 2026)
    assert [f.rule for f in again.findings] == ["roth-catch-up-wages-unknown-at-year-end"]


def test_a_plan_without_roth_turns_a_high_earners_catch_up_into_excess_deferrals(tmp_path, rulebook, limits, engine):
    """Same participant in a pretax-only plan: no catch-up is possible, so the $8,000 above 402(g) is an excess
    deferral to distribute by April 15; at $150,000.00 of wages it is catch-up as before."""
    no_roth = plan(contributions=NO_ROTH)
    above = run(tmp_path, [older("H", "200000", pretax="32500", prior_year_fica_wages="150000.01")], [no_roth],
                rulebook, limits, engine)
    assert by_employee(above, "excess_deferral") == {"H": "8000.00"}
    assert {"roth-catch-up-without-roth-at-year-end", "excess-deferrals-to-distribute"} <= rules_fired(above)
    assert above.summaries[0]["roth_catch_up"]["not_allowed_without_roth"] == "8000.00"
    event = events(above, "excess_deferral")[f"{PLAN}/H"]
    assert (event["deadline"], event["not_catch_up_roth_required"]) == ("2027-04-15", "8000.00")
    assert not by_employee(above, "roth_catch_up_to_roth")
    at = run(tmp_path, [older("H", "200000", pretax="32500", prior_year_fica_wages="150000.00")], [no_roth],
             rulebook, limits, engine)
    assert not by_employee(at, "excess_deferral") and not at.findings


def _adp_case(**hce: Any) -> list[dict[str, Any]]:
    """HCE H (56, $200,000, 10% deferred) against two NHCEs at 3%: NHCE ADP 3.00%, limit 5.00% (x2 6%, +2 5%).
    H is lowered to 5.00%: excess $10,000; $8,000 of unused catch-up is recharacterized, $2,000 distributed."""
    values = {"pretax": "20000", "prior_year_fica_wages": "200000", **hce}
    return [older("H", "200000", **values), person("N1", "50000", pretax="1500"), person("N2", "50000", pretax="1500")]


def test_adp_excess_recharacterized_as_catch_up_of_a_high_earner_must_end_up_roth(tmp_path, rulebook, limits, engine):
    """The $8,000 recharacterized is catch-up made pretax: make it Roth (in-plan Roth rollover) or distribute it,
    by the ADP deadlines (March 15 excise-free, December 31 of the next year at the latest)."""
    outcome = run(tmp_path, _adp_case(), [plan()], rulebook, limits, engine)
    assert by_employee(outcome, "adp_recharacterized_as_catch_up") == {"H": "8000.00"}
    assert by_employee(outcome, "adp_excess_distribution") == {"H": "2000.00"}
    event = events(outcome, "adp_recharacterized_to_roth")[f"{PLAN}/H"]
    assert (event["amount"], event["deadline"], event["final_deadline"], event["or_distribute"]) == \
        ("8000.00", "2027-03-15", "2027-12-31", True)
    finding = next(f for f in outcome.findings if f.rule == "roth-catch-up-made-pretax")
    assert finding.amount == 800000


def test_roth_deferrals_left_after_the_years_catch_up_offset_the_recharacterized_amount(tmp_path, rulebook, limits,
                                                                                       engine):
    """H defers $17,000 pretax and $3,000 Roth (same 10%): no catch-up above 402(g), so the $3,000 Roth counts
    against the $8,000 recharacterized: $5,000 must become Roth."""
    outcome = run(tmp_path, _adp_case(pretax="17000", roth="3000"), [plan()], rulebook, limits, engine)
    assert by_employee(outcome, "adp_recharacterized_to_roth") == {"H": "5000.00"}
    assert not by_employee(outcome, "roth_catch_up_to_roth")


def test_in_a_plan_without_roth_the_high_earners_adp_excess_is_distributed_not_recharacterized(tmp_path, rulebook,
                                                                                             limits, engine):
    outcome = run(tmp_path, _adp_case(), [plan(contributions=NO_ROTH)], rulebook, limits, engine)
    assert not by_employee(outcome, "adp_recharacterized_as_catch_up")
    assert by_employee(outcome, "adp_excess_distribution") == {"H": "10000.00"}
    below = run(tmp_path, _adp_case(prior_year_fica_wages="150000"), [plan(contributions=NO_ROTH)], rulebook, limits,
                engine)
    assert by_employee(below, "adp_recharacterized_as_catch_up") == {"H": "8000.00"}


def test_before_2026_there_is_no_roth_catch_up_requirement(tmp_path, rulebook, limits, engine):
    """2025 (transition): $31,000 pretax at 56 is $7,500 of catch-up, allowed pretax whatever the wages."""
    rows = [older("H", "200000", pretax="31000", prior_year_fica_wages="400000")]
    outcome = run(tmp_path, rows, [plan(contributions=NO_ROTH)], rulebook, limits, engine, year=2025)
    assert not outcome.findings and not outcome.corrections


def test_the_wages_are_the_person_s_at_the_employer_whichever_plan_row_gives_them(tmp_path, rulebook, limits, engine):
    """H is in two plans of one employer; only the second plan's row gives the wages: the first plan's pretax
    catch-up is still Roth catch-up. Of another employer, the figure does not carry over."""
    rows = [older("H", "200000", pretax="32500", prior_year_fica_wages=""),
            older("H", "200000", plan_id=PLAN_2, prior_year_fica_wages="200000")]
    same = run(tmp_path, rows, [plan(employer="acme"), plan(plan_id=PLAN_2, employer="acme")], rulebook, limits,
               engine)
    assert by_employee(same, "roth_catch_up_to_roth") == {"H": "8000.00"}
    other = run(tmp_path, rows, [plan(employer="acme"), plan(plan_id=PLAN_2, employer="other")], rulebook, limits,
                engine)
    assert not by_employee(other, "roth_catch_up_to_roth")
    assert "roth-catch-up-wages-unknown-at-year-end" in rules_fired(other)


def test_the_feed_gives_the_wages_where_it_has_them(tmp_path, rulebook, limits, engine):
    """With --feed, the feed's prior_year_fica_wages of the year replace an empty census figure; a feed row
    with a bad figure is rejected with its reason."""
    from plancheck.documents.census_feed import contributions_from_feed
    from plancheck.documents.feed.reader import COLUMNS as FEED_COLUMNS
    base = {"plan_id": PLAN, "employee_id": "H", "birth_date": "1970-01-01", "compensation": "20000", "roth": "0",
            "after_tax": "0", "employer_match": "0", "employer_nonelective": "0", "other_plan_deferrals": "",
            "limitation_year": ""}
    feed = write_census(tmp_path / "feed.csv", [
        {**base, "pay_date": "2026-01-31", "pretax": "16250", "prior_year_fica_wages": "200000"},
        {**base, "pay_date": "2026-02-28", "pretax": "16250", "prior_year_fica_wages": ""},
        {**base, "pay_date": "2026-03-31", "pretax": "0", "prior_year_fica_wages": "lots"}], FEED_COLUMNS)
    census = read_census(write_census(tmp_path / "census.csv", [older("H", "200000", prior_year_fica_wages="")]),
                         [PLAN], 2026)
    summary, header, rejects = contributions_from_feed(feed, census)
    assert summary["rows_rejected"] == 1 and "prior_year_fica_wages: expected dollars" in rejects[0][1]
    assert (census.fica_known.tolist(), census.prior_year_fica_wages.tolist()) == ([True], [20_000_000])
    outcome = check_yearend(census, [plan()], limits, rulebook, engine, 2026)
    assert by_employee(outcome, "roth_catch_up_to_roth") == {"H": "8000.00"}


# -- 415(c) across the employer -----------------------------------------------------------------------------

@pytest.mark.parametrize("after_tax, excess", [("42500.00", None), ("42500.01", "0.01")])
def test_annual_additions_one_cent_over_415c_are_returned_after_tax_first(after_tax, excess, tmp_path, rulebook,
                                                                          limits, engine):
    """45, $100,000: $24,500 pretax + $5,000 match + $42,500 after-tax = $72,000, at the limit; a cent more is
    an excess, returned from the after-tax money."""
    rows = [person("E", "100000", pretax="24500", employer_match="5000", after_tax=after_tax)]
    outcome = run(tmp_path, rows, [plan()], rulebook, limits, engine)
    assert by_employee(outcome, "annual_additions_after_tax") == ({"E": excess} if excess else {})
    assert ("annual-additions-exceed-415c" in rules_fired(outcome)) is bool(excess)


@pytest.mark.parametrize("after_tax, excess", [("47500.00", None), ("47500.01", "0.01")])
def test_catch_up_is_left_out_of_the_annual_additions(after_tax, excess, tmp_path, rulebook, limits, engine):
    """56: $32,500 pretax of which $8,000 catch-up, so $24,500 + $47,500 after-tax = $72,000 (the $80,000
    ceiling at 50+); one cent more is a 415(c) excess."""
    rows = [older("E", "200000", pretax="32500", roth="0", after_tax=after_tax, prior_year_fica_wages="0")]
    outcome = run(tmp_path, rows, [plan()], rulebook, limits, engine)
    assert by_employee(outcome, "annual_additions_after_tax") == ({"E": excess} if excess else {})


def test_the_limit_is_100_percent_of_pay_and_deferrals_above_it_at_50_are_catch_up(tmp_path, rulebook, limits,
                                                                                   engine):
    """Pay $30,000: at 45, $20,000 pretax + $10,000.01 nonelective is one cent over 100% of pay, returned from the
    (unmatched) deferrals; at 56, the same deferrals above the limit are catch-up (1.414(v)-1(b)(1)(ii))."""
    young = run(tmp_path, [person("E", "30000", pretax="20000", employer_nonelective="10000.01")], [plan()],
                rulebook, limits, engine)
    assert by_employee(young, "annual_additions_deferrals") == {"E": "0.01"}
    event = events(young, "annual_additions_deferrals")[f"{PLAN}/E"]
    assert (event["annual_additions"], event["limit_415c"], event["excess"], event["unmatched"]) == \
        ("30000.01", "30000.00", "0.01", "0.01")
    old = run(tmp_path, [older("E", "30000", pretax="20000", employer_nonelective="12000", prior_year_fica_wages="0")],
              [plan()], rulebook, limits, engine)
    assert not old.findings


def test_the_correction_order_after_tax_then_unmatched_then_matched_deferrals_then_nonelective(tmp_path, rulebook,
                                                                                               limits, engine):
    """Match 100% of deferrals up to 4% of $100,000 ($4,000). A: $2,000 over: the $500 after-tax, then $1,500 of
    the $20,500 unmatched deferrals. B: $2,000 over with only $3,000 of deferrals, all matched: $1,000 returned
    and its $1,000 match forfeited. C: one cent over from nonelective money alone."""
    matched = plan(match=MATCH_4)
    rows = [person("A", "100000", pretax="24500", employer_match="4000", employer_nonelective="45000",
                   after_tax="500"),
            person("B", "100000", pretax="3000", employer_match="3000", employer_nonelective="68000"),
            person("C", "100000", employer_nonelective="72000.01")]
    outcome = run(tmp_path, rows, [matched], rulebook, limits, engine)
    assert by_employee(outcome, "annual_additions_after_tax") == {"A": "500.00"}
    assert by_employee(outcome, "annual_additions_deferrals") == {"A": "1500.00", "B": "1000.00"}
    assert by_employee(outcome, "annual_additions_match_forfeited") == {"B": "1000.00"}
    assert by_employee(outcome, "annual_additions_nonelective") == {"C": "0.01"}
    b = events(outcome, "annual_additions_deferrals")[f"{PLAN}/B"]
    assert (b["matched"], b["unmatched"]) == ("1000.00", "0.00")
    assert "Rev. Proc. 2021-30" in b["citation"]
    kinds = [c.kind for c in outcome.corrections if c.employee_id == "A"]
    assert kinds == ["annual_additions_after_tax", "annual_additions_deferrals"]


def _two_plans(employer_2: str):
    return [plan(employer="acme"), plan(plan_id=PLAN_2, employer=employer_2)]


def test_415c_counts_every_plan_of_the_employer_and_says_which_plan_gives_back(tmp_path, rulebook, limits, engine):
    """E in two plans of one employer ($200,000): $24,500 pretax + $20,000 nonelective in the first, $1,000
    after-tax + $29,000 nonelective in the second = $74,500, $2,500 over: the second plan's $1,000 after-tax
    first, then $1,500 of deferrals from the first. Of two employers, each plan is under the limit."""
    rows = [person("E", "200000", pretax="24500", employer_nonelective="20000"),
            person("E", "200000", plan_id=PLAN_2, after_tax="1000", employer_nonelective="29000")]
    outcome = run(tmp_path, rows, _two_plans("acme"), rulebook, limits, engine)
    assert set(events(outcome, "annual_additions_after_tax")) == {f"{PLAN_2}/E"}
    assert events(outcome, "annual_additions_after_tax")[f"{PLAN_2}/E"]["amount"] == "1000.00"
    assert events(outcome, "annual_additions_deferrals")[f"{PLAN}/E"]["amount"] == "1500.00"
    found = {f.context["plan_id"]: f for f in outcome.findings if f.rule == "annual-additions-exceed-415c"}
    assert set(found) == {PLAN, PLAN_2}
    assert "$1,500.00 of it is corrected in this plan" in found[PLAN].message
    apart = run(tmp_path, rows, _two_plans("other"), rulebook, limits, engine)
    assert not [c for c in apart.corrections if c.kind.startswith("annual_additions")]


def test_the_command_line_reports_both_in_text_and_exits_1(tmp_path):
    """`plancheck yearend --format text` on a census of the bundled plans: the Roth catch-up line says the W-2
    date and the in-plan Roth rollover date; the 415(c) line says which source goes back; errors exit 1."""
    rows = [older("H1", "200000", plan_id="acme-mega-backdoor", pretax="32500", prior_year_fica_wages="200000"),
            person("H2", "100000", plan_id="acme-mega-backdoor", pretax="24500", after_tax="45000",
                   employer_match="4000", prior_year_fica_wages="90000")]
    census = write_census(tmp_path / "census.csv", rows)
    result = plancheck("yearend", str(census), "--plans", str(ROOT / "plans"), "--year", "2026", "--format", "text",
                       "--rejects", str(tmp_path / "r.csv"))
    assert result.returncode == 1, result.stderr
    assert ("H1: make pretax catch-up Roth (414(v)(7)) $8,000.00 (on the Form W-2 by 2027-01-31, else in-plan Roth "
            "rollover by 2027-04-15)") in result.stdout
    assert "H2: return after-tax contributions (415(c)) $1,500.00" in result.stdout
    assert ("  Roth catch-up (414(v)(7)): $8,000.00 of catch-up made pretax, to make Roth (1 participant(s))"
            in result.stdout)
    assert "  415(c) across the employer's plans: 1 participant(s) over, $1,500.00 in all;" in result.stdout


def test_roth_deferrals_in_one_plan_offset_pretax_catch_up_in_another_of_the_employer():
    """One person, two plans: $8,000 of catch-up made pretax in the first, $3,000 Roth in the second (no catch-up
    there): $5,000 of the first plan's catch-up must become Roth, none of the second's. A second person, alone,
    keeps their own figures; their wages unknown, their pretax catch-up is the warning's."""
    from types import SimpleNamespace

    from plancheck.facts.roth_catch_up import RothCatchUp
    census = SimpleNamespace(rows=3, money={"roth": np.array([0, 300_000, 0])})
    person = np.array([7, 7, 9])
    rule = RothCatchUp(in_force=True, threshold=15_000_000, wages=np.array([20_000_000, 20_000_000, 0]),
                       known=np.array([True, True, False]), applies=np.array([True, True, False]),
                       no_roth=np.zeros(3, dtype=bool))
    rule.restrict(np.full(3, 800_000))
    rule.settle(census, person, catch_up=np.array([800_000, 0, 100_000]), recharacterized=np.zeros(3, np.int64),
                excess_deferral=np.zeros(3, np.int64))
    assert rule.to_roth.tolist() == [500_000, 0, 0]
    assert rule.unknown_pretax.tolist() == [0, 0, 100_000]


def test_taking_from_a_person_s_rows_goes_in_census_order_and_stops_at_the_budget():
    """Budget $10 from rows of $4, $3, $5 of one person (census order) and $2 of another with budget $1."""
    from plancheck.facts.by_person import People
    people = People(np.array([5, 3, 5, 5]))
    taken = people.take_in_order(np.array([400, 200, 300, 500]), np.array([1000, 100, 1000, 1000]))
    assert taken.tolist() == [400, 100, 300, 300]
    assert people.total(np.array([1, 2, 3, 4])).tolist() == [8, 2, 8, 8]
    alone = People(np.array([0, 1, 2]))
    assert alone.one_row_each and alone.take_in_order(np.array([5, 5, 5]), np.array([9, 2, -1])).tolist() == [5, 2, 0]


def test_the_age_60_to_63_catch_up_made_pretax_is_roth_catch_up_too(tmp_path, rulebook, limits, engine):
    """61 in 2026 in a plan with the higher limit: $35,750 pretax is $11,250 of catch-up, all to make Roth."""
    rows = [person("H", "250000", birth_date="1965-06-30", pretax="35750", prior_year_fica_wages="250000")]
    outcome = run(tmp_path, rows, [plan(catch_up={"offered": True, "age_60_63": True})], rulebook, limits, engine)
    assert by_employee(outcome, "roth_catch_up_to_roth") == {"H": "11250.00"}


def test_the_match_forfeited_with_returned_deferrals_counts_toward_the_excess(tmp_path, rulebook, limits, engine):
    """A practitioners' example under EPCRS 6.06(2), 2025 ($70,000): under 50, $23,500 deferred, a 50% match on all
    deferrals ($11,750) and $40,000 profit sharing: $75,250, $5,250 over. Every deferral is matched, so $3,500 of
    deferrals go back and their $1,750 match is forfeited ($5,250 in all), not $5,250 of deferrals."""
    half = plan(match={"tiers": [{"rate": 50, "up_to_percent": 100}]})
    rows = [person("E", "200000", pretax="23500", employer_match="11750", employer_nonelective="40000")]
    outcome = run(tmp_path, rows, [half], rulebook, limits, engine, year=2025)
    assert by_employee(outcome, "annual_additions_deferrals") == {"E": "3500.00"}
    assert by_employee(outcome, "annual_additions_match_forfeited") == {"E": "1750.00"}
    assert not by_employee(outcome, "annual_additions_nonelective")


@pytest.mark.parametrize("forfeitures, nonelective_back", [("1000.00", None), ("1000.01", "0.01")])
def test_forfeitures_allocated_are_annual_additions(forfeitures, nonelective_back, tmp_path, rulebook, limits, engine):
    """$71,000 nonelective and $1,000 of forfeitures allocated is $72,000, at the limit; a cent more comes out of
    the nonelective money first (the order's step before forfeitures)."""
    rows = [person("E", "100000", employer_nonelective="71000", forfeitures=forfeitures)]
    outcome = run(tmp_path, rows, [plan()], rulebook, limits, engine)
    assert by_employee(outcome, "annual_additions_nonelective") == ({"E": nonelective_back} if nonelective_back else {})
    alone = run(tmp_path, [person("E", "100000", forfeitures="72000.01")], [plan()], rulebook, limits, engine)
    assert by_employee(alone, "annual_additions_forfeitures") == {"E": "0.01"}


def test_a_bad_prior_year_fica_wages_rejects_its_row_with_the_reason(tmp_path):
    """'150,000' is not dollars: the row is rejected, named by its line and field; an empty figure is accepted."""
    rows = [older("BAD", "200000", prior_year_fica_wages="150,000"), older("EMPTY", "200000", prior_year_fica_wages="")]
    census = read_census(write_census(tmp_path / "census.csv", rows), [PLAN], 2026)
    assert [r.line for r in census.rejects] == [2]
    assert census.rejects[0].reason.startswith("prior_year_fica_wages: expected dollars with at most two decimals")
    assert census.employee_id.tolist() == ["EMPTY"] and census.fica_known.tolist() == [False]


def test_once_unmatched_deferrals_are_back_the_matched_ones_take_their_match_with_them(tmp_path, rulebook, limits,
                                                                                       engine):
    """Match 100% up to 4% of $100,000. $24,500 pretax + $4,000 match + $65,500 nonelective = $94,000, $22,000
    over: the $20,500 unmatched deferrals, then $750 of matched deferrals and their $750 match ($1,500)."""
    rows = [person("E", "100000", pretax="24500", employer_match="4000", employer_nonelective="65500")]
    outcome = run(tmp_path, rows, [plan(match=MATCH_4)], rulebook, limits, engine)
    assert by_employee(outcome, "annual_additions_deferrals") == {"E": "21250.00"}
    assert by_employee(outcome, "annual_additions_match_forfeited") == {"E": "750.00"}
    event = events(outcome, "annual_additions_deferrals")[f"{PLAN}/E"]
    assert (event["unmatched"], event["matched"]) == ("20500.00", "750.00")


def test_the_415c_corrections_add_up_to_each_person_s_excess(tmp_path, limits):
    """Seeded random people in two plans of one employer (one with a tiered match): what comes back (returned,
    forfeited, taken out) adds up to each person's excess, to the cent or at most the match's rounding above it,
    and nobody gives back more of a source than they have."""
    from plancheck.facts.annual_additions import KINDS
    from plancheck.facts.yearend import build_yearend_facts
    rng = np.random.default_rng(415)
    rows = []
    for i in range(300):
        for plan_id in (PLAN, PLAN_2):
            if rng.random() < 0.3:
                continue
            money = {k: f"{rng.integers(0, 3_000_000) / 100:.2f}" for k in
                     ("pretax", "after_tax", "employer_match", "employer_nonelective")}
            rows.append(person(f"E{i}", f"{rng.integers(2_000_000, 40_000_000) / 100:.2f}", plan_id=plan_id,
                               birth_date=str(rng.choice(["1960-05-01", "1985-05-01"])), **money))
    plans = [plan(employer="acme", match={"tiers": [{"rate": 100, "up_to_percent": 3}, {"rate": 50, "up_to_percent": 5}]}),
             plan(plan_id=PLAN_2, employer="acme")]
    census = read_census(write_census(tmp_path / "census.csv", rows), [PLAN, PLAN_2], 2026)
    facts = build_yearend_facts(census, plans, limits, 2026)
    a = facts.annual_additions
    back = sum(a.taken[k] for k in KINDS)
    ids = census.employee_id
    people = {}
    for row in range(census.rows):
        total, excess = people.get(ids[row], (0, int(a.excess[row])))
        people[ids[row]] = (total + int(back[row]), excess)
    assert any(excess for _, excess in people.values())
    for person_id, (total, excess) in people.items():
        assert excess <= total <= excess + 1, person_id
    m = census.money
    assert (a.taken["annual_additions_after_tax"] <= m["after_tax"]).all()
    assert (a.taken["annual_additions_deferrals"] <= m["pretax"] + m["roth"]).all()
    assert (a.taken["annual_additions_match_forfeited"] + a.taken["annual_additions_match"] <= m["employer_match"]).all()


def test_415c_comes_before_the_acp_test_which_does_not_count_what_415c_returned(tmp_path, rulebook, limits, engine):
    """HCE H ($200,000): $24,500 pretax + $50,000 after-tax = $74,500, $2,500 over 415(c): that after-tax money goes
    back first and is not ACP-tested. The ACP test then sees $47,500 (23.75%) against NHCEs at 2.00% (limit 4.00%):
    $39,500 more to distribute - $42,000 of after-tax money in all, not $44,500. (ADP: 12.25% against 12.50%.)"""
    rows = [person("H", "200000", pretax="24500", after_tax="50000"),
            person("N1", "50000", pretax="5000", after_tax="1000"), person("N2", "50000", pretax="5000", after_tax="1000")]
    outcome = run(tmp_path, rows, [plan()], rulebook, limits, engine)
    assert by_employee(outcome, "annual_additions_after_tax") == {"H": "2500.00"}
    assert by_employee(outcome, "acp_excess_distribution") == {"H": "39500.00"}
    hce = next(h for h in outcome.hces if h["employee_id"] == "H")
    assert (hce["adr"], hce["acr"]) == ("12.25", "23.75")


@pytest.mark.parametrize("nonelective, excess", [("55500.00", None), ("55500.01", "0.01")])
def test_deferrals_above_415c_across_the_employer_are_catch_up_at_50(nonelective, excess, tmp_path, rulebook, limits,
                                                                     engine):
    """56, $200,000, two plans of one employer: $24,500 pretax in the first, $55,500 nonelective in the second
    ($80,000). The deferrals that take the employer's additions above $72,000 are catch-up, up to $8,000
    (1.414(v)-1(b)(1)(ii)), though neither plan alone is over: nothing to correct. A cent more of nonelective
    money is a cent over, returned from the first plan's deferrals."""
    rows = [older("E", "200000", pretax="24500", prior_year_fica_wages="0"),
            older("E", "200000", plan_id=PLAN_2, employer_nonelective=nonelective, prior_year_fica_wages="0")]
    outcome = run(tmp_path, rows, _two_plans("acme"), rulebook, limits, engine)
    back = {key: e["amount"] for key, e in events(outcome, "annual_additions_deferrals").items()}
    assert back == ({f"{PLAN}/E": excess} if excess else {})
