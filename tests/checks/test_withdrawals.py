"""Withdrawal and conversion requests against the sample plans, with outcomes worked out by hand."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from helpers import ROOT, plancheck
from plancheck.ages import date_reaching, months_of_age


def run(path: str) -> tuple[list[dict], int]:
    result = plancheck("withdrawals", path)
    return [json.loads(line) for line in result.stdout.splitlines()], result.returncode


def test_sample_requests():
    """Each sample request gets exactly the findings its comment in samples/withdrawals.yaml states."""
    events, code = run("samples/withdrawals.yaml")
    got = {(e["request_id"], e["rule"]) for e in events if "rule" in e}
    assert got == {
        ("W-001", "after-tax-earnings-taxable"),
        ("W-002", "after-tax-earnings-taxable"),
        ("W-004", "in-plan-roth-conversion-not-permitted"),
        ("W-005", "in-service-withdrawal-age"),
        ("W-007", "in-service-withdrawal-frequency"),
        ("W-008", "in-service-withdrawal-not-permitted"),
        ("W-009", "withdrawal-exceeds-balance"),
        ("W-010", "hardship-not-permitted"),
        ("W-009", "after-tax-earnings-taxable"),
        ("W-009", "withdrawal-exceeds-balance"),
        ("W-014", "in-service-withdrawal-age"),
        ("W-016", "after-tax-earnings-taxable"),
        # 72(t): paid before 59 1/2, taxable, no exception shown.
        ("W-001", "early-distribution-additional-tax"), ("W-005", "early-distribution-additional-tax"),
        ("W-009", "early-distribution-additional-tax"), ("W-010", "early-distribution-additional-tax"),
        ("W-011", "early-distribution-additional-tax"), ("W-014", "early-distribution-additional-tax"),
        ("W-016", "early-distribution-additional-tax"),
    }
    tax = {e["request_id"]: e["amount"] for e in events if e.get("rule") == "early-distribution-additional-tax"}
    assert tax == {"W-001": "200.00", "W-005": "250.00", "W-009": "200.00", "W-010": "400.00", "W-011": "600.00",
                   "W-014": "150.00", "W-016": "123.46"}
    taxable = {e["request_id"]: (e["amount"], e["additional_tax_72t"], e["severity"])
               for e in events if e.get("rule") == "after-tax-earnings-taxable"}
    assert taxable == {"W-001": ("2000.00", "200.00", "info"), "W-002": ("2000.00", "0.00", "info"),
                       "W-009": ("2000.00", "200.00", "info"), "W-016": ("1234.55", "123.46", "info")}
    rejected = [e for e in events if e["event"] == "request_rejected"]
    assert [e["line"] for e in rejected] == [45, 48]
    summary = events[-1]
    assert (summary["requests_read"], summary["requests_checked"], summary["requests_rejected"]) == (16, 14, 2)
    assert code == 1


def test_csv_requests_and_pro_rata_earnings():
    """CSV requests: $7,500 of a $6,000 basis + $1,500 earnings source converts $1,500 of taxable earnings."""
    events, _ = run("samples/withdrawals.csv")
    taxable = {e["request_id"]: (e["amount"], e["additional_tax_72t"])
               for e in events if e.get("rule") == "after-tax-earnings-taxable"}
    # C-006: $3,000 of a $2,400 basis + $600 earnings source paid at 36: $600 taxable, $60 under 72(t).
    assert taxable == {"C-001": ("2000.00", "0.00"), "C-002": ("1500.00", "0.00"), "C-006": ("600.00", "60.00")}
    assert ("C-003", "in-plan-roth-conversion-not-permitted") in {(e.get("request_id"), e.get("rule")) for e in events}
    assert ("C-005", "in-service-withdrawal-age") in {(e.get("request_id"), e.get("rule")) for e in events}
    rejected = [e for e in events if e["event"] == "request_rejected"]
    assert len(rejected) == 1 and rejected[0]["line"] == 5 and "request_date" in rejected[0]["reason"]


def test_partial_after_tax_withdrawal_is_pro_rata(tmp_path):
    """Half of a $8,000 basis + $2,000 earnings source carries $1,000 of earnings."""
    path = tmp_path / "r.json"
    path.write_text(json.dumps([{"request_id": "R1", "plan_id": "acme-mega-backdoor", "employee_id": "E",
                                 "birth_date": "1980-01-01", "employed": True, "request_date": "2026-01-10",
                                 "kind": "rollover_to_roth_ira", "source": "after_tax", "amount": "5000.00",
                                 "after_tax_basis": 8000, "after_tax_earnings": 2000}]))
    events, _ = run(str(path))
    assert next(e for e in events if e.get("rule"))["amount"] == "1000.00"


@pytest.mark.parametrize(("birth", "on", "months"), [
    ("1966-09-10", "2026-03-10", 714), ("1966-09-10", "2026-03-09", 713), ("1967-04-20", "2026-03-25", 707)])
def test_months_of_age(birth, on, months):
    """59 1/2 is reached on the day six months after the 59th birthday."""
    assert months_of_age(dt.date.fromisoformat(birth), dt.date.fromisoformat(on)) == months


# (birth date, the day 59 1/2 is reached), worked out on a calendar: six calendar months after
# the 59th birthday, on the last day of the month where that day does not exist.
FIFTY_NINE_AND_A_HALF = [
    ("1966-08-31", "2026-02-28"),  # 59th birthday 2025-08-31; there is no 31 February
    ("1966-08-30", "2026-02-28"),  # no 30 February either
    ("1966-08-28", "2026-02-28"),  # the day exists: no clamping
    ("1966-02-15", "2025-08-15"),
    ("1964-08-31", "2024-02-29"),  # 2024 is a leap year: the last day of February is the 29th
    ("1964-08-29", "2024-02-29"),
    ("1966-12-31", "2026-06-30"),  # June has 30 days
    ("1966-03-31", "2025-09-30"),
    ("1966-07-01", "2026-01-01"),  # across the year end
]


@pytest.mark.parametrize(("birth", "reached"), FIFTY_NINE_AND_A_HALF)
def test_fifty_nine_and_a_half_on_the_day_and_not_the_day_before(birth, reached):
    """The participant is 714 months old on the day 59 1/2 is reached and 713 months old the day before."""
    born, day = dt.date.fromisoformat(birth), dt.date.fromisoformat(reached)
    assert date_reaching(born, 714) == day
    assert months_of_age(born, day) == 714
    assert months_of_age(born, day - dt.timedelta(days=1)) == 713


def test_months_of_age_never_goes_back():
    """Counting day by day over four years from a 31st, months of age rise by at most one a day and never fall."""
    born = dt.date(1966, 1, 31)
    day, last = dt.date(2025, 1, 1), months_of_age(born, dt.date(2025, 1, 1))
    while day < dt.date(2029, 1, 1):
        day += dt.timedelta(days=1)
        now = months_of_age(born, day)
        assert now - last in (0, 1)
        last = now


def test_in_service_withdrawal_age_boundary_through_the_cli(tmp_path):
    """Born 1966-08-31: pretax money on 2026-02-27 is too early (59 years 5 months); on 2026-02-28 it is allowed."""
    requests = [{"request_id": rid, "plan_id": "acme-mega-backdoor", "employee_id": "E", "birth_date": "1966-08-31",
                 "employed": True, "request_date": day, "kind": "in_service_withdrawal", "source": "pretax",
                 "amount": "100.00", "source_balance": "5000.00"} for rid, day in (("R1", "2026-02-27"),
                                                                                  ("R2", "2026-02-28"))]
    path = tmp_path / "r.json"
    path.write_text(json.dumps(requests))
    events, _ = run(str(path))
    found = [e for e in events if "rule" in e]
    assert [(e["request_id"], e["rule"]) for e in found] == [("R1", "early-distribution-additional-tax"),
                                                              ("R1", "in-service-withdrawal-age")]
    assert found[1]["age"] == "59 years 5 months" and found[1]["minimum_age"] == "59 years 6 months"
    assert (found[0]["amount"], found[0]["additional_tax_72t"]) == ("10.00", "10.00")  # 10% of $100, the day before


def test_unreadable_request_file_is_exit_2(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text("requests: {not: a list}\n")
    result = plancheck("withdrawals", str(path))
    assert result.returncode == 2 and "expected a list of requests" in result.stderr


def request(**fields) -> dict:
    """A request against bayside-safe-harbor (basic safe-harbor match) with the fields given."""
    return {"request_id": "R", "plan_id": "bayside-safe-harbor", "employee_id": "E", "birth_date": "1970-05-05",
            "employed": True, "request_date": "2026-06-01", "kind": "in_service_withdrawal",
            "source": "safe_harbor", "amount": "1000.00", "source_balance": "5000.00", **fields}


def rules_for(tmp_path, requests: list[dict]) -> list[tuple[str, str]]:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(requests))
    events, _ = run(str(path))
    return sorted((e["request_id"], e["rule"]) for e in events if "rule" in e)


def test_safe_harbor_money_waits_for_59_half(tmp_path):
    """Safe-harbor money in service: at 56 it is too early; at 59 1/2 it may go; after separation any age may take it."""
    assert rules_for(tmp_path, [
        request(request_id="early"),
        request(request_id="on-time", birth_date="1966-12-01"),          # 59 1/2 on 2026-06-01
        request(request_id="separated", employed=False),
    ]) == [("early", "early-distribution-additional-tax"), ("early", "in-service-withdrawal-age"),
           ("separated", "early-distribution-additional-tax")]  # 72(t): paid before 59 1/2, no separation_date


def test_match_money_of_a_safe_harbor_match_plan_is_safe_harbor_money(tmp_path, plans):
    """In a plan claiming a safe-harbor match, employer_match money is held to 59 1/2 even if the plan says 55.

    The request is checked against a copy of bayside-safe-harbor whose employer_match source opens at 55 (the
    plan audit reports that document as safe-harbor-in-service-before-59-half).
    """
    plan_dir = tmp_path / "plans"
    plan_dir.mkdir()
    text = (ROOT / "plans" / "bayside-safe-harbor.yaml").read_text().replace(
        "  safe_harbor: {allowed: true, minimum_age: 59.5, times_per_year: 1}",
        "  employer_match: {allowed: true, minimum_age: 55}")
    (plan_dir / "bayside.yaml").write_text(text)
    path = tmp_path / "r.json"
    path.write_text(json.dumps([request(request_id="m57", source="employer_match", birth_date="1969-01-10")]))
    result = plancheck("withdrawals", str(path), "--plans", str(plan_dir))
    found = [json.loads(line) for line in result.stdout.splitlines() if '"rule"' in line]
    assert [(e["rule"], e["age"], e["minimum_age"]) for e in found] == [
        ("early-distribution-additional-tax", "57 years 4 months", "59 years 6 months"),
        ("in-service-withdrawal-age", "57 years 4 months", "59 years 6 months")]


def test_hardship_from_safe_harbor_money_follows_the_plan(tmp_path):
    """Hardship is allowed from safe-harbor money where the plan lists it (401(k)(14)(A)); bayside lists pretax only."""
    assert rules_for(tmp_path, [request(request_id="h", kind="hardship")]) == [
        ("h", "early-distribution-additional-tax"), ("h", "hardship-not-permitted")]  # a hardship is no 72(t) exception


def after_tax(**fields) -> dict:
    """An after-tax request against acme-mega-backdoor (after-tax withdrawable in service) with the fields given."""
    return {"request_id": "R", "plan_id": "acme-mega-backdoor", "employee_id": "E", "birth_date": "1980-01-01",
            "employed": True, "request_date": "2026-03-02", "kind": "in_service_withdrawal", "source": "after_tax",
            **fields}


def notices(tmp_path, requests: list[dict]) -> dict[str, tuple[str, str, str]]:
    """request_id -> (taxable earnings, 72(t) tax, basis) of each after-tax-earnings-taxable notice."""
    path = tmp_path / "r.json"
    path.write_text(json.dumps(requests))
    events, _ = run(str(path))
    found = {}
    for e in events:
        if e.get("rule") == "after-tax-earnings-taxable":
            basis = e["message"].split("is earnings and taxable; ")[1].split(" is basis")[0]
            found[e["request_id"]] = (e["amount"], e["additional_tax_72t"], basis)
    return found


def test_72t_tax_to_the_cent_rounds_half_up(tmp_path):
    """$5,000 of a $3,765.45 basis + $1,234.55 earnings source paid at 45: 10% of $1,234.55 is $123.455 -> $123.46.

    A $1,000.00 share of a $4,000 basis + $1,000.05 earnings source carries $1,000 x 1,000.05 / 5,000.05 =
    $200.0079... -> $200.01 of earnings, and 10% of that, $20.001, is $20.00.
    """
    assert notices(tmp_path, [
        after_tax(request_id="a", amount="5000.00", after_tax_basis="3765.45", after_tax_earnings="1234.55"),
        after_tax(request_id="b", amount="1000.00", after_tax_basis="4000.00", after_tax_earnings="1000.05"),
    ]) == {"a": ("1234.55", "123.46", "$3,765.45"), "b": ("200.01", "20.00", "$799.99")}


def test_72t_applies_to_money_kept_before_59_half_only(tmp_path):
    """10% of $2,000 of earnings is $200 paid in service or on hardship before 59 1/2, or after separation.

    Nothing on the day the participant reaches 59 1/2 (born 1966-08-31: 2026-02-28), and nothing on a rollover
    to a Roth IRA or an in-plan conversion at any age: those are not distributions kept by the participant.
    """
    money = {"amount": "10000.00", "after_tax_basis": "8000.00", "after_tax_earnings": "2000.00"}
    born = {"birth_date": "1966-08-31"}
    assert notices(tmp_path, [
        after_tax(request_id="day-before", request_date="2026-02-27", **born, **money),
        after_tax(request_id="on-the-day", request_date="2026-02-28", **born, **money),
        after_tax(request_id="separated", employed=False, **money),
        after_tax(request_id="hardship", kind="hardship", **money),
        after_tax(request_id="rollover", kind="rollover_to_roth_ira", **money),
        after_tax(request_id="conversion", kind="in_plan_roth_conversion", **money),
    ]) == {"day-before": ("2000.00", "200.00", "$8,000.00"), "on-the-day": ("2000.00", "0.00", "$8,000.00"),
           "separated": ("2000.00", "200.00", "$8,000.00"), "hardship": ("2000.00", "200.00", "$8,000.00"),
           "rollover": ("2000.00", "0.00", "$8,000.00"), "conversion": ("2000.00", "0.00", "$8,000.00")}


def test_basis_of_a_request_above_the_balance_is_what_the_source_holds(tmp_path):
    """$12,000 asked of an $8,000 basis + $2,000 earnings source: the $10,000 it holds is $2,000 earnings, $8,000 basis."""
    assert notices(tmp_path, [after_tax(amount="12000.00", after_tax_basis="8000.00", after_tax_earnings="2000.00")]) \
        == {"R": ("2000.00", "200.00", "$8,000.00")}
