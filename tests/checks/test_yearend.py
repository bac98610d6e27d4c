"""Year-end tests with answers worked out by hand from the regulations and their examples."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from conftest import ROOT
from helpers import plancheck
from helpers.yearend import PLAN, by_employee, person, plan, rules_fired, write_census
from plancheck.checks.yearend import check_plans, check_yearend
from plancheck.documents.census import CENSUS_COLUMNS, read_census
from plancheck.documents.plan import Plan
from plancheck.errors import InputError
from plancheck.facts.yearend import BUILT_FACTS, build_yearend_facts, months_after_year_end


def run(tmp_path: Path, rows: list[dict], the_plan: Plan, rulebook, limits, engine, year: int = 2026):
    census = read_census(write_census(tmp_path / "census.csv", rows), [the_plan.plan_id], year)
    assert not census.rejects, census.rejects
    outcome = check_yearend(census, [the_plan], limits, rulebook, engine, year)
    return outcome


# -- HCE determination ----------------------------------------------------------------------------

def test_ownership_is_attributed_from_the_family_member_named_in_related_to(tmp_path, rulebook, limits, engine):
    """A child of a 6% owner is a 5% owner by 318 attribution; 3% + a spouse's 3% is 6%; exactly 5% is not more than 5%."""
    rows = [person("OWNER", "90000", ownership_percent="6", prior_year_ownership_percent="6"),
            person("CHILD", "40000", related_to="OWNER"),
            person("SPOUSE-A", "40000", ownership_percent="3", prior_year_ownership_percent="3"),
            person("SPOUSE-B", "40000", ownership_percent="3", prior_year_ownership_percent="3", related_to="SPOUSE-A"),
            person("FIVE", "40000", ownership_percent="5", prior_year_ownership_percent="5"),
            person("LAST-YEAR", "40000", ownership_percent="0", prior_year_ownership_percent="5.0001")]
    outcome = run(tmp_path, rows, plan(), rulebook, limits, engine)
    hces = {h["employee_id"]: h for h in outcome.hces}
    assert set(hces) == {"OWNER", "CHILD", "SPOUSE-B", "LAST-YEAR"}
    child = hces["CHILD"]["reasons"][0]
    assert (child["reason"], child["ownership_percent"], child["direct_percent"], child["attributed_from"]) == \
        ("five_percent_owner", "6", "0", "OWNER")
    assert [r["year"] for r in hces["LAST-YEAR"]["reasons"]] == [2025]


def test_pay_above_the_look_back_figure_makes_an_hce(tmp_path, rulebook, limits, engine):
    """2026 tests read 2025 pay against the 2025 figure ($160,000); one cent above is an HCE, at it is not."""
    rows = [person("AT", "150000", prior_year_compensation="160000.00"),
            person("ABOVE", "150000", prior_year_compensation="160000.01"),
            person("NEW", "150000", prior_year_compensation="")]
    outcome = run(tmp_path, rows, plan(), rulebook, limits, engine)
    assert [h["employee_id"] for h in outcome.hces] == ["ABOVE"]
    assert outcome.hces[0]["reasons"][0]["threshold"] == "160000.00"


def test_the_2023_plan_year_looks_back_to_the_2022_figure(tmp_path, rulebook, limits, engine):
    """The 2022 look-back figure is $135,000 (Notice 2021-61)."""
    rows = [person("AT", "150000", prior_year_compensation="135000.00"),
            person("ABOVE", "150000", prior_year_compensation="135000.01")]
    outcome = run(tmp_path, rows, plan(), rulebook, limits, engine, year=2023)
    assert [h["employee_id"] for h in outcome.hces] == ["ABOVE"]


def test_top_paid_group_election_keeps_only_the_top_20_percent(tmp_path, rulebook, limits, engine):
    """Ten employees of the look-back year: 20% is 2, so of three paid above $160,000 only the top two are HCEs."""
    pays = ["300000", "250000", "200000", "90000", "80000", "70000", "60000", "50000", "40000", "30000"]
    rows = [person(f"E{i}", pay) for i, pay in enumerate(pays)]
    rows.append(person("HIRED-2026", "50000", hire_date="2026-02-01", prior_year_compensation=""))
    elected = plan(nondiscrimination_testing={"top_paid_group_election": True})
    assert [h["employee_id"] for h in run(tmp_path, rows, elected, rulebook, limits, engine).hces] == ["E0", "E1"]
    assert [h["employee_id"] for h in run(tmp_path, rows, plan(), rulebook, limits, engine).hces] == ["E0", "E1", "E2"]


# -- eligibility ------------------------------------------------------------------------------------

def test_eligibility_age_service_and_entry_dates(tmp_path, rulebook, limits):
    """21 and 3 months, monthly entry: hired 2026-03-15 enters 2026-07-01, hired 2026-10-02 on 2027-02-01;
    turning 21 on 2027-01-02 enters 2027-02-01, on 2026-12-01 that same day."""
    terms = plan(eligibility={"minimum_age": 21, "months_of_service": 3, "entry": "monthly"})
    rows = [person("MARCH", "50000", hire_date="2026-03-15"), person("OCTOBER", "50000", hire_date="2026-10-02"),
            person("TEEN", "50000", birth_date="2006-01-02"), person("TWENTY-ONE", "50000", birth_date="2005-12-01")]
    census = read_census(write_census(tmp_path / "c.csv", rows), [PLAN], 2026)
    facts = build_yearend_facts(census, [terms], limits, 2026)
    entry = [str(np.datetime64(int(d), "D")) for d in facts.employees.entry]
    assert entry == ["2026-07-01", "2027-02-01", "2027-02-01", "2026-12-01"]
    assert facts.employees.eligible.tolist() == [True, False, False, True]


