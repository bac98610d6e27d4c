"""Which limit counts which money: catch-up, Roth catch-up, employer aggregation, allocation year.

Each case is a figure worked out by hand from the statute and regulations (docs/design/domain.md),
checked through an election and, where the case is about a feed, through a batch.
"""

from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, make_election, make_plan, run, run_batch_files
from helpers.feeds import COLUMNS, money
from plancheck.checks.ruleset import load_rules
from plancheck.documents.plan import load_plan
from plancheck.errors import InputError
from plancheck.facts.schedule import pay_dates
from plancheck.sinks import events


@pytest.fixture(scope="module")
def acme():
    return load_plan(ROOT / "plans" / "acme-mega-backdoor.yaml")


@pytest.fixture(scope="module")
def monthly():
    return load_plan(ROOT / "plans" / "monthly-mega-backdoor.yaml")


def dollars(cents: int | None) -> str | None:
    return None if cents is None else money(cents)


# --- 1. Roth catch-up counts the year's Roth deferrals -------------------------------------------

def test_roth_deferrals_of_the_year_cover_the_roth_catch_up(acme, rulebook, limits, engine):
    """55 in 2026, wages $200,000: 26 x ($942.30 pretax + $307.70 Roth) never passes 402(g) pretax: compliant."""
    election = make_election("1971-06-01", "2026-01-01", {"annual": 200000},
                             {"pretax": {"amount": 942.30}, "roth": {"amount": 307.70}}, prior_year_fica_wages=200000)
    findings, summary = run(acme, election, rulebook, limits, engine)
    assert findings == {}
    assert (summary["year_end"]["deferrals"], summary["year_end"]["catch_up"]) == ("32500.00", "8000.00")


def test_catch_up_made_before_the_election_counts(acme, rulebook, limits, engine):
    """$30,000 pretax before December, then $2,500 pretax in December: $8,000 of pretax catch-up, not $2,500."""
    election = make_election("1971-06-01", "2026-12-01", {"annual": 200000}, {"pretax": {"amount": 1250}},
                             prior_year_fica_wages=200000, year_to_date={"pretax": 30000})
    f = run(acme, election, rulebook, limits, engine)[0]["roth-catch-up-required"]
    assert (f.context["pay_date"], dollars(f.amount), f.extra["year_end_amount"]) == ("2026-12-04", "6750.00", "8000.00")


# --- 2. Catch-up above the first applicable limit --------------------------------------------------

@pytest.mark.parametrize(("birth", "fires"), [("1969-06-01", False), ("1979-06-01", True)],
                         ids=["55: the $200 a month above the cap is catch-up", "45: above the plan's cap"])
def test_deferrals_above_the_plan_cap_are_catch_up_at_50(birth, fires, rulebook, limits, engine):
    """12% of $10,000 a month where the plan caps deferrals at 10%: $2,400 a year above the cap."""
    plan = make_plan(contributions={"pretax": True, "max_deferral_percent": 10})
    findings, summary = run(plan, make_election(birth, "2024-01-01", {"per_period": 10000}, {"pretax": {"percent": 12}}),
                            rulebook, limits, engine)
    assert ("deferral-rate-above-plan-max" in findings) is fires
    assert summary["year_end"]["catch_up"] == ("0.00" if fires else "2400.00")


def test_above_the_cap_by_more_than_the_catch_up_limit_fires(rulebook, limits, engine):
    """20% against a 10% cap is $1,000 a month above it: past the $7,500 catch-up in the 8th month."""
    plan = make_plan(contributions={"pretax": True, "max_deferral_percent": 10})
    f = run(plan, make_election("1969-06-01", "2024-01-01", {"per_period": 10000}, {"pretax": {"percent": 20}}),
            rulebook, limits, engine)[0]["deferral-rate-above-plan-max"]
    assert f.context["period"] == 8


@pytest.mark.parametrize(("birth", "excess"), [("1969-06-01", None), ("1989-06-01", "120.00")],
                         ids=["55: the $120 are catch-up", "35: 415(c) fails by $120"])
def test_a_low_earner_over_100_percent_of_pay_by_deferrals(birth, excess, rulebook, limits, engine):
    """$1,000 a month, $980 pretax and a 3% nonelective: $12,120 of additions on $12,000 of pay."""
    plan = make_plan(nonelective={"percent": 3})
    findings, summary = run(plan, make_election(birth, "2024-01-01", {"per_period": 1000}, {"pretax": {"amount": 980}}),
                            rulebook, limits, engine)
    f = findings.get("415c-annual-additions")
    assert (f.extra["year_end_excess"] if f else None) == excess
    assert summary["year_end"]["catch_up"] == ("120.00" if excess is None else "0.00")


