"""The 10% additional tax on early distributions (IRC 72(t)) and its common exceptions, worked by hand."""

from __future__ import annotations

import json

import pytest

from helpers import plancheck


def paid(request_id: str, **fields) -> dict:
    """$1,000 of pretax money paid in service at 40 from acme-mega-backdoor, with the fields given."""
    return {"request_id": request_id, "plan_id": "acme-mega-backdoor", "employee_id": "E", "birth_date": "1986-03-01",
            "employed": True, "request_date": "2026-06-01", "kind": "hardship", "source": "pretax",
            "amount": "1000.00", "source_balance": "50000.00", **fields}


def early(tmp_path, requests: list[dict]) -> dict[str, dict[str, str]]:
    """request_id -> {72(t) rule: the event's amount} of each early-distribution finding."""
    path = tmp_path / "r.json"
    path.write_text(json.dumps(requests))
    result = plancheck("withdrawals", str(path))
    found: dict[str, dict[str, str]] = {}
    for event in map(json.loads, result.stdout.splitlines()):
        if event.get("rule", "").startswith("early-distribution"):
            found.setdefault(event["request_id"], {})[event["rule"]] = event["amount"]
            if event["rule"] == "early-distribution-additional-tax":
                assert event["severity"] == "info" and event["additional_tax_72t"] == event["amount"]
    return found


def rejected(tmp_path, requests: list[dict]) -> dict[str, str]:
    path = tmp_path / "r.json"
    path.write_text(json.dumps(requests))
    events = [json.loads(line) for line in plancheck("withdrawals", str(path)).stdout.splitlines()]
    return {json.dumps(e["where"]): e["reason"] for e in events if e["event"] == "request_rejected"}


TAX = "early-distribution-additional-tax"


def test_pretax_and_employer_money_before_59_half_carry_10_percent(tmp_path):
    """$1,000 pretax or match money paid at 40 carries $100; $0.05 carries $0.01 (half up); $0.04 carries nothing."""
    assert early(tmp_path, [paid("pretax"), paid("match", source="employer_match"),
                            paid("nickel", amount="0.05"), paid("four-cents", amount="0.04")]) == {
        "pretax": {TAX: "100.00"}, "match": {TAX: "100.00"}, "nickel": {TAX: "0.01"}}


def test_the_tax_ends_on_the_day_59_half_is_reached(tmp_path):
    """Born 1966-09-10: 59 1/2 on 2026-03-10. A payment the day before carries the tax; on the day it does not."""
    born = {"birth_date": "1966-09-10"}
    assert early(tmp_path, [paid("day-before", request_date="2026-03-09", **born),
                            paid("on-the-day", request_date="2026-03-10", **born)]) == {"day-before": {TAX: "100.00"}}


def test_rollovers_and_conversions_are_not_taxed_by_72t(tmp_path):
    assert early(tmp_path, [paid("rollover", kind="rollover_to_roth_ira"),
                            paid("conversion", kind="in_plan_roth_conversion")]) == {}


def test_roth_money_is_taxed_on_the_earnings_of_a_non_qualified_distribution_only(tmp_path):
    """$5,000 of a Roth source of $8,000 contributions + $2,000 earnings at 40: $1,000 of earnings, $100 of tax.

    Without the split the taxable part is unknown (no notice); paid on death, the distribution is not taxed."""
    roth = {"source": "roth", "amount": "5000.00", "source_balance": None}
    split = {"roth_basis": "8000.00", "roth_earnings": "2000.00"}
    assert early(tmp_path, [paid("split", **roth, **split), paid("no-split", **roth),
                            paid("death", exception="death", **roth, **split)]) == {"split": {TAX: "100.00"}}


def test_after_tax_basis_is_not_taxed(tmp_path):
    """$10,000 of an $8,000 basis + $2,000 earnings after-tax source at 40: $200 of tax, on the earnings only."""
    assert early(tmp_path, [paid("after-tax", source="after_tax", amount="10000.00", source_balance=None,
                                 after_tax_basis="8000.00", after_tax_earnings="2000.00")]) == {"after-tax": {TAX: "200.00"}}


@pytest.mark.parametrize(("separated", "request_date", "covered"), [
    ("2026-01-05", "2026-01-15", True),   # turns 55 on 2026-03-01: separated in that year at 54, paid at 54
    ("2025-12-31", "2026-06-01", False),  # separated in the year of turning 54, paid at 55: no exception
    ("2027-02-01", "2027-02-01", True),   # the year after turning 55
])
def test_separation_in_or_after_the_year_of_turning_55(separated, request_date, covered, tmp_path):
    """72(t)(2)(A)(v) read by Notice 87-13 Q&A-20: the calendar year of the separation decides, not the age at payment."""
    found = early(tmp_path, [paid("R", birth_date="1971-03-01", employed=False, separation_date=separated,
                                  request_date=request_date, kind="in_service_withdrawal")])
    assert found == ({"R": {"early-distribution-exception-separation-55": "1000.00"}} if covered
                     else {"R": {TAX: "100.00"}})


@pytest.mark.parametrize(("exception", "rule"), [("disability", "early-distribution-exception-disability"),
                                                 ("death", "early-distribution-exception-death"),
                                                 ("qdro", "early-distribution-exception-qdro")])
