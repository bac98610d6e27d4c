"""Election checks against answers worked out by hand from the IRS figures."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import make_election, make_plan, run
from plancheck.checks.election import check_election
from plancheck.documents.election import load_election
from plancheck.documents.plan import load_plan
from plancheck.errors import InputError, LimitYearMissing

MONTHLY_120K = {"annual": 120000}


def findings_of(plan, election, rulebook, limits, engine):
    return run(plan, election, rulebook, limits, engine)[0]


def test_seed_example_after_tax_room_is_44500(root: Path, rulebook, limits, engine):
    """Age 45, 2024, $23,000 pretax, $1,500 match: $69,000 - $24,500 = $44,500 of after-tax room."""
    plan = load_plan(root / "plans" / "monthly-mega-backdoor.yaml")
    election = load_election(root / "samples" / "elections" / "seed-mega-backdoor-2024.yaml")
    result = check_election(election, plan, limits, rulebook, engine, "seed")
    assert result.findings == []
    assert result.summary["year_end"]["deferrals"] == "23000.00"
    assert result.summary["year_end"]["employer_match"] == "1500.00"
    assert result.summary["after_tax_room"]["year"] == "44500.00"


def test_after_tax_room_per_period_spreads_over_remaining_periods(rulebook, limits, engine):
    """With no deferrals or match, a $120,000 earner has $69,000 of room: $5,750 a month."""
    findings, summary = run(make_plan(), make_election("1980-01-01", "2024-01-01", MONTHLY_120K, {}),
                            rulebook, limits, engine)
    assert summary["after_tax_room"] | {} == {**summary["after_tax_room"], "year": "69000.00",
                                              "per_period": "5750.00", "periods": 12}


@pytest.mark.parametrize(("birth", "expected"), [("1974-12-31", None), ("1975-01-01", (12, "1000.00"))],
                         ids=["turns 50 on Dec 31: catch-up", "turns 49: no catch-up"])
def test_catch_up_eligibility_at_50(birth, expected, rulebook, limits, engine):
    """$2,000 a month is $24,000: within 402(g) + catch-up at 50, $1,000 over at 49."""
    findings = findings_of(make_plan(), make_election(birth, "2024-01-01", MONTHLY_120K,
                                                      {"pretax": {"amount": 2000}}), rulebook, limits, engine)
    if expected is None:
        assert "402g-deferral-limit" not in findings
    else:
        f = findings["402g-deferral-limit"]
        assert (f.context["period"], f.amount, f.limit, f.excess) == (expected[0], 2_400_000, 2_300_000, 100_000)


@pytest.mark.parametrize(("birth", "year", "age_60_63", "period", "limit", "excess"), [
    ("1964-06-01", 2025, True, 12, 34_750, 50),      # 61 in 2025: 23,500 + 11,250
    ("1965-06-01", 2025, True, 12, 34_750, 50),      # attains 60 in 2025: inside the band
    ("1966-06-01", 2025, True, 11, 31_000, 900),     # 59: regular catch-up only
    ("1962-06-01", 2025, True, 12, 34_750, 50),      # 63
    ("1961-06-01", 2025, True, 11, 31_000, 900),     # 64: back to the regular limit
    ("1964-06-01", 2025, False, 11, 31_000, 900),    # 61 but the plan does not offer 60-63
    ("1963-06-01", 2024, True, 11, 30_500, 1_400),   # 61 in 2024: the higher limit did not exist yet
], ids=["61-2025", "60-2025", "59-2025", "63-2025", "64-2025", "61-plan-without", "61-2024"])
def test_age_60_63_catch_up(birth, year, age_60_63, period, limit, excess, rulebook, limits, engine):
    """$2,900 a month ($34,800 a year) against the catch-up the age, year and plan allow, when 402(g) is hit."""
    findings = findings_of(make_plan(catch_up={"offered": True, "age_60_63": age_60_63}),
                           make_election(birth, f"{year}-01-01", {"annual": 200000}, {"pretax": {"amount": 2900}}),
                           rulebook, limits, engine)
    f = findings["402g-deferral-limit"]
    assert (f.context["period"], f.limit, f.excess) == (period, limit * 100, excess * 100)


@pytest.mark.parametrize(("year", "fica", "fires"), [
    (2026, "150000.01", True), (2026, "150000.00", False), (2025, "400000", False), (2026, "0", False)],
    ids=["2026 one cent over", "2026 at threshold", "2025 transition", "no prior-year wages"])
def test_roth_catch_up_for_high_earners(year, fica, fires, rulebook, limits, engine):
    """From 2026, prior-year FICA wages above $150,000 make pretax catch-up a violation."""
    findings = findings_of(make_plan(), make_election("1970-01-01", f"{year}-01-01", {"annual": 240000},
                                                      {"pretax": {"amount": 2700}}, prior_year_fica_wages=fica),
                           rulebook, limits, engine)
    assert ("roth-catch-up-required" in findings) is fires
    if fires:
        f = findings["roth-catch-up-required"]
        # 9 x 2,700 = 24,300 <= 24,500; period 10 brings 27,000: 2,500 of pretax catch-up.
        assert (f.context["period"], f.amount) == (10, 250_000)
        assert "402g-deferral-limit" not in findings  # 32,400 is within 24,500 + 8,000


def test_roth_catch_up_made_as_roth_is_fine(rulebook, limits, engine):
    """The same high earner deferring Roth has no finding."""
    findings = findings_of(make_plan(), make_election("1970-01-01", "2026-01-01", {"annual": 240000},
                                                      {"roth": {"amount": 2700}}, prior_year_fica_wages=200000),
                           rulebook, limits, engine)
    assert findings == {}


def test_high_earner_in_a_plan_without_roth_loses_catch_up(rulebook, limits, engine):
    """No Roth program: a 2026 high earner's deferrals above $24,500 are excess deferrals."""
    plan = make_plan(contributions={"pretax": True, "roth": False})
    findings = findings_of(plan, make_election("1970-01-01", "2026-01-01", {"annual": 240000},
                                               {"pretax": {"amount": 2700}}, prior_year_fica_wages=200000),
                           rulebook, limits, engine)
    assert findings["402g-deferral-limit"].limit == 2_450_000
    assert findings["402g-deferral-limit"].excess == 250_000
    assert "roth-catch-up-without-roth-program" in findings
    assert "roth-catch-up-required" not in findings