# --- 3. Other employers' deferrals: the individual's limit, never this plan's catch-up ------------

def test_deferrals_elsewhere_never_make_this_plans_deferrals_catch_up(monthly, rulebook, limits, engine):
    """55 in 2026, $24,500 elsewhere, then $666.66 pretax + $5,833.33 after-tax a month: 415(c) over by $7,999.92."""
    election = make_election("1971-06-01", "2026-01-01", {"per_period": 16667},
                             {"pretax": {"amount": 666.66}, "after_tax": {"amount": 5833.33}},
                             prior_year_fica_wages=200000, year_to_date={"other_plan_deferrals": 24500})
    findings, summary = run(monthly, election, rulebook, limits, engine)
    f = findings["415c-annual-additions"]
    assert (f.context["pay_date"], dollars(f.excess)) == ("2026-11-30", "1333.26")
    assert (f.extra["year_end_amount"], f.extra["year_end_excess"]) == ("79999.92", "7999.92")
    assert summary["year_end"]["catch_up"] == "0.00"
    assert summary["after_tax_room"]["year"] == "62000.04"
    assert "402g-individual-limit" not in findings  # $32,499.92 is within 402(g) + the $8,000 catch-up


def test_deferrals_elsewhere_within_the_individual_limit_give_no_finding(rulebook, limits, engine):
    """55, $30,000 elsewhere and $1,040 Roth here in a plan without catch-up: no finding at all."""
    plan = make_plan(catch_up={"offered": False}, payroll={"frequency": "biweekly", "anchor_pay_date": "2026-01-02"})
    election = make_election("1971-06-01", "2026-01-01", {"annual": 100000}, {"roth": {"amount": 40}},
                             prior_year_fica_wages=90000, year_to_date={"other_plan_deferrals": 30000})
    findings, summary = run(plan, election, rulebook, limits, engine)
    assert findings == {}
    assert summary["year_end"]["deferrals_all_plans"] == "31040.00"


@pytest.mark.parametrize(("birth", "year", "limit"), [("1976-01-01", 2026, "32500.00"), ("1977-01-01", 2026, "24500.00"),
                                                       ("1964-01-01", 2026, "35750.00"), ("1962-01-01", 2026, "32500.00")],
                         ids=["50", "49", "62: 60-63 figure whatever the plan offers", "64"])
def test_individual_limit_has_the_age_based_catch_up(birth, year, limit, rulebook, limits, engine):
    """402(g)(1)(C): the individual's catch-up depends on age alone, even in a plan without catch-up."""
    plan = make_plan(catch_up={"offered": False})
    election = make_election(birth, f"{year}-01-01", {"annual": 100000}, {"pretax": {"amount": 100}},
                             prior_year_fica_wages=90000, year_to_date={"other_plan_deferrals": 40000})
    f = run(plan, election, rulebook, limits, engine)[0]["402g-individual-limit"]
    assert dollars(f.limit) == limit


# --- 4. One employer, several plans ------------------------------------------------------------------

def test_an_election_counts_the_employers_other_plans(rulebook, limits, engine):
    """45 in 2026: $20,000 deferred in a sister plan plus $500 a month here passes 402(g) in the 10th month."""
    election = make_election("1981-01-01", "2026-01-01", {"annual": 120000}, {"pretax": {"amount": 500}},
                             prior_year_fica_wages=100000, year_to_date={"same_employer_plans": {"pretax": 20000}})
    findings, summary = run(make_plan(), election, rulebook, limits, engine)
    f = findings["402g-deferral-limit"]
    assert (f.context["period"], dollars(f.amount), dollars(f.excess)) == (10, "25000.00", "500.00")
    assert summary["year_end"]["deferrals"] == "6000.00"


def test_an_election_counts_additions_in_the_employers_other_plans(rulebook, limits, engine):
    """$60,000 of after-tax money in a sister plan leaves $12,000 of 2026 room here: $1,000 a month."""
    election = make_election("1981-01-01", "2026-01-01", {"annual": 240000}, {},
                             prior_year_fica_wages=100000, year_to_date={"same_employer_plans": {"after_tax": 60000}})
    summary = run(make_plan(), election, rulebook, limits, engine)[1]
    assert (summary["after_tax_room"]["year"], summary["after_tax_room"]["per_period"]) == ("12000.00", "1000.00")