def test_semiannual_entry_on_the_day_and_the_day_after(tmp_path, limits):
    """Requirements met on July 1 enter that day; met July 2, the next January 1."""
    terms = plan(eligibility={"months_of_service": 12, "entry": "semiannual"})
    rows = [person("JULY-1", "50000", hire_date="2025-07-01"), person("JULY-2", "50000", hire_date="2025-07-02")]
    facts = build_yearend_facts(read_census(write_census(tmp_path / "c.csv", rows), [PLAN], 2026), [terms], limits, 2026)
    assert facts.employees.eligible.tolist() == [True, False]


def test_eligibility_beyond_the_410a_maxima_is_refused(limits):
    """Age 22 or 13 months of service is more than 410(a) allows; the error names the plan and key."""
    with pytest.raises(InputError) as info:
        check_plans([plan(eligibility={"minimum_age": 22, "months_of_service": 13})], limits, ["plans/x.yaml"])
    text = str(info.value)
    assert "eligibility.minimum_age" in text and "eligibility.months_of_service" in text and "at most 21" in text


# -- ADP and ACP tests ------------------------------------------------------------------------------

def _adp_case(hce_deferral: str) -> list[dict]:
    """NHCEs average 4.00% (limit 6.00%: the lesser of 8.00% and +2 = 6.00% beats 1.25 x 4 = 5.00%)."""
    return [person("N1", "50000", pretax="2000"), person("N2", "50000", pretax="3000"),
            person("N3", "50000", pretax="1000"), person("N4", "50000", pretax="0"),  # eligible, 0% counts
            person("N5", "50000", pretax="4000"),
            person("H1", "200000", pretax=hce_deferral), person("H2", "200000", pretax=hce_deferral)]


def test_adp_exactly_at_the_limit_passes(tmp_path, rulebook, limits, engine):
    """NHCEs (4+6+2+0+8)/5 = 4.00%; HCEs at 6.00% pass."""
    outcome = run(tmp_path, _adp_case("12000"), plan(), rulebook, limits, engine)
    adp = outcome.summaries[0]["adp"]
    assert (adp["nhce"], adp["hce"], adp["limit"], adp["limit_basic"], adp["limit_alternative"], adp["passed"]) == \
        ("4.00", "6.00", "6.00", "5.00", "6.00", True)
    assert "adp-test-failed" not in rules_fired(outcome)


def test_adp_one_hundredth_over_the_limit_fails(tmp_path, rulebook, limits, engine):
    """HCEs at 6.01% fail by one hundredth of a percent; each refunds $20.00 (6.01% - 6.00% of $200,000)."""
    outcome = run(tmp_path, _adp_case("12020"), plan(), rulebook, limits, engine)
    assert outcome.summaries[0]["adp"]["hce"] == "6.01" and not outcome.summaries[0]["adp"]["passed"]
    assert "adp-test-failed" in rules_fired(outcome)
    finding = next(f for f in outcome.findings if f.rule == "adp-test-failed")
    assert finding.extra["test"]["hce_average"] == "6.01" and finding.amount == 4000
    assert by_employee(outcome, "adp_excess_distribution") == {"H1": "20.00", "H2": "20.00"}


def test_prior_year_method_uses_the_plan_documents_nhce_figure(tmp_path, rulebook, limits, engine):
    """Prior-year NHCE ADP 3.50%: limit 5.50% (3.50 + 2 < 7.00; 1.25 x 3.50 = 4.375); this year's NHCEs do not count."""
    terms = plan(nondiscrimination_testing={"method": "prior_year", "prior_year_nhce_adp": 3.5,
                                            "prior_year_nhce_acp": 1})
    outcome = run(tmp_path, _adp_case("11000"), terms, rulebook, limits, engine)
    adp = outcome.summaries[0]["adp"]
    assert (adp["method"], adp["nhce"], adp["limit"], adp["hce"], adp["passed"]) == \
        ("prior_year", "3.50", "5.50", "5.50", True)


def test_first_plan_year_under_the_prior_year_method_deems_3_percent(tmp_path, rulebook, limits, engine):
    """First plan year: NHCEs deemed 3.00% (401(k)(3)(E)); limit 5.00%; HCEs at 5.50% fail."""
    terms = plan(nondiscrimination_testing={"method": "prior_year", "first_plan_year": True})
    outcome = run(tmp_path, _adp_case("11000"), terms, rulebook, limits, engine)
    adp = outcome.summaries[0]["adp"]
    assert (adp["nhce"], adp["limit"], adp["passed"]) == ("3.00", "5.00", False)


def _benefitslink_case(**b_overrides) -> list[dict]:
    """Four HCEs (ADRs 3%, 5%, 3%, 7%) and two NHCEs at 1.85%, so the ADP limit is 3.70%."""
    rows = [person("A", "150000", prior_year_compensation="170000", pretax="4500"),
            person("B", "140000", prior_year_compensation="170000", pretax="7000"),
            person("C", "100000", prior_year_compensation="170000", pretax="3000"),
            person("D", "90000", prior_year_compensation="170000", pretax="6300"),
            person("N1", "100000", pretax="1850"), person("N2", "100000", pretax="1850")]
    rows[1].update(b_overrides)
    return rows