@pytest.mark.parametrize(("ytd_after_tax", "fires"), [("0", False), ("0.01", True)], ids=["at limit", "cent over"])
def test_415c_one_cent_either_side(ytd_after_tax, fires, rulebook, limits, engine):
    """$5,750 a month after-tax is exactly $69,000; one more cent breaks 415(c) in the last period."""
    election = make_election("1980-01-01", "2024-01-01", MONTHLY_120K, {"after_tax": {"amount": 5750}},
                             year_to_date={"after_tax": ytd_after_tax, "compensation": 0})
    findings = findings_of(make_plan(), election, rulebook, limits, engine)
    assert ("415c-annual-additions" in findings) is fires
    if fires:
        f = findings["415c-annual-additions"]
        assert (f.context["period"], f.excess, f.limit) == (12, 1, 6_900_000)


def test_415c_counts_match_and_excludes_catch_up(rulebook, limits, engine):
    """Age 55: $30,500 deferred ($7,500 catch-up), $45,500 after-tax, $1,200 match: $69,700 counted, $700 over."""
    plan = make_plan(match={"tiers": [{"rate": 100, "up_to_percent": 1}]})
    election = make_election("1969-01-01", "2024-12-01", MONTHLY_120K, {"pretax": {"amount": 1500}},
                             year_to_date={"pretax": 29000, "after_tax": 45500, "employer_match": 1100})
    findings, summary = run(plan, election, rulebook, limits, engine)
    assert summary["year_end"]["catch_up"] == "7500.00"
    f = findings["415c-annual-additions"]
    assert (f.amount, f.excess) == (6_970_000, 70_000)
    assert "402g-deferral-limit" not in findings