def test_disability_death_and_qdro_cover_the_whole_payment(exception, rule, tmp_path):
    assert early(tmp_path, [paid("R", exception=exception, amount="25000.00")]) == {"R": {rule: "25000.00"}}


def test_an_emergency_personal_expense_distribution_covers_1000_dollars_once_a_year(tmp_path):
    """$1,000 is covered; of $1,500, $500 is taxed ($50); $1,000.05 leaves $0.005 -> $0.01; $1,000.04 nothing.
    A second one in the year, or one in 2023, is not covered (warning) and carries the whole tax."""
    emergency = {"exception": "emergency_personal_expense"}
    rule = "early-distribution-exception-emergency"
    assert early(tmp_path, [
        paid("exact", **emergency), paid("more", amount="1500.00", **emergency),
        paid("cent-over", amount="1000.05", **emergency), paid("under-a-cent", amount="1000.04", **emergency),
        paid("second", amount="1500.00", exception_amount_used="800.00", **emergency),
        paid("2023", request_date="2023-06-01", **emergency),
    ]) == {
        "exact": {rule: "1000.00"}, "more": {rule: "1000.00", TAX: "50.00"},
        "cent-over": {rule: "1000.00", TAX: "0.01"}, "under-a-cent": {rule: "1000.00"},
        "second": {"early-distribution-exception-not-met": "150.00", TAX: "150.00"},
        "2023": {"early-distribution-exception-not-met": "100.00", TAX: "100.00"},
    }


def test_a_birth_or_adoption_distribution_covers_5000_dollars_within_the_year(tmp_path):
    """Born 2025-06-01: paid 2026-05-31 is within the year, 2026-06-01 is not, 2025-05-31 is before the birth.
    $6,000 leaves $1,000 taxed ($100); with $4,000 already paid for the child, $1,000 is covered."""
    birth = {"exception": "birth_or_adoption", "birth_or_adoption_date": "2025-06-01"}
    rule, not_met = "early-distribution-exception-birth-adoption", "early-distribution-exception-not-met"
    assert early(tmp_path, [
        paid("last-day", request_date="2026-05-31", amount="5000.00", **birth),
        paid("anniversary", request_date="2026-06-01", amount="5000.00", **birth),
        paid("before", request_date="2025-05-31", amount="5000.00", **birth),
        paid("more", request_date="2025-09-01", amount="6000.00", **birth),
        paid("used", request_date="2025-09-01", amount="3000.00", exception_amount_used="4000.00", **birth),
        paid("all-used", request_date="2025-09-01", amount="3000.00", exception_amount_used="5000.00", **birth),
    ]) == {
        "last-day": {rule: "5000.00"}, "anniversary": {not_met: "500.00", TAX: "500.00"},
        "before": {not_met: "500.00", TAX: "500.00"}, "more": {rule: "5000.00", TAX: "100.00"},
        "used": {rule: "1000.00", TAX: "200.00"}, "all-used": {not_met: "300.00", TAX: "300.00"},
    }


def test_the_72t_fields_are_validated(tmp_path):
    """Each new field goes with what it describes; a request that mixes them is rejected with the reason."""
    reasons = list(rejected(tmp_path, [
        paid("a", separation_date="2026-01-01"),                                  # still employed
        paid("b", employed=False, separation_date="2026-07-01"),                  # after the request
        paid("c", exception="birth_or_adoption"),                                 # no date
        paid("d", birth_or_adoption_date="2026-01-01"),                           # no exception
        paid("e", roth_basis="10.00", roth_earnings="1.00"),                      # not the Roth source
        paid("f", exception="emergency_personal_expense", exception_amount_used="-1"),
        paid("g", exception="hardship"),
        paid("h", exception_amount_used="100.00"),                                # no exception that counts it
    ]).values())
    assert len(reasons) == 8
    assert "separation_date goes with employed: false" in reasons[0]
    assert "on or before request_date" in reasons[1]
    assert "birth_or_adoption_date" in reasons[2] and "birth_or_adoption_date" in reasons[3]
    assert "roth source only" in reasons[4]
    assert "exception_amount_used" in reasons[5] and "exception" in reasons[6]
    assert "exception_amount_used goes with" in reasons[7]


def test_disability_death_and_qdro_payments_are_not_held_to_59_half_in_service(tmp_path):
    """Pretax money in service at 40: an error (in-service-withdrawal-age), unless paid to a QDRO alternate payee,
    on disability or on death (401(k)(2)(B)(i)(I); 414(p)(10)); a birth or adoption claim does not change that."""
    path = tmp_path / "r.json"
    path.write_text(json.dumps([
        paid(reason, kind="in_service_withdrawal", **({"exception": reason} if reason != "none" else {}),
             **({"birth_or_adoption_date": "2026-05-01"} if reason == "birth_or_adoption" else {}))
        for reason in ("none", "qdro", "disability", "death", "birth_or_adoption")]))
    events = [json.loads(line) for line in plancheck("withdrawals", str(path)).stdout.splitlines()]
    held = sorted(e["request_id"] for e in events if e.get("rule") == "in-service-withdrawal-age")
    assert held == ["birth_or_adoption", "none"]
