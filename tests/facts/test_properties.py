"""Invariants over random inputs (hypothesis)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import make_election, make_plan, run
from helpers.irs_figures import FIGURES
from plancheck.engine.prescreen import evaluate_columns

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def cents(x: Decimal) -> Decimal:
    return x.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@SETTINGS
@given(
    year=st.sampled_from([2023, 2024, 2025, 2026]),
    age=st.integers(min_value=21, max_value=70),
    monthly_pay=st.integers(min_value=1000, max_value=25000),
    pretax_pct=st.integers(min_value=0, max_value=60),
    after_tax=st.integers(min_value=0, max_value=6000),
    match_pct=st.integers(min_value=0, max_value=6),
)
def test_402g_and_415c_agree_with_an_independent_calculation(year, age, monthly_pay, pretax_pct, after_tax, match_pct,
                                                             rulebook, limits, engine):
    """A 402(g) or 415(c) finding appears exactly when a plain Decimal calculation says the year breaks the limit."""
    plan = make_plan(match={"tiers": [{"rate": 100, "up_to_percent": match_pct or 1}]} if match_pct else None)
    election = make_election(f"{year - age}-07-01", f"{year}-01-01", {"per_period": monthly_pay},
                             {"pretax": {"percent": pretax_pct}, "after_tax": {"amount": after_tax}})
    findings, _ = run(plan, election, rulebook, limits, engine)

    figures = FIGURES[year]
    g402, catch_up, catch_up_60, c415 = (figures.deferral_402g, figures.catch_up, figures.catch_up_60_63,
                                         figures.annual_additions_415c)
    pay = Decimal(monthly_pay)
    pretax = cents(pay * pretax_pct / 100) * 12
    match = min(cents(pay * pretax_pct / 100), cents(pay * match_pct / 100)) * 12 if match_pct else Decimal(0)
    usable = 0 if age < 50 else (catch_up_60 if (60 <= age <= 63 and catch_up_60) else catch_up)
    catch = min(max(pretax - g402, Decimal(0)), usable)
    additions = pretax - catch + after_tax * 12 + match
    limit_415 = min(Decimal(c415), pay * 12)
    assert ("402g-deferral-limit" in findings) == (pretax > g402 + usable)
    assert ("415c-annual-additions" in findings) == (additions > limit_415)


@SETTINGS
@given(data=st.data())
def test_prescreen_and_engine_decide_every_rule_alike(data, rulebook, engine):
    """The numpy form of each condition fires on exactly the facts durable-rules fires on."""
    types = rulebook.fact_types("period")
    money = st.integers(min_value=0, max_value=10_000_000)
    values = {"money": money, "flag": st.integers(0, 1), "count": st.integers(0, 60),
              "year": st.integers(2023, 2026), "age": st.integers(18, 80)}
    rows = data.draw(st.lists(st.fixed_dictionaries({n: values[t] for n, t in types.items()}), min_size=1, max_size=30))
    # Make near-boundary cases common: copy a limit into the amount compared with it, plus or minus a cent.
    for row in rows:
        nudge = data.draw(st.sampled_from([-1, 0, 1]))
        row["ytd_deferrals_all_plans"] = row["deferral_limit"] + nudge
        row["ytd_annual_additions"] = row["annual_additions_limit"] + nudge
    fired = set(engine["period"].fire(rows))
    columns = {n: np.array([r[n] for r in rows], dtype=np.int64) for n in types}
    for rule in rulebook.rules["period"]:
        mask = evaluate_columns(rule.condition, columns)
        assert {i for i in range(len(rows)) if mask[i]} == {i for i, r in fired if r == rule.id}, rule.id


@SETTINGS
@given(
    year=st.sampled_from([2024, 2025, 2026]),
    age=st.integers(min_value=40, max_value=66),
    monthly_pay=st.integers(min_value=1000, max_value=40000),
    pretax_pct=st.integers(min_value=0, max_value=80),
    after_tax=st.integers(min_value=1, max_value=9000),
    match_pct=st.integers(min_value=0, max_value=6),
    max_deferral=st.sampled_from([None, 10, 50]),
    paid_before=st.integers(min_value=0, max_value=30000),
)
def test_an_elections_own_unmatched_after_tax_leaves_its_after_tax_room_unchanged(
        year, age, monthly_pay, pretax_pct, after_tax, match_pct, max_deferral, paid_before, rulebook, limits, engine):
    """The room is the 415(c) limit less the additions other than after-tax: electing after-tax money the plan does
    not match (however much, over the limit or not) changes none of them, catch-up included."""
    contributions = {"pretax": True, "roth": True, "after_tax": True}
    if max_deferral is not None:
        contributions["max_deferral_percent"] = max_deferral
    plan = make_plan(contributions=contributions,
                     match={"tiers": [{"rate": 100, "up_to_percent": match_pct}]} if match_pct else None)
    terms = {"start_date": f"{year}-04-01", "pretax": {"percent": pretax_pct}}
    ytd = {"pretax": paid_before, "after_tax": paid_before // 3}
    without = make_election(f"{year - age}-07-01", terms["start_date"], {"per_period": monthly_pay},
                            {"pretax": terms["pretax"]}, year_to_date=ytd)
    with_after_tax = make_election(f"{year - age}-07-01", terms["start_date"], {"per_period": monthly_pay},
                                   {"pretax": terms["pretax"], "after_tax": {"amount": after_tax}}, year_to_date=ytd)
    room = run(plan, without, rulebook, limits, engine)[1]["after_tax_room"]
    assert run(plan, with_after_tax, rulebook, limits, engine)[1]["after_tax_room"] == room


@given(st.lists(st.integers(min_value=-9_999_999_999, max_value=9_999_999_999), max_size=50))
def test_money_formatted_a_column_at_a_time_is_each_value_formatted(cents):
    """The batch's column formatting of year-to-date amounts is the exact dollar text, sign and cents included."""
    from plancheck.money import format_cents, format_cents_column
    assert format_cents_column(np.array(cents, dtype=np.int64)) == [format_cents(c) for c in cents]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_rules_findings_built_together_are_each_built_alone(rulebook, data):
    """The batch's columnar finding builder gives, event for event, what build_finding().as_event() gives."""
    from plancheck.findings import build_finding, finding_events
    rule = data.draw(st.sampled_from([r for r in rulebook.rules["period"] if r.report]))
    types = rulebook.fact_types("period")
    names = sorted({n for n in types if n in rule.placeholders} | {rule.report.amount}
                   | ({rule.report.limit} if rule.report.limit else set()))
    n = data.draw(st.integers(min_value=1, max_value=5))
    value = st.integers(min_value=-10**11, max_value=10**11)
    columns = {name: data.draw(st.lists(value, min_size=n, max_size=n)) for name in names}
    contexts = [{"plan_id": "p", "employee_id": data.draw(st.text(max_size=8)), "year": 2026, "period": i + 1,
                 "pay_date": "2026-01-02", "line": i + 2} for i in range(n)]
    extras = [{"ytd": {"compensation": str(i)}} for i in range(n)]
    together = finding_events(rule, {k: np.array(v, dtype=np.int64) for k, v in columns.items()}, types, contexts, extras)
    alone = [build_finding(rule, {k: v[i] for k, v in columns.items()}, types, contexts[i], extras[i]).as_event()
             for i in range(n)]
    assert together == alone
    assert [list(e) for e in together] == [list(e) for e in alone], "the same keys in the same order"