def batch(feed: Path, plans_dir: Path, tmp_path: Path) -> list[dict]:
    out = io.BytesIO()
    events.configure(out)
    run_batch_files(feed, plans_dir, tmp_path / "rejects.csv")
    return [json.loads(line) for line in out.getvalue().splitlines()]


def write_feed(path: Path, rows: list[dict]) -> Path:
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=[*COLUMNS, "limitation_year"])
        writer.writeheader()
        writer.writerows({"limitation_year": "", "other_plan_deferrals": "", "employer_match": "0.00", "pretax": "0.00",
                          "employer_nonelective": "0.00", "roth": "0.00", "after_tax": "0.00",
                          "prior_year_fica_wages": "100000.00", **r} for r in rows)
    return path


def monthly_rows(plan_id: str, employee: str, year: int, **amounts: str) -> list[dict]:
    return [{"plan_id": plan_id, "employee_id": employee, "birth_date": "1981-04-01",
             "pay_date": f"{year}-{m:02d}-28", **amounts} for m in range(1, 13)]


@pytest.fixture
def sister_plans(tmp_path: Path) -> Path:
    """Two plans of one employer (controlled group) and one of another."""
    folder = tmp_path / "plans"
    folder.mkdir()
    for plan_id, employer in (("north", "group"), ("south", "group"), ("elsewhere", None)):
        doc = {"plan_id": plan_id, "name": f"{plan_id} plan", "payroll": {"frequency": "monthly"},
               "contributions": {"pretax": True, "roth": True, "after_tax": True}, "catch_up": {"offered": True}}
        if employer:
            doc["employer"] = employer
        (folder / f"{plan_id}.yaml").write_text(yaml.safe_dump(doc))
    return folder


def test_a_batch_adds_the_plans_of_one_employer(sister_plans, tmp_path):
    """$1,250 a month in each of two sister plans: 402(g) breaks once, in June, in the plan whose deposit crossed it."""
    rows = (monthly_rows("north", "E1", 2026, compensation="10000.00", pretax="1250.00")
            + monthly_rows("south", "E1", 2026, compensation="10000.00", pretax="1250.00")
            + monthly_rows("elsewhere", "E1", 2026, compensation="10000.00", pretax="1250.00"))
    found = [e for e in batch(write_feed(tmp_path / "feed.csv", rows), sister_plans, tmp_path) if e.get("rule")]
    assert [(f["rule"], f["plan_id"], f["pay_date"], f["amount"], f["excess"]) for f in found] == [
        ("402g-deferral-limit", "south", "2026-10-28", "25000.00", "500.00")]


def test_a_batch_adds_additions_of_one_employer_for_415c(sister_plans, tmp_path):
    """$3,500 after-tax a month in each sister plan: north's November deposit takes the total to $73,500."""
    rows = (monthly_rows("north", "E2", 2026, compensation="20000.00", after_tax="3500.00")
            + monthly_rows("south", "E2", 2026, compensation="20000.00", after_tax="3500.00"))
    found = [e for e in batch(write_feed(tmp_path / "feed.csv", rows), sister_plans, tmp_path) if e.get("rule")]
    f = next(f for f in found if f["rule"] == "415c-annual-additions")
    assert (f["plan_id"], f["pay_date"], f["amount"], f["excess"]) == ("north", "2026-11-28", "73500.00", "1500.00")
    assert len([f for f in found if f["rule"] == "415c-annual-additions"]) == 1


# --- 5. Allocation year -----------------------------------------------------------------------------

def test_a_deposit_after_year_end_counts_in_its_limitation_year(sister_plans, tmp_path):
    """2025: $5,500 after-tax a month ($66,000) + a $5,000 profit-sharing deposit in March 2026 for 2025: $1,000 over."""
    rows = (monthly_rows("north", "E3", 2025, compensation="20000.00", after_tax="5500.00")
            + [{"plan_id": "north", "employee_id": "E3", "birth_date": "1981-04-01", "pay_date": "2026-03-13",
                "compensation": "0.00", "pretax": "0.00", "employer_nonelective": "5000.00", "limitation_year": "2025"}]
            + monthly_rows("north", "E3", 2026, compensation="20000.00", after_tax="5500.00"))
    found = [e for e in batch(write_feed(tmp_path / "feed.csv", rows), sister_plans, tmp_path) if e.get("rule")]
    assert [(f["rule"], f["year"], f["pay_date"], f["excess"]) for f in found] == [
        ("415c-annual-additions", 2025, "2026-03-13", "1000.00")]


