"""The nearest compliant election, on hand-worked cases (monthly plan; dollar and percentage elections)."""

from __future__ import annotations

import numpy as np
import pytest

import plancheck.checks.nearest as nearest_module
from helpers import make_election, make_plan
from plancheck.checks.election import check_election
from plancheck.checks.nearest import nearest_compliant


@pytest.fixture()
def nearest(rulebook, limits, engine):
    def run(plan, election):
        asked = check_election(election, plan, limits, rulebook, engine, "test")
        return {f.rule for f in asked.findings}, nearest_compliant(election, plan, limits, rulebook, engine)
    return run


def runs(answer) -> list[tuple[int, int, str, str, str]]:
    """(from period, to period, pretax, roth, after-tax) of each run of the proposed schedule."""
    return [(r["from_period"], r["to_period"], r["amounts"]["pretax"], r["amounts"]["roth"], r["amounts"]["after_tax"])
            for r in answer["schedule"]]


def test_catch_up_is_made_roth_from_the_period_it_is_first_needed(nearest):
    # 2026, age 56, prior-year FICA wages $200,000 > $150,000: catch-up must be Roth (414(v)(7)).
    # $2,500 pretax a month: $22,500 by September, $25,000 in October = $500 over the $24,500 402(g)
    # limit. So October: $2,000 pretax + $500 Roth; November and December: $2,500 Roth. Total still $30,000.
    election = make_election("1970-03-01", "2026-01-01", {"annual": 240000}, {"pretax": {"amount": 2500}},
                             prior_year_fica_wages=200000)
    asked, answer = nearest(make_plan(), election)
    assert "roth-catch-up-required" in asked
    assert answer["found"] and answer["repairs"] == ["roth-catch-up-required"]
    assert runs(answer) == [(1, 9, "2500.00", "0.00", "0.00"), (10, 10, "2000.00", "500.00", "0.00"),
                            (11, 12, "0.00", "2500.00", "0.00")]
    assert answer["changes"] == {"pretax": {"asked": "30000.00", "proposed": "24500.00"},
                                 "roth": {"asked": "0.00", "proposed": "5500.00"}}
    assert answer["summary"]["year_end"]["catch_up"] == "5500.00"


def test_deferrals_are_capped_at_the_402g_plan_limit(nearest):
    # Age 40 (no catch-up), $3,000 a month: $24,000 by August, the $24,500 limit leaves $500 for
    # September and nothing after.
    election = make_election("1986-03-01", "2026-01-01", {"annual": 240000}, {"pretax": {"amount": 3000}},
                             prior_year_fica_wages=200000)
    asked, answer = nearest(make_plan(), election)
    assert "402g-deferral-limit" in asked
    assert runs(answer) == [(1, 8, "3000.00", "0.00", "0.00"), (9, 9, "500.00", "0.00", "0.00"),
                            (10, 12, "0.00", "0.00", "0.00")]
    assert answer["summary"]["year_end"]["deferrals"] == "24500.00"


def test_after_tax_is_capped_at_the_415c_room_keeping_deferrals(nearest):
    # 2024, age 45: $1,500 pretax + $5,000 after-tax a month = $78,000, $9,000 over 415(c)'s $69,000.
    # After-tax gives way from December back: December $0, November $1,000, January-October $5,000.
    election = make_election("1979-03-01", "2024-01-01", {"annual": 300000},
                             {"pretax": {"amount": 1500}, "after_tax": {"amount": 5000}})
    asked, answer = nearest(make_plan(), election)
    assert "415c-annual-additions" in asked
    assert runs(answer) == [(1, 10, "1500.00", "0.00", "5000.00"), (11, 11, "1500.00", "0.00", "1000.00"),
                            (12, 12, "1500.00", "0.00", "0.00")]
    assert answer["changes"] == {"after_tax": {"asked": "60000.00", "proposed": "51000.00"}}
    assert answer["summary"]["year_end"]["annual_additions"] == "69000.00"


def test_after_tax_is_capped_at_the_plans_percent_of_pay(nearest):
    # $120,000 a year is $10,000 a month; the plan takes at most 10% after tax: $1,000 of the $2,000 asked.
    plan = make_plan(contributions={"pretax": True, "roth": True, "after_tax": True, "max_after_tax_percent": 10})
    election = make_election("1979-03-01", "2024-01-01", {"annual": 120000}, {"after_tax": {"amount": 2000}})
    asked, answer = nearest(plan, election)
    assert "after-tax-rate-above-plan-max" in asked
    assert runs(answer) == [(1, 12, "0.00", "0.00", "1000.00")]