def test_low_earner_limited_to_100_percent_of_pay(root, rulebook, limits, engine):
    """$26,000 of pay: 70% pretax + 28% after-tax + 3% match break 415(c) at the last paycheck by $260."""
    plan = load_plan(root / "plans" / "acme-mega-backdoor.yaml")
    election = load_election(root / "samples" / "elections" / "acme-low-earner-over-2024.yaml")
    findings = {f.rule: f for f in check_election(election, plan, limits, rulebook, engine, "x").findings}
    f = findings["415c-annual-additions"]
    assert (f.context["pay_date"], f.amount, f.limit, f.excess) == ("2024-12-20", 2_626_000, 2_600_000, 26_000)


def test_plan_without_after_tax(root, rulebook, limits, engine):
    """After-tax money elected in the safe-harbor plan is flagged at its first pay date."""
    plan = load_plan(root / "plans" / "bayside-safe-harbor.yaml")
    election = load_election(root / "samples" / "elections" / "bayside-after-tax-2024.yaml")
    result = check_election(election, plan, limits, rulebook, engine, "x")
    f = {f.rule: f for f in result.findings}["after-tax-not-permitted"]
    assert (f.context["pay_date"], f.amount) == ("2024-07-15", 20_000)
    assert result.summary["after_tax_room"]["year"] == "0.00"


def test_other_employers_deferrals_count_toward_the_individual_402g_limit(rulebook, limits, engine):
    """$10,000 deferred elsewhere plus $1,500 a month passes the individual $23,000 in period 9 by $500 (a warning)."""
    election = make_election("1985-01-01", "2024-01-01", MONTHLY_120K, {"pretax": {"amount": 1500}},
                             year_to_date={"other_plan_deferrals": 10000})
    findings = findings_of(make_plan(), election, rulebook, limits, engine)
    f = findings["402g-individual-limit"]
    assert (f.context["period"], f.excess, f.severity) == (9, 50_000, "warning")
    assert "April 15" in f.message
    assert "402g-deferral-limit" not in findings  # $18,000 here is within this employer's 402(g) limit


def test_match_stops_at_the_401a17_limit(rulebook, limits, engine):
    """$600,000 a year, 3% deferred, 50% of up to 6%: match on $345,000 only = $5,175."""
    plan = make_plan(match={"tiers": [{"rate": 50, "up_to_percent": 6}]})
    election = make_election("1980-01-01", "2024-01-01", {"annual": 600000}, {"pretax": {"percent": 3}})
    _, summary = run(plan, election, rulebook, limits, engine)
    assert summary["year_end"]["employer_match"] == "5175.00"
    assert summary["year_end"]["deferrals"] == "10350.00"


def test_deferral_rate_above_plan_max(rulebook, limits, engine):
    """80% of pay in a plan capped at 75% breaks the plan's terms from the first period."""
    plan = make_plan(contributions={"pretax": True, "max_deferral_percent": 75})
    findings = findings_of(plan, make_election("1980-01-01", "2024-01-01", MONTHLY_120K, {"pretax": {"percent": 80}}),
                           rulebook, limits, engine)
    f = findings["deferral-rate-above-plan-max"]
    assert (f.context["period"], f.amount, f.limit) == (1, 800_000, 750_000)


def test_roth_in_a_plan_without_roth(rulebook, limits, engine):
    """Roth deferrals where the plan has no Roth program."""
    plan = make_plan(contributions={"pretax": True, "roth": False})
    findings = findings_of(plan, make_election("1980-01-01", "2024-03-01", MONTHLY_120K, {"roth": {"percent": 5}}),
                           rulebook, limits, engine)
    assert findings["roth-not-permitted"].context["pay_date"] == "2024-03-31"


def test_402g_milestone(rulebook, limits, engine):
    """$2,000 a month reaches $23,000 in period 12; the summary says so."""
    _, summary = run(make_plan(), make_election("1985-01-01", "2024-01-01", MONTHLY_120K,
                                                {"pretax": {"amount": 2000}}), rulebook, limits, engine)
    assert summary["limit_402g_reached"] == {"period": 12, "pay_date": "2024-12-31"}