def test_leveling_lowers_the_highest_ratios_then_the_highest_dollars(tmp_path, rulebook, limits, engine):
    """Ratios leveled to 4.40%: excess 840 (B) + 2,340 (D) = 3,180; then B down to D's 6,300 and both
    by 1,240 to a tie at 5,060: B refunds 1,940.00, D 1,240.00 (1.401(k)-2(b)(2))."""
    outcome = run(tmp_path, _benefitslink_case(), plan(), rulebook, limits, engine)
    adp = outcome.summaries[0]["adp"]
    assert (adp["nhce"], adp["limit"], adp["hce"], adp["excess"]) == ("1.85", "3.70", "4.50", "3180.00")
    assert by_employee(outcome, "adp_excess_distribution") == {"B": "1940.00", "D": "1240.00"}
    deadlines = {(c.deadline, c.final_deadline) for c in outcome.corrections}
    assert deadlines == {(dt.date(2027, 3, 15), dt.date(2027, 12, 31))}


def test_two_hces_tied_in_dollars_share_the_excess_to_the_cent(tmp_path, rulebook, limits, engine):
    """Two HCEs deferring $10,000.00 on different pay share an odd total: 0.01 apart at most, sum exact."""
    rows = [person("H1", "100000", prior_year_compensation="200000", pretax="10000"),
            person("H2", "125000", prior_year_compensation="200000", pretax="10000"),
            person("N1", "100000", pretax="3000"), person("N2", "100000", pretax="3000")]
    outcome = run(tmp_path, rows, plan(), rulebook, limits, engine)
    # NHCE 3.00% -> limit 5.00%; HCE ratios 10.00% and 8.00% leveled to 5.00% + 5.00%:
    # H1 10,000 - 5,000 = 5,000; H2 10,000 - 6,250 = 3,750; total 8,750 split over the $10,000 tie.
    assert outcome.summaries[0]["adp"]["excess"] == "8750.00"
    assert by_employee(outcome, "adp_excess_distribution") == {"H1": "4375.00", "H2": "4375.00"}


def test_unused_catch_up_is_recharacterized_before_anything_is_refunded(tmp_path, rulebook, limits, engine):
    """B is 56 with $8,000 of catch-up unused: all of B's 1,940 becomes catch-up; D still refunds 1,240."""
    outcome = run(tmp_path, _benefitslink_case(birth_date="1970-05-05"), plan(), rulebook, limits, engine)
    assert by_employee(outcome, "adp_recharacterized_as_catch_up") == {"B": "1940.00"}
    assert by_employee(outcome, "adp_excess_distribution") == {"D": "1240.00"}
    assert outcome.summaries[0]["adp"]["recharacterized"] == "1940.00"


def test_catch_up_above_402g_is_left_out_of_the_adp_and_only_the_rest_recharacterized(tmp_path, rulebook, limits, engine):
    """A 55-year-old deferring $29,500 in 2026 has $5,000 catch-up (above $24,500): ADR 24,500/200,000 = 12.25%.
    Leveled to the 5.00% limit with one HCE: excess 14,500; 3,000 of catch-up left, 11,500 refunded."""
    rows = [person("OLD", "200000", birth_date="1971-03-03", prior_year_compensation="200000", pretax="29500"),
            person("N1", "100000", pretax="3000"), person("N2", "100000", pretax="3000")]
    outcome = run(tmp_path, rows, plan(), rulebook, limits, engine)
    assert next(h for h in outcome.hces)["adr"] == "12.25"
    assert by_employee(outcome, "adp_recharacterized_as_catch_up") == {"OLD": "3000.00"}
    assert by_employee(outcome, "adp_excess_distribution") == {"OLD": "11500.00"}


def test_match_on_distributed_deferrals_is_forfeited(tmp_path, rulebook, limits, engine):
    """With a 100%-of-6% match, B (matched 7,000) keeps deferrals of 5,060: 1,940 forfeited;
    D (matched 5,400 = 6% of 90,000) keeps 5,060: 340 forfeited (401(k)(8)(E))."""
    rows = _benefitslink_case()
    for row in rows:
        pay, deferred = float(row["compensation"]), float(row["pretax"])
        row["employer_match"] = f"{min(deferred, pay * 0.06):.2f}"
    matched = plan(match={"tiers": [{"rate": 100, "up_to_percent": 6}]})
    outcome = run(tmp_path, rows, matched, rulebook, limits, engine)
    assert by_employee(outcome, "match_forfeiture") == {"B": "1940.00", "D": "340.00"}
    forfeiture = next(c for c in outcome.corrections if c.kind == "match_forfeiture")
    assert forfeiture.citation.startswith("IRC 401(k)(8)(E)")