def test_sources_the_plan_does_not_accept_are_zeroed(nearest):
    plan = make_plan(contributions={"pretax": True, "roth": False, "after_tax": False})
    election = make_election("1979-03-01", "2024-07-01", {"annual": 120000},
                             {"pretax": {"amount": 800}, "roth": {"amount": 300}, "after_tax": {"percent": 5}})
    asked, answer = nearest(plan, election)
    assert {"roth-not-permitted", "after-tax-not-permitted"} <= asked
    assert runs(answer) == [(7, 12, "800.00", "0.00", "0.00")]
    assert set(answer["repairs"]) == {"roth-not-permitted", "after-tax-not-permitted"}


def test_no_answer_when_money_already_paid_breaks_the_rule(nearest):
    # $24,000 deferred before July at age 40: already $1,000 over 2024's $23,000, whatever comes next.
    election = make_election("1984-03-01", "2024-07-01", {"annual": 240000}, {"pretax": {"amount": 500}},
                             year_to_date={"pretax": 24000})
    asked, answer = nearest(make_plan(), election)
    assert "402g-deferral-limit" in asked
    assert answer["found"] is False and "402g-deferral-limit" in answer["remaining_rules"]


def test_a_compliant_election_is_its_own_nearest(nearest):
    election = make_election("1979-03-01", "2024-01-01", {"annual": 120000}, {"pretax": {"amount": 1000}})
    asked, answer = nearest(make_plan(), election)
    assert not asked and answer["found"] and answer["repairs"] == [] and answer["changes"] == {}


def terms(answer) -> list[tuple[int, int, dict]]:
    """(from period, to period, the run's terms as an election writes them) of each run of the proposed schedule."""
    return [(r["from_period"], r["to_period"], r["election"]) for r in answer["schedule"]]


def pct(text: str) -> dict:
    return {"percent": text}


def breaks(plan, election, rulebook, limits, engine, **amounts) -> set[str]:
    """The error rules of `election` with per-period amounts in cents (a varying schedule) put in its place."""
    result = check_election(election, plan, limits, rulebook, engine, "test",
                            amounts={k: np.array(v, dtype=np.int64) for k, v in amounts.items()})
    return {f.rule for f in result.findings if f.severity == "error"}


# Age 40 in 2024 (402(g) $23,000, no catch-up), $9,000 a month, 25% pretax = $2,250 a month: $22,500 by
# October, so November has $500 of room and December none.
AGE_40_2024 = ("1984-03-01", "2024-01-01", {"per_period": 9000})


def test_a_dollar_election_is_cut_to_the_cent_at_the_402g_limit(nearest, rulebook, limits, engine):
    plan, election = make_plan(), make_election(*AGE_40_2024, {"pretax": {"amount": 2250}})
    asked, answer = nearest(plan, election)
    assert "402g-deferral-limit" in asked
    assert answer["units"] == {"pretax": "amount", "roth": "amount", "after_tax": "amount"}
    assert runs(answer) == [(1, 10, "2250.00", "0.00", "0.00"), (11, 11, "500.00", "0.00", "0.00"),
                            (12, 12, "0.00", "0.00", "0.00")]
    assert answer["rechecked"] is True and "percent_increment" not in answer
    ten = [225000] * 10
    assert not breaks(plan, election, rulebook, limits, engine, pretax=ten + [50000, 0])
    assert "402g-deferral-limit" in breaks(plan, election, rulebook, limits, engine, pretax=ten + [50001, 0])


def test_a_percent_election_is_offered_in_whole_percent_at_the_402g_limit(nearest, rulebook, limits, engine):
    # November: $500 of room is 5.55...% of $9,000; in whole percent 5% ($450) fits and 6% ($540) is $40 over.
    plan, election = make_plan(), make_election(*AGE_40_2024, {"pretax": {"percent": 25}})
    asked, answer = nearest(plan, election)
    assert "402g-deferral-limit" in asked
    assert answer["found"] and answer["rechecked"] and answer["percent_increment"] == "1"
    assert answer["units"] == {"pretax": "percent", "roth": "percent", "after_tax": "percent"}
    none = {"roth": pct("0"), "after_tax": pct("0")}
    assert terms(answer) == [(1, 10, {"pretax": pct("25"), **none}), (11, 11, {"pretax": pct("5"), **none}),
                             (12, 12, {"pretax": pct("0"), **none})]
    assert [r["changed"] for r in answer["schedule"]] == [False, True, True]
    assert answer["schedule"][1]["amounts"]["pretax"] == "450.00"
    assert answer["changes"] == {"pretax": {"asked": "27000.00", "proposed": "22950.00"}}
    ten = [225000] * 10
    assert not breaks(plan, election, rulebook, limits, engine, pretax=ten + [45000, 0])  # 5%
    assert "402g-deferral-limit" in breaks(plan, election, rulebook, limits, engine, pretax=ten + [54000, 0])  # 6%