def test_a_year_without_limits_is_a_clear_error(rulebook, limits, engine):
    """An election in 2027 names the missing year and the covered ones."""
    with pytest.raises(LimitYearMissing, match="no IRS limits for 2027"):
        run(make_plan(), make_election("1985-01-01", "2027-01-01", MONTHLY_120K, {}), rulebook, limits, engine)


def test_election_for_another_plan_is_refused(rulebook, limits, engine):
    """An election naming plan X checked against plan Y is an input error."""
    election = make_election("1985-01-01", "2024-01-01", MONTHLY_120K, {}).model_copy(update={"plan_id": "other"})
    with pytest.raises(InputError, match="is for plan 'other'"):
        run(make_plan(), election, rulebook, limits, engine)


def test_after_tax_room_when_the_plan_matches_after_tax(rulebook, limits, engine):
    """100% match on up to 6% of $10,000 a month, after-tax matched: 12A + 12 x $600 <= $69,000 gives A = $5,150."""
    plan = make_plan(match={"tiers": [{"rate": 100, "up_to_percent": 6}], "sources": ["pretax", "roth", "after_tax"]})
    _, summary = run(plan, make_election("1980-01-01", "2024-01-01", {"per_period": 10000}, {}), rulebook, limits, engine)
    room = summary["after_tax_room"]
    assert (room["per_period"], room["year"], room["periods"]) == ("5150.00", "61800.00", 12)


@pytest.mark.parametrize(("step", "terms", "fires"), [
    (None, {"pretax": {"percent": "5.5"}}, True),        # whole percents by default
    (None, {"pretax": {"percent": 5}, "after_tax": {"percent": 3}}, False),
    (None, {"pretax": {"percent": 5}, "roth": {"percent": "0.01"}}, True),
    ("0.5", {"pretax": {"percent": "5.5"}}, False),
    ("0.5", {"after_tax": {"percent": "5.25"}}, True),
    ("0.01", {"pretax": {"percent": "5.55"}}, False),
    (None, {"pretax": {"amount": "500.37"}}, False),     # dollar amounts have no steps
])
def test_a_percentage_between_the_plan_s_payroll_steps_is_a_warning(step, terms, fires, rulebook, limits, engine):
    contributions = {"pretax": True, "roth": True, "after_tax": True,
                     **({"percent_increment": step} if step is not None else {})}
    plan = make_plan(contributions=contributions)
    findings = findings_of(plan, make_election("1980-01-01", "2024-01-01", MONTHLY_120K, terms), rulebook, limits,
                           engine)
    assert ("election-percent-off-step" in findings) is fires
    if fires:
        finding = findings["election-percent-off-step"]
        assert finding.severity == "warning" and finding.context["period"] == 1


def test_a_percentage_off_step_reports_the_years_contributions(rulebook, limits, engine):
    """5.5% of $10,000 a month is $550 in each of 12 periods: $6,600 for the year, not the last period's $550."""
    finding = findings_of(make_plan(), make_election("1980-01-01", "2024-01-01", MONTHLY_120K,
                                                     {"pretax": {"percent": "5.5"}}), rulebook, limits, engine)[
        "election-percent-off-step"]
    assert (finding.extra["year_end_amount"], finding.extra["periods_affected"]) == ("6600.00", 12)


PER_PERIOD_MATCH = {"tiers": [{"rate": 100, "up_to_percent": 6}]}  # $600 a month on $10,000


def test_a_front_loader_in_a_per_period_plan_is_told_the_match_lost(rulebook, limits, engine):
    """Age 40, 2024, $10,000 a month: $23,000 deferred January-May ($3,000 of match), nothing from June.
    The annual formula on $120,000 and $23,000 is $7,200; paycheck by paycheck $3,000: $4,200 lost."""
    election = make_election("1984-03-01", "2024-06-01", MONTHLY_120K, {"pretax": {"amount": 0}},
                             year_to_date={"pretax": 23000, "employer_match": 3000})
    findings, summary = run(make_plan(match=PER_PERIOD_MATCH), election, rulebook, limits, engine)
    f = findings["match-lost-by-front-loading"]
    assert (f.severity, f.context["period"], f.amount) == ("info", 12, 420_000)
    assert "$4,200.00" in f.message and "$7,200.00" in f.message
    assert summary["year_end"]["employer_match"] == "3000.00"