def test_safe_harbor_plans_skip_adp_but_after_tax_money_is_still_acp_tested(tmp_path, rulebook, limits, engine):
    """Basic safe-harbor match (401(m)(11)): ADP not run, match left out of ACP; HCE after-tax fails ACP."""
    safe = plan(safe_harbor="basic_match", match={"tiers": [{"rate": 100, "up_to_percent": 3},
                                                            {"rate": 50, "up_to_percent": 5}]})
    rows = [person("H1", "200000", pretax="20000", employer_match="8000", after_tax="10000"),
            person("N1", "50000", pretax="2500", employer_match="2000", after_tax="500"),
            person("N2", "50000", pretax="2500", employer_match="2000")]
    outcome = run(tmp_path, rows, safe, rulebook, limits, engine)
    summary = outcome.summaries[0]
    assert not summary["adp"]["tested"] and summary["adp"]["not_tested_because"].startswith("safe harbor")
    # ACP: after-tax only. NHCEs (1.00% + 0%) / 2 = 0.50% -> limit 1.00%; H1 10,000/200,000 = 5.00%.
    acp = summary["acp"]
    assert (acp["match_exempt"], acp["nhce"], acp["hce"], acp["limit"], acp["passed"]) == (True, "0.50", "5.00", "1.00", False)
    assert by_employee(outcome, "acp_excess_distribution") == {"H1": "8000.00"}
    assert summary["top_heavy"]["exempt"] is False  # after-tax money takes a safe-harbor plan out of 416(g)(4)(H)


def test_acp_excess_comes_from_after_tax_money_first(tmp_path, rulebook, limits, engine):
    """A non-safe-harbor match counts in ACP; the refund is after-tax money first, then match."""
    matched = plan(match={"tiers": [{"rate": 50, "up_to_percent": 6}]})
    rows = [person("H1", "200000", pretax="12000", employer_match="6000", after_tax="2000"),
            person("N1", "50000", pretax="3000", employer_match="1500"),
            person("N2", "50000", pretax="3000", employer_match="1500")]
    outcome = run(tmp_path, rows, matched, rulebook, limits, engine)
    # NHCE ACP 3.00% -> limit 5.00%; H1 (6,000 + 2,000) / 200,000 = 4.00%: passes.
    assert outcome.summaries[0]["acp"]["passed"] and "acp-test-failed" not in rules_fired(outcome)
    rows[0]["after_tax"] = "6000"  # 6.00% -> 1.00 point over: excess 2,000.00, all after-tax
    outcome = run(tmp_path, rows, matched, rulebook, limits, engine)
    correction = next(c for c in outcome.corrections if c.kind == "acp_excess_distribution")
    assert (correction.amount, correction.details["from_after_tax"], correction.details["from_match"]) == \
        (200000, "2000.00", "0.00")


# -- deadlines -------------------------------------------------------------------------------------

def test_deadlines_of_a_2026_plan_year():
    """2 1/2 months -> March 15, 2027; 6 months (EACA) -> June 30, 2027; 12 months -> December 31, 2027; 402(g) April 15."""
    from decimal import Decimal
    assert months_after_year_end(2026, Decimal("2.5")) == dt.date(2027, 3, 15)
    assert months_after_year_end(2026, Decimal("6")) == dt.date(2027, 6, 30)
    assert months_after_year_end(2026, Decimal("12")) == dt.date(2027, 12, 31)
    assert months_after_year_end(2026, Decimal("3.5")) == dt.date(2027, 4, 15)


def test_an_eaca_has_six_months_and_excess_deferrals_april_15(tmp_path, rulebook, limits, engine):
    """EACA refunds are excise-free until June 30; a 402(g) excess of $500 is due by April 15, 2027."""
    rows = _benefitslink_case()
    rows[0]["pretax"] = "25000"  # A, born 1990: 500 above the 2026 402(g) limit of 24,500
    outcome = run(tmp_path, rows, plan(nondiscrimination_testing={"eaca": True}), rulebook, limits, engine)
    excess = [c for c in outcome.corrections if c.kind == "excess_deferral"]
    assert [(c.employee_id, c.amount, c.deadline) for c in excess] == [("A", 50000, dt.date(2027, 4, 15))]
    refunds = [c for c in outcome.corrections if c.kind == "adp_excess_distribution"]
    assert refunds and {c.deadline for c in refunds} == {dt.date(2027, 6, 30)}
    assert "excess-deferrals-to-distribute" in rules_fired(outcome)


# -- top-heavy -------------------------------------------------------------------------------------

def _top_heavy_rows(**key_officer) -> list[dict]:
    officer = {"officer": "true", "prior_year_compensation": "230000.01", "account_balance": "700000", "pretax": "12000"}
    officer.update(key_officer)
    return [person("OFFICER", "240000", **officer),
            person("ONE-PCT", "100000", ownership_percent="2", prior_year_ownership_percent="2",
                   prior_year_compensation="150000.01", account_balance="100000"),
            person("ONE-PCT-LOW", "100000", ownership_percent="2", prior_year_ownership_percent="2",
                   prior_year_compensation="150000.00", account_balance="100000"),
            person("N1", "50000", pretax="2000", employer_match="500", account_balance="60000"),
            person("N2", "40000", account_balance="40000"),
            person("GONE", "20000", termination_date="2026-06-30", account_balance="0")]


def test_top_heavy_key_employees_and_the_3_percent_minimum(tmp_path, rulebook, limits, engine):
    """Key: officer paid 230,000.01 in 2025 (> 2025's $230,000; deferring 5%) and the 1% owner paid > $150,000; 800,000 of
    1,000,000 = 80% > 60%. Non-keys employed at year end are owed 3%: ONE-PCT-LOW 3,000, N1 1,500 - 500 match
    = 1,000, N2 1,200; GONE left before year end."""
    outcome = run(tmp_path, _top_heavy_rows(), plan(), rulebook, limits, engine)
    heavy = outcome.summaries[0]["top_heavy"]
    assert (heavy["key_employees"], heavy["ratio"], heavy["top_heavy"], heavy["minimum_rate"]) == (2, "80.00", True, "3.00")
    assert by_employee(outcome, "top_heavy_minimum") == {"ONE-PCT-LOW": "3000.00", "N1": "1000.00", "N2": "1200.00"}
    assert "top-heavy-minimum-owed" in rules_fired(outcome)


