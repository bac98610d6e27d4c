"""The nearest compliant election, on hand-worked cases (monthly plan, amounts per pay period)."""

from __future__ import annotations

import pytest

from plancheck.checks.election import check_election
from plancheck.checks.nearest import nearest_compliant
from helpers import make_election, make_plan


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