def test_deferrals_spread_over_the_year_lose_no_match(rulebook, limits, engine):
    """$1,916.67 a month from January: every paycheck above 6% of pay, the whole $7,200 matched."""
    election = make_election("1984-03-01", "2024-01-01", MONTHLY_120K, {"pretax": {"amount": "1916.67"}})
    findings, summary = run(make_plan(match=PER_PERIOD_MATCH), election, rulebook, limits, engine)
    assert "match-lost-by-front-loading" not in findings
    assert summary["year_end"]["employer_match"] == "7200.00"


def test_an_annual_plan_owes_a_true_up_rather_than_losing_the_match(rulebook, limits, engine):
    """The same front-loader in an annual-basis plan: the sponsor owes the $4,200 (match-true-up-owed)."""
    election = make_election("1984-03-01", "2024-06-01", MONTHLY_120K, {"pretax": {"amount": 0}},
                             year_to_date={"pretax": 23000, "employer_match": 3000})
    findings, _ = run(make_plan(match={**PER_PERIOD_MATCH, "basis": "annual"}), election, rulebook, limits, engine)
    assert "match-lost-by-front-loading" not in findings
    assert findings["match-true-up-owed"].amount == 420_000
    findings, _ = run(make_plan(match={**PER_PERIOD_MATCH, "basis": "annual", "true_up": True}), election,
                      rulebook, limits, engine)
    assert not {"match-lost-by-front-loading", "match-true-up-owed"} & set(findings)


def test_a_late_start_deferring_evenly_is_not_front_loading(rulebook, limits, engine):
    """Nothing deferred before July, then 6% every month: the match of each paycheck is all the formula gives."""
    election = make_election("1984-03-01", "2024-07-01", MONTHLY_120K, {"pretax": {"percent": 6}})
    findings, summary = run(make_plan(match=PER_PERIOD_MATCH), election, rulebook, limits, engine)
    assert "match-lost-by-front-loading" not in findings
    assert summary["year_end"]["employer_match"] == "3600.00"


@pytest.mark.parametrize(("december", "lost"), [("600", None), ("599.99", None), ("599.98", 2), ("500", 10_000)],
                         ids=["$600: none", "one cent: within the rounding tolerance", "two cents", "$100"])
def test_the_match_lost_in_the_last_paycheck_counts_to_the_cent(december, lost, rulebook, limits, engine):
    """$700 deferred in each of January-November ($7,700, $6,600 matched at 6% of $10,000), then December's amount:
    the annual formula matches $7,200; paycheck by paycheck $6,600 plus December's deferral up to $600."""
    election = make_election("1984-03-01", "2024-12-01", MONTHLY_120K, {"pretax": {"amount": december}},
                             year_to_date={"pretax": 7700, "employer_match": 6600})
    findings, _ = run(make_plan(match=PER_PERIOD_MATCH), election, rulebook, limits, engine)
    f = findings.get("match-lost-by-front-loading")
    assert (f.amount if f else None) == lost


def test_an_election_that_would_pass_402g_is_told_the_match_its_early_stop_costs(rulebook, limits, engine):
    """Age 40, 2024, 25% of $10,000 a month: $22,500 by September, $500 in October, then payroll stops at $23,000.
    Paycheck by paycheck: 9 x $600 + $500 = $5,900; the annual formula on $120,000 and $23,000: $7,200. $1,300 lost."""
    election = make_election("1984-03-01", "2024-01-01", MONTHLY_120K, {"pretax": {"percent": 25}})
    findings, _ = run(make_plan(match=PER_PERIOD_MATCH), election, rulebook, limits, engine)
    assert "402g-deferral-limit" in findings
    f = findings["match-lost-by-front-loading"]
    assert (f.amount, f.context["period"]) == (130_000, 12)
    assert "$5,900.00" in f.message and "$7,200.00" in f.message