def test_officer_paid_exactly_the_416i_figure_is_not_key(tmp_path, rulebook, limits, engine):
    """At $230,000.00 the officer is not key: key balances 100,000 of 1,000,000; not top-heavy."""
    outcome = run(tmp_path, _top_heavy_rows(prior_year_compensation="230000.00"), plan(), rulebook, limits, engine)
    assert not outcome.summaries[0]["top_heavy"]["top_heavy"] and "top-heavy-minimum-owed" not in rules_fired(outcome)


def test_top_heavy_minimum_is_the_highest_key_rate_when_below_3_percent(tmp_path, rulebook, limits, engine):
    """Keys contributing 2% of pay (officer deferral 4,800 of 240,000): non-keys are owed 2%."""
    rows = _top_heavy_rows(pretax="4800")
    outcome = run(tmp_path, rows, plan(), rulebook, limits, engine)
    assert outcome.summaries[0]["top_heavy"]["minimum_rate"] == "2.00"
    assert by_employee(outcome, "top_heavy_minimum") == {"ONE-PCT-LOW": "2000.00", "N1": "500.00", "N2": "800.00"}


# -- census rows -----------------------------------------------------------------------------------

def test_bad_census_rows_are_rejected_with_reasons_and_counts_reconcile(tmp_path, limits):
    """Each bad row is one reject with its line and reason; rows_read = rows_checked + rows_rejected."""
    path = write_census(tmp_path / "c.csv", [
        person("OK", "50000"),
        person("BAD-PAY", "50,000x"),
        {**person("NOPLAN", "50000"), "plan_id": "nope"},
        person("BAD-DATE", "50000", birth_date="1990-02-30"),
        person("OK", "60000"),
        person("ORPHAN", "50000", related_to="NOBODY"),
        person("BAD-OWNER", "50000", ownership_percent="101"),
        person("LEFT", "50000", termination_date="2024-12-31"),  # no service in the year to 2025-12-31
    ])
    with path.open("a") as handle:
        handle.write("t-plan,SHORT,1990-01-01\n")
    census = read_census(path, [PLAN], 2026)
    reasons = {r.line: r.reason for r in census.rejects}
    assert census.rows_read == 9 and census.rows_checked == 1 and census.rows_rejected == 8
    assert census.rows_read == census.rows_checked + census.rows_rejected
    assert "compensation: expected dollars" in reasons[3]
    assert "unknown plan 'nope'" in reasons[4]
    assert "birth_date: expected a date" in reasons[5]
    assert "duplicate of line 2" in reasons[6]
    assert "related_to: no employee 'NOBODY'" in reasons[7]
    assert "ownership_percent" in reasons[8]
    assert "termination_date: before 2025" in reasons[9] and "416(g)(4)(E)" in reasons[9]
    assert f"expected {len(CENSUS_COLUMNS)} fields, got 3" in reasons[10]


def test_parquet_census_reads_as_the_csv_does(tmp_path, limits):
    """The same rows as Parquet give the same arrays; line is the row number."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq
    rows = [person("A", "50000", pretax="1000"), person("B", "60000", related_to="A")]
    path = write_census(tmp_path / "c.csv", rows)
    pq.write_table(pacsv.read_csv(path), tmp_path / "c.parquet")
    from_csv, from_parquet = read_census(path, [PLAN], 2026), read_census(tmp_path / "c.parquet", [PLAN], 2026)
    assert from_parquet.money["pretax"].tolist() == from_csv.money["pretax"].tolist() == [100000, 0]
    assert from_parquet.related.tolist() == [-1, 0] and from_parquet.line.tolist() == [1, 2]


def test_built_facts_match_the_catalogue(rulebook, tmp_path, limits):
    """The builder's fact keys, BUILT_FACTS and rules/facts/yearend.yaml name the same facts."""
    census = read_census(write_census(tmp_path / "c.csv", [person("A", "50000")]), [PLAN], 2026)
    facts = build_yearend_facts(census, [plan()], limits, 2026)
    assert set(facts.plans[0].facts) == BUILT_FACTS == set(rulebook.catalogues["yearend"].facts)


# -- the command -----------------------------------------------------------------------------------

def test_sample_census_fails_acp_on_hce_after_tax_money(tmp_path):
    """The bundled sample: ADP passes (7.21% vs 7.50%), ACP fails (8.45% vs 4.58%), two HCEs refund after-tax money."""
    result = plancheck("yearend", str(ROOT / "samples/census-2026.csv"), "--plans", str(ROOT / "plans"),
                       "--year", "2026", "--rejects", str(tmp_path / "r.csv"))
    assert result.returncode == 1, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    summary = next(e for e in events if e["event"] == "yearend_summary" and e["plan_id"] == "acme-mega-backdoor")
    assert (summary["adp"]["hce"], summary["adp"]["limit"], summary["adp"]["passed"]) == ("7.21", "7.50", True)
    assert (summary["acp"]["hce"], summary["acp"]["limit"], summary["acp"]["passed"]) == ("8.45", "4.58", False)
    refunds = {e["employee_id"]: (e["amount"], e["from_after_tax"], e["deadline"], e["final_deadline"])
               for e in events if e["event"] == "correction" and e["kind"] == "acp_excess_distribution"}
    assert refunds == {"E1001": ("27676.50", "27676.50", "2027-03-15", "2027-12-31"),
                       "E1002": ("18376.50", "18376.50", "2027-03-15", "2027-12-31")}
    run_summary = events[-1]
    assert run_summary["event"] == "yearend_run_summary" and run_summary["rows_read"] == 15
    assert {f["rule"] for f in events if f["event"] == "violation"} == {"acp-test-failed", "top-heavy-minimum-owed"}