def test_a_percent_election_is_offered_in_the_plans_steps_of_a_hundredth(nearest, rulebook, limits, engine):
    # In steps of 0.01%: 5.55% ($499.50) fits; 5.56% ($500.40) is 40 cents over.
    plan = make_plan(contributions={"pretax": True, "roth": True, "after_tax": True, "percent_increment": "0.01"})
    election = make_election(*AGE_40_2024, {"pretax": {"percent": 25}})
    _, answer = nearest(plan, election)
    assert answer["percent_increment"] == "0.01"
    assert [r["election"]["pretax"] for r in answer["schedule"]] == [pct("25"), pct("5.55"), pct("0")]
    assert answer["changes"]["pretax"]["proposed"] == "22999.50"
    ten = [225000] * 10
    assert not breaks(plan, election, rulebook, limits, engine, pretax=ten + [49950, 0])  # 5.55%
    assert "402g-deferral-limit" in breaks(plan, election, rulebook, limits, engine, pretax=ten + [50040, 0])  # 5.56%


def test_catch_up_made_roth_is_offered_in_percent_for_a_percent_election(nearest):
    # The first test's case elected as 25% of $10,000: October 20% pretax + 5% Roth, then 25% Roth.
    election = make_election("1970-03-01", "2026-01-01", {"per_period": 10000}, {"pretax": {"percent": 25}},
                             prior_year_fica_wages=200000)
    _, answer = nearest(make_plan(), election)
    assert answer["repairs"] == ["roth-catch-up-required"]
    assert [(a, b, t["pretax"], t["roth"]) for a, b, t in terms(answer)] == [
        (1, 9, pct("25"), pct("0")), (10, 10, pct("20"), pct("5")), (11, 12, pct("0"), pct("25"))]
    assert answer["summary"]["year_end"]["catch_up"] == "5500.00"


def test_after_tax_in_percent_beside_pretax_in_dollars_each_keeps_its_unit(nearest):
    # 2024, age 45, $25,000 a month: $1,500 pretax + 20% after-tax ($5,000) is $9,000 over 415(c)'s $69,000.
    # After-tax gives way from December back: December 0%, November 4% ($1,000), the rest 20%.
    election = make_election("1979-03-01", "2024-01-01", {"per_period": 25000},
                             {"pretax": {"amount": 1500}, "after_tax": {"percent": 20}})
    _, answer = nearest(make_plan(), election)
    assert answer["units"] == {"pretax": "amount", "roth": "amount", "after_tax": "percent"}
    assert [(a, b, t["pretax"], t["after_tax"]) for a, b, t in terms(answer)] == [
        (1, 10, {"amount": "1500.00"}, pct("20")), (11, 11, {"amount": "1500.00"}, pct("4")),
        (12, 12, {"amount": "1500.00"}, pct("0"))]
    assert answer["summary"]["year_end"]["annual_additions"] == "69000.00"


def test_should_the_steps_break_a_rule_the_offer_is_in_dollars_and_says_why(nearest, monkeypatch):
    """Defensive path: if the percent schedule failed its re-check, the dollar schedule is offered instead."""
    def as_asked(s, election, units, step):  # a 'rounding' that undoes the repair
        return {"pretax": np.full(len(s.amounts["pretax"]), 250_000)}
    monkeypatch.setattr(nearest_module, "_in_percent", as_asked)
    _, answer = nearest(make_plan(), make_election(*AGE_40_2024, {"pretax": {"percent": 25}}))
    assert answer["found"] and answer["units"]["pretax"] == "amount"
    assert "402g-deferral-limit" in answer["percent_unavailable"]
    assert [r["amounts"]["pretax"] for r in answer["schedule"]] == ["2250.00", "500.00", "0.00"]