def test_a_limitation_year_other_than_this_or_last_is_rejected(sister_plans, tmp_path):
    """Employer money can be allocated to the year before its deposit, not two years back or forward."""
    rows = monthly_rows("north", "E4", 2026, compensation="5000.00", pretax="100.00")
    rows[0]["limitation_year"] = "2024"
    rows[1]["limitation_year"] = "2027"
    rows[2]["limitation_year"] = "twenty"
    summary = batch(write_feed(tmp_path / "feed.csv", rows), sister_plans, tmp_path)[-1]
    assert (summary["rows_read"], summary["rows_rejected"]) == (12, 3)
    reasons = [r["reason"] for r in csv.DictReader((tmp_path / "rejects.csv").open())]
    assert all(r.startswith("limitation_year:") for r in reasons), reasons


# --- 6. Annual true-up ------------------------------------------------------------------------------

def test_true_up_owed_at_the_last_pay_date(tmp_path):
    """Front-loaded $2,000 for 12 semimonthly pay dates on $5,000: 4% annual match is $4,800, $2,400 deposited."""
    plan = load_plan(ROOT / "plans" / "delta-annual-true-up.yaml")
    dates = pay_dates(plan.payroll, 2026)
    rows = [{"plan_id": plan.plan_id, "employee_id": "E5", "birth_date": "1980-01-25", "pay_date": d.isoformat(),
             "compensation": "5000.00", "pretax": "2000.00" if i < 12 else "0.00",
             "employer_match": "200.00" if i < 12 else "0.00", "employer_nonelective": "150.00"}
            for i, d in enumerate(dates)]
    found = [e for e in batch(write_feed(tmp_path / "feed.csv", rows), ROOT / "plans", tmp_path) if e.get("rule")]
    assert [(f["rule"], f["pay_date"], f["amount"], f["severity"]) for f in found] == [
        ("match-true-up-owed", "2026-12-31", "2400.00", "info")]


def test_a_true_up_plan_election_deposits_the_true_up(rulebook, limits, engine):
    """The projection of a true-up plan deposits the annual formula at the last pay date: nothing owed."""
    plan = load_plan(ROOT / "plans" / "delta-annual-true-up.yaml")
    findings, _ = run(plan, make_election("1980-01-25", "2026-01-01", {"annual": 120000}, {"pretax": {"percent": 2}},
                                          prior_year_fica_wages=100000), rulebook, limits, engine)
    assert "match-true-up-owed" not in findings


def test_an_annual_plan_without_true_up_is_told_what_it_owes(rulebook, limits, engine):
    """Annual basis, no true-up deposit: nothing deferred until July, then 8% of $10,000 a month."""
    plan = make_plan(match={"tiers": [{"rate": 100, "up_to_percent": 4}], "basis": "annual"})
    election = make_election("1980-01-25", "2026-07-01", {"annual": 120000}, {"pretax": {"percent": 8}},
                             prior_year_fica_wages=100000)
    f = run(plan, election, rulebook, limits, engine)[0]["match-true-up-owed"]
    # Six months at 8% of $10,000 are $4,800 of deferrals; the annual formula on $120,000 of pay is 4% = $4,800,
    # and the per-period formula deposited 6 x $400 = $2,400.
    assert (f.context["period"], dollars(f.amount)) == (12, "2400.00")


# --- 8. Unknown prior-year wages are not zero ------------------------------------------------------

@pytest.mark.parametrize(("wages", "rule"), [(None, "roth-catch-up-wages-unknown"), (0, None),
                                              (200000, "roth-catch-up-required"), (150000, None)],
                         ids=["unknown", "zero: a new hire", "above the threshold", "at the threshold"])
def test_unknown_wages_are_not_zero(acme, wages, rule, rulebook, limits, engine):
    """56 in 2026 making $8,000 of pretax catch-up: the rule depends on the prior-year FICA wages."""
    extra = {} if wages is None else {"prior_year_fica_wages": wages}
    findings = run(acme, make_election("1970-06-01", "2026-01-01", {"annual": 200000}, {"pretax": {"amount": 1250}},
                                       **extra), rulebook, limits, engine)[0]
    catch_up_rules = {r for r in findings if r.startswith("roth-catch-up")}
    assert catch_up_rules == ({rule} if rule else set())
    if rule:
        assert findings[rule].extra["year_end_amount"] == "8000.00"