def test_bad_year_is_exit_2(tmp_path):
    """A year outside rules/limits is bad input."""
    result = plancheck("yearend", str(ROOT / "samples/census-2026.csv"), "--year", "2031",
                       "--rejects", str(tmp_path / "r.csv"))
    assert result.returncode == 2 and "no IRS limits for 2031" in result.stderr


# -- mid-year preview --------------------------------------------------------------------------------

def test_preview_gives_each_hce_the_room_that_keeps_both_tests_passing(tmp_path, rulebook, limits, engine):
    """As of June 30 (monthly payroll, 6 of 12 pay dates left) pay doubles. NHCEs project to ADP 4.00%
    (limit 6.00%) and ACP 2.00% (limit 4.00%). Both HCEs already deferred 2.50% of projected pay: the
    deferral cap is 6.00% ($12,000 each, $7,000 more). At $12,000 the match is $6,000 (3.00%); H1's
    $2,000 after-tax already makes 4.00%, so H1 has no after-tax room and H2 has $2,000."""
    from plancheck.checks.preview import preview_yearend
    columns = (*CENSUS_COLUMNS, "election_pretax_percent", "election_after_tax_percent")
    rows = [person("H1", "100000", prior_year_compensation="200000", pretax="5000", after_tax="2000",
                   employer_match="2500", election_pretax_percent="10", election_after_tax_percent="10"),
            person("H2", "100000", prior_year_compensation="200000", pretax="5000", employer_match="2500",
                   election_pretax_percent="5", election_after_tax_percent="0"),
            person("N1", "50000", pretax="2500", employer_match="1250"),
            person("N2", "50000", pretax="1500", employer_match="750")]
    matched = plan(match={"tiers": [{"rate": 50, "up_to_percent": 6}]})
    census = read_census(write_census(tmp_path / "ytd.csv", rows, columns), [PLAN], 2026, preview=True)
    outcome = preview_yearend(census, [matched], limits, rulebook, engine, dt.date(2026, 6, 30))
    summary = outcome.summaries[0]
    assert (summary["adp"]["nhce"], summary["adp"]["limit"], summary["acp"]["nhce"], summary["acp"]["limit"]) == \
        ("4.00", "6.00", "2.00", "4.00")
    assert summary["adp"]["hce"] == "6.25" and "adp-test-failed" in rules_fired(outcome)  # current elections fail
    room = {p["employee_id"]: p for p in outcome.previews}
    assert {k: (p["adp_cap"], p["acp_cap"], p["remaining_deferral"], p["remaining_after_tax"], p["periods_remaining"])
            for k, p in room.items()} == {"H1": ("6.00", "4.00", "7000.00", "0.00", 6),
                                          "H2": ("6.00", "4.00", "7000.00", "2000.00", 6)}
    assert room["H2"]["remaining_after_tax_per_period"] == "333.33" and room["H1"]["acp_can_pass"]
    assert outcome.corrections == []


def test_preview_says_when_what_is_already_in_fails_the_test(tmp_path, rulebook, limits, engine):
    """An HCE's after-tax money so far already fails the ACP whatever happens next: no room, and it says so."""
    from plancheck.checks.preview import preview_yearend
    rows = [person("H1", "100000", prior_year_compensation="200000", after_tax="20000"),
            person("N1", "50000", pretax="1000")]
    census = read_census(write_census(tmp_path / "ytd.csv", rows), [PLAN], 2026, preview=True)
    outcome = preview_yearend(census, [plan()], limits, rulebook, engine, dt.date(2026, 6, 30))
    (room,) = outcome.previews
    assert (room["acp_can_pass"], room["remaining_after_tax"]) == (False, "0.00")