def test_a_move_to_roth_keeps_the_elected_total_percent(nearest, rulebook, limits, engine):
    # 2026, age 56, prior-year FICA wages $200,000: 30% of $9,000 = $2,700 a month reaches $24,300 by September;
    # October's $2,700 brings $2,500 of catch-up, to be Roth. $200 of pretax is 2.2%: pretax 2% ($180) and Roth
    # the rest of the 30%, 28% ($2,520), which covers the $2,500. Roth 27% with pretax 3% would leave $70 of
    # catch-up made pretax in October.
    election = make_election("1970-03-01", "2026-01-01", {"per_period": 9000}, {"pretax": {"percent": 30}},
                             prior_year_fica_wages=200000)
    plan = make_plan()
    _, answer = nearest(plan, election)
    assert [(a, b, t["pretax"], t["roth"]) for a, b, t in terms(answer)] == [
        (1, 9, pct("30"), pct("0")), (10, 10, pct("2"), pct("28")), (11, 12, pct("0"), pct("30"))]
    assert answer["changes"]["roth"]["proposed"] == "7920.00"
    nine = [270000] * 9
    assert not breaks(plan, election, rulebook, limits, engine, pretax=nine + [18000, 0, 0],
                      roth=[0] * 9 + [252000, 270000, 270000])
    assert "roth-catch-up-required" in breaks(plan, election, rulebook, limits, engine, pretax=nine + [27000, 0, 0],
                                              roth=[0] * 9 + [243000, 270000, 270000])


def test_a_deferral_cut_that_lowers_the_match_frees_415c_room_and_is_counted(nearest, rulebook, limits, engine):
    """Cutting the whole 415(c) excess overshoots when the cut takes matched deferrals: the lost match is room too.

    2024, age 40, $1,000 a month ($12,000: the 415(c) limit is 100% of pay), $900 pretax a month, match 100% of
    the first 6% ($60 a month) and a 15% nonelective ($150): $10,800 + $720 + $1,800 = $13,320, $1,320 over.
    December's $900 goes (its $60 match with it: $960 freed); November needs $360 more, so it keeps $540.
    Cutting the whole $1,320 (November $480) left $60 of room unused."""
    plan = make_plan(match={"tiers": [{"rate": 100, "up_to_percent": 6}]}, nonelective={"percent": 15})
    election = make_election("1984-03-01", "2024-01-01", {"per_period": 1000}, {"pretax": {"amount": 900}})
    asked, answer = nearest(plan, election)
    assert "415c-annual-additions" in asked
    assert runs(answer) == [(1, 10, "900.00", "0.00", "0.00"), (11, 11, "540.00", "0.00", "0.00"),
                            (12, 12, "0.00", "0.00", "0.00")]
    assert answer["changes"] == {"pretax": {"asked": "10800.00", "proposed": "9540.00"}}
    assert answer["summary"]["year_end"]["annual_additions"] == "12000.00"
    ten = [90000] * 10
    assert not breaks(plan, election, rulebook, limits, engine, pretax=ten + [54000, 0])
    assert "415c-annual-additions" in breaks(plan, election, rulebook, limits, engine, pretax=ten + [54001, 0])


def test_a_matched_after_tax_cut_is_the_smallest_that_clears_415c(nearest, rulebook, limits, engine):
    """After-tax money the plan matches: each dollar cut below the matched 6% also takes a dollar of match.

    2024, age 45, $25,000 a month, $6,000 after-tax a month matched 100% up to 6% ($1,500): $72,000 + $18,000 =
    $90,000, $21,000 over $69,000. December and November go ($7,500 freed each); October needs $6,000 more:
    cutting $5,250 leaves $750, matched $750, which frees $5,250 + $750."""
    plan = make_plan(match={"tiers": [{"rate": 100, "up_to_percent": 6}], "sources": ["pretax", "roth", "after_tax"]})
    election = make_election("1979-03-01", "2024-01-01", {"per_period": 25000}, {"after_tax": {"amount": 6000}})
    asked, answer = nearest(plan, election)
    assert "415c-annual-additions" in asked
    assert runs(answer) == [(1, 9, "0.00", "0.00", "6000.00"), (10, 10, "0.00", "0.00", "750.00"),
                            (11, 12, "0.00", "0.00", "0.00")]
    assert answer["summary"]["year_end"]["annual_additions"] == "69000.00"
    nine = [600000] * 9
    assert not breaks(plan, election, rulebook, limits, engine, after_tax=nine + [75000, 0, 0])
    assert "415c-annual-additions" in breaks(plan, election, rulebook, limits, engine, after_tax=nine + [75001, 0, 0])