def test_unknown_wages_before_2026_do_not_matter(acme, rulebook, limits, engine):
    """In 2025 the Roth catch-up rule is not in force: unknown wages give no warning."""
    findings = run(acme, make_election("1970-06-01", "2025-01-01", {"annual": 200000}, {"pretax": {"amount": 1250}}),
                   rulebook, limits, engine)[0]
    assert not {r for r in findings if r.startswith("roth-catch-up")}


def test_empty_wages_in_a_feed_are_unknown(sister_plans, tmp_path):
    """The same 56-year-old in a feed: an empty wages cell warns, 0 does not."""
    rows = []
    for employee, wages in (("E6", ""), ("E7", "0.00")):
        rows += [{**r, "birth_date": "1970-06-01", "prior_year_fica_wages": wages}
                 for r in monthly_rows("north", employee, 2026, compensation="20000.00", pretax="2708.33")]
    found = [e for e in batch(write_feed(tmp_path / "feed.csv", rows), sister_plans, tmp_path) if e.get("rule")]
    assert [(f["employee_id"], f["rule"], f["pay_date"]) for f in found] == [
        ("E6", "roth-catch-up-wages-unknown", "2026-10-28")]


# --- The facts the rules read are the facts the code builds ------------------------------------------

def test_a_declared_fact_that_is_never_built_is_a_load_error(tmp_path):
    """A catalogue that promises a fact the code does not build fails at load, naming it."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    catalogue = rules / "facts" / "period.yaml"
    catalogue.write_text(catalogue.read_text() + '  ytd_imaginary: {type: money, description: "Never built by plancheck."}\n')
    load_rules.cache_clear()
    with pytest.raises(InputError, match="declared but not built by plancheck: ytd_imaginary"):
        load_rules(rules)


# --- year_end_excess: the year's total, not the last period's -------------------------------------

@pytest.mark.parametrize(("start", "amount", "excess"), [("2024-01-01", "14400.00", "2400.00"),
                                                          ("2024-12-01", "1200.00", "200.00")],
                         ids=["twelve periods $200 over: $2,400", "one period $200 over: $200"])
def test_year_end_excess_above_the_plan_cap_is_the_years_total(start, amount, excess, rulebook, limits, engine):
    """Age 35, 12% of $10,000 a month where the plan caps deferrals at 10%: $200 over in every period."""
    plan = make_plan(contributions={"pretax": True, "max_deferral_percent": 10})
    f = run(plan, make_election("1989-06-01", start, {"per_period": 10000}, {"pretax": {"percent": 12}}),
            rulebook, limits, engine)[0]["deferral-rate-above-plan-max"]
    assert dollars(f.excess) == "200.00"
    assert (f.extra["year_end_amount"], f.extra["year_end_excess"]) == (amount, excess)


def test_year_end_excess_above_the_cap_leaves_out_what_catch_up_covers(rulebook, limits, engine):
    """Age 55 in 2024, 20% against a 10% cap: $12,000 above it in the year, $7,500 of it catch-up: $4,500 over."""
    plan = make_plan(contributions={"pretax": True, "max_deferral_percent": 10})
    f = run(plan, make_election("1969-06-01", "2024-01-01", {"per_period": 10000}, {"pretax": {"percent": 20}}),
            rulebook, limits, engine)[0]["deferral-rate-above-plan-max"]
    assert (f.extra["periods_affected"], f.extra["year_end_excess"]) == (5, "4500.00")


def test_year_end_excess_of_after_tax_above_the_plan_max_is_the_years_total(rulebook, limits, engine):
    """12% after-tax against a 10% cap on $10,000 a month: $200 a period, one cent less is 0.01 a period less."""
    plan = make_plan(contributions={"pretax": True, "after_tax": True, "max_after_tax_percent": 10})
    f = run(plan, make_election("1989-06-01", "2024-01-01", {"per_period": 10000}, {"after_tax": {"amount": 1200}}),
            rulebook, limits, engine)[0]["after-tax-rate-above-plan-max"]
    assert f.extra["year_end_excess"] == "2400.00"
    f = run(plan, make_election("1989-06-01", "2024-01-01", {"per_period": 10000}, {"after_tax": {"amount": 1000.01}}),
            rulebook, limits, engine)[0]["after-tax-rate-above-plan-max"]
    assert f.extra["year_end_excess"] == "0.12"