def test_feed_totals_replace_the_census_contributions(tmp_path, rulebook, limits, engine):
    """The payroll feed's 2026 rows give the same test as the same totals typed into the census; bad feed
    rows are rejected with reasons, rows of 2025 are read but add nothing, and the counts reconcile."""
    from plancheck.documents.census_feed import contributions_from_feed
    from plancheck.documents.feed.reader import COLUMNS as FEED_COLUMNS
    feed = tmp_path / "feed.csv"
    base = {"plan_id": PLAN, "birth_date": "1990-01-01", "compensation": "10000", "roth": "0",
            "employer_match": "0", "employer_nonelective": "0", "prior_year_fica_wages": "", "other_plan_deferrals": "",
            "limitation_year": ""}
    feed_rows = [{**base, "employee_id": "B", "pay_date": "2026-01-31", "pretax": "3500", "after_tax": "0"},
                 {**base, "employee_id": "B", "pay_date": "2026-02-28", "pretax": "3500", "after_tax": "100"},
                 {**base, "employee_id": "B", "pay_date": "2025-12-31", "pretax": "999", "after_tax": "0"},
                 {**base, "employee_id": "STRANGER", "pay_date": "2026-01-31", "pretax": "1", "after_tax": "0"},
                 {**base, "employee_id": "D", "pay_date": "2026-01-31", "pretax": "12.345", "after_tax": "0"}]
    write_census(feed, feed_rows, FEED_COLUMNS)
    census_rows = _benefitslink_case()
    for row in census_rows:
        row["pretax"] = ""
    census = read_census(write_census(tmp_path / "census.csv", census_rows), [PLAN], 2026)
    summary, header, rejects = contributions_from_feed(feed, census)
    assert (summary["rows_read"], summary["rows_checked"], summary["rows_rejected"], summary["rows_outside_year"]) == \
        (5, 3, 2, 1)
    assert census.money["pretax"].tolist()[:2] == [0, 700000] and census.money["after_tax"].tolist()[1] == 10000
    reasons = [dict(zip(header, row))["reason"] for row in rejects]
    assert "no census row for plan 't-plan' and employee 'STRANGER'" in reasons[0]
    assert reasons[1].startswith("pretax: expected dollars")


def test_a_hostile_census_row_is_one_rejected_row(tmp_path):
    """The census is read as a feed is: a bad byte or an unbalanced quote rejects its record only, a quoted
    newline is read (numbered by its first line), and rows_read = rows_checked + rows_rejected."""
    sample = (ROOT / "samples" / "census-2026.csv").read_bytes().splitlines()
    header, good = sample[0], sample[1:3]
    rows = [*good,
            b'acme-mega-backdoor,"E9\n99",1980-01-01,2020-01-01,,100000,,,,,false,1000,0,0,0,0,0',
            b"acme-mega-backdoor,E\xff1,1980-01-01,2020-01-01,,100000,,,,,false,1000,0,0,0,0,0",
            b'acme-mega-backdoor,"E77,1980-01-01,2020-01-01,,100000,,,,,false,1000,0,0,0,0,0',
            *sample[3:5]]
    path = tmp_path / "census.csv"
    path.write_bytes(b"\n".join([header, *rows]) + b"\n")
    census = read_census(path, ["acme-mega-backdoor", "bayside-safe-harbor"], 2026)
    reasons = {r.line: r.reason for r in census.rejects}
    assert set(reasons) == {6, 7}
    assert reasons[6].startswith("not valid UTF-8") and "census" in reasons[6]
    assert reasons[7].startswith("unbalanced quote")
    assert "E9\n99" in census.employee_id.tolist() and 4 in census.line.tolist()
    assert census.rows_read == census.rows_checked + census.rows_rejected == 7


@pytest.mark.parametrize(("birth", "other", "expected"), [
    ("1990-01-01", "20000", {"A": "5500.00"}),    # 36: 10,000 + 20,000 - 24,500
    ("1990-01-01", "14500", {}),                  # exactly 24,500 in all
    ("1970-01-01", "25000", {"A": "2500.00"}),    # 56: 10,000 + 25,000 - (24,500 + 8,000 by age)
    ("1964-01-01", "25000", {}),                  # 62: the 60-63 catch-up of $11,250 whatever the plan offers
    ("1990-01-01", "90000", {"A": "10000.00"}),   # at most what was deferred in this plan
], ids=["36, 20,000 elsewhere", "at the limit", "56, age-based catch-up", "62, 60-63 figure", "capped at this plan"])
def test_excess_deferrals_count_other_employers(tmp_path, birth, other, expected, rulebook, limits, engine):
    """402(g)(1) is the individual's: deferrals at other employers (census column other_plan_deferrals) count,
    with the catch-up by age whatever this plan offers; the excess to distribute by April 15 is listed here."""
    rows = [person("A", "100000", birth_date=birth, pretax="10000", other_plan_deferrals=other),
            person("N1", "100000", pretax="3000"), person("N2", "100000", pretax="3000")]
    outcome = run(tmp_path, rows, plan(catch_up={"offered": False}), rulebook, limits, engine)
    assert by_employee(outcome, "excess_deferral") == expected
    if expected:
        correction = next(c for c in outcome.corrections if c.kind == "excess_deferral")
        assert correction.deadline.isoformat() == "2027-04-15"


def _officers(count: int, others: int, **extra: Any) -> list[dict]:
    """`count` officers paid above 2025's 416(i) figure (the first the best paid) and `others` rank-and-file."""
    rows = [person(f"O{i}", "240000", officer="true", prior_year_compensation=f"{300000 - i * 1000}.00",
                   account_balance="100000", **extra) for i in range(count)]
    rows += [person(f"N{i}", "50000", account_balance="10000") for i in range(others)]
    return rows


@pytest.mark.parametrize(("officers", "others", "limit", "key"), [
    (5, 0, 3, 3),        # 5 employees, all officers: 10% is 0.5 -> at least 3
    (6, 37, 5, 5),       # 43 employees: 10% is 4.3 -> 5
    (4, 36, 4, 4),       # 40 employees: exactly 4
    (60, 540, 50, 50),   # 600 employees: 60 -> at most 50
    (2, 8, 3, 2),        # fewer officers than the limit: all of them
])
def test_officers_treated_as_key_employees_are_limited(officers, others, limit, key, tmp_path, rulebook, limits,
                                                       engine):
    """416(i)(1)(A): no more than 50 officers (or, if lesser, the greater of 3 or 10% of the employees, a fraction
    rounded up: Treas. Reg. 1.416-1, T-14) are key employees; the highest paid of them."""
    outcome = run(tmp_path, _officers(officers, others), plan(), rulebook, limits, engine)
    heavy = outcome.summaries[0]["top_heavy"]
    assert (heavy["key_employees"], heavy["key_officer_limit"], heavy["officers_beyond_limit"]) == (
        key, limit, officers - key)
    census = read_census(tmp_path / "census.csv", [PLAN], 2026)
    facts = build_yearend_facts(census, [plan()], limits, 2026)
    assert {census.employee_id[i] for i in np.flatnonzero(facts.employees.key)} == {f"O{i}" for i in range(key)}


def test_employees_under_21_or_new_are_not_counted_for_the_officer_limit(tmp_path, rulebook, limits, engine):
    """40 employees make a limit of 4; ten of them under 21 at the end of 2025, or hired in its last six months,
    are disregarded (414(q)(5)): 30 counted, limit 3."""
    rows = _officers(5, 35)
    for i in range(5):
        rows[5 + i]["birth_date"] = "2006-01-01"       # 19 at the end of 2025
        rows[10 + i]["hire_date"] = "2025-09-01"       # four months of service by the end of 2025
    outcome = run(tmp_path, rows, plan(), rulebook, limits, engine)
    heavy = outcome.summaries[0]["top_heavy"]
    assert (heavy["key_officer_limit"], heavy["key_employees"]) == (3, 3)


def test_the_officer_limit_counts_the_employer_s_people_across_its_plans(tmp_path, rulebook, limits, engine):
    """Two plans of one employer: 5 officers and 25 others in one, 30 others in the other. The employer has 60
    employees, so 6 officers may be key: all 5 are (counted in the first plan alone, 30 employees, it would be 3)."""
    first = plan(employer="acme")
    second = plan(plan_id="t-plan-2", employer="acme")
    rows = _officers(5, 25) + [person(f"M{i}", "50000", plan_id="t-plan-2", account_balance="10000")
                               for i in range(30)]
    census = read_census(write_census(tmp_path / "census.csv", rows), [PLAN, "t-plan-2"], 2026)
    outcome = check_yearend(census, [first, second], limits, rulebook, engine, 2026)
    heavy = {s["plan_id"]: s["top_heavy"] for s in outcome.summaries}
    assert (heavy[PLAN]["key_officer_limit"], heavy[PLAN]["key_employees"]) == (6, 5)


def test_someone_in_two_plans_of_the_employer_counts_once(tmp_path, rulebook, limits, engine):
    """The same 5 officers in both plans of one employer and nobody else: 5 people, so 3 are key, the same 3
    in both plans."""
    first = plan(employer="acme")
    second = plan(plan_id="t-plan-2", employer="acme")
    rows = _officers(5, 0) + [{**row, "plan_id": "t-plan-2"} for row in _officers(5, 0)]
    census = read_census(write_census(tmp_path / "census.csv", rows), [PLAN, "t-plan-2"], 2026)
    outcome = check_yearend(census, [first, second], limits, rulebook, engine, 2026)
    facts = build_yearend_facts(census, [first, second], limits, 2026)
    keys = {(census.plan_ids[census.plan[i]], census.employee_id[i]) for i in np.flatnonzero(facts.employees.key)}
    assert keys == {(p, f"O{i}") for p in (PLAN, "t-plan-2") for i in range(3)}
    assert {s["top_heavy"]["key_officer_limit"] for s in outcome.summaries} == {3}


def test_the_top_paid_group_is_the_employer_s(tmp_path, rulebook, limits, engine):
    """With the top-paid group election, 20% of the employer's people (not of one plan's rows): 10 people in two
    plans of one employer, all paid above the look-back figure, 2 of them in the group; the first plan's 5
    highest paid people would otherwise be 1."""
    testing = {"top_paid_group_election": True}
    first = plan(employer="acme", nondiscrimination_testing=testing)
    second = plan(plan_id="t-plan-2", employer="acme", nondiscrimination_testing=testing)
    rows = [person(f"P{i}", "200000", prior_year_compensation=f"{200000 - i * 1000}.00") for i in range(5)]
    rows += [person(f"Q{i}", "200000", plan_id="t-plan-2", prior_year_compensation=f"{199500 - i * 1000}.00")
             for i in range(5)]
    census = read_census(write_census(tmp_path / "census.csv", rows), [PLAN, "t-plan-2"], 2026)
    facts = build_yearend_facts(census, [first, second], limits, 2026)
    hces = sorted(census.employee_id[i] for i in np.flatnonzero(facts.employees.hce))
    assert hces == ["P0", "Q0"]


@pytest.mark.parametrize("preview", [None, "2026-06-30"])
def test_a_census_of_only_its_header_is_zero_rows_not_a_crash(preview, tmp_path):
    """A census with a header and no rows (a plan year with nobody yet, an export gone wrong) reads as nothing."""
    census = write_census(tmp_path / "empty.csv", [])
    args = ["yearend", str(census), "--out", str(tmp_path / "out.jsonl"), "--rejects", str(tmp_path / "r.csv")]
    result = plancheck(*args, *(["--preview", preview] if preview else ["--year", "2026"]))  # no date to tell the year
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[-1])
    assert (summary["rows_read"], summary["rows_rejected"], summary["findings"]) == (0, 0, 0)
