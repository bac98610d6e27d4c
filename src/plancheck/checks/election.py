"""Checking one election: fire every period rule on every projected period, report each rule at its
first period, and give the year-end projection, the 402(g) milestones and the after-tax room."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace
from typing import Any

import numpy as np

from plancheck.documents.election import ElectionFile
from plancheck.documents.plan import Plan
from plancheck.engine import Engine
from plancheck.engine.firings import fire_on_rows
from plancheck.engine.prescreen import evaluate_columns
from plancheck.errors import InputError, Problem, shown
from plancheck.facts.period import build_period_facts
from plancheck.facts.plan_arrays import PlanArrays
from plancheck.facts.projection import Projection, project
from plancheck.findings import Finding, build_finding
from plancheck.money import format_cents
from plancheck.rulebook.limits import LimitTable
from plancheck.rulebook.rules import Report, Rulebook


@dataclass
class ElectionResult:
    """Findings, year-end projection and room for one election."""

    findings: list[Finding]
    summary: dict[str, Any]


def _milestone(facts: dict[str, np.ndarray], mask: np.ndarray, dates: list[dt.date]) -> dict[str, Any] | None:
    hits = np.flatnonzero(mask)
    if not len(hits):
        return None
    row = int(hits[0])
    return {"period": int(facts["period"][row]), "pay_date": dates[row].isoformat()}


def _year_end(report: Report, facts: dict[str, np.ndarray], rows: list[int]) -> dict[str, str]:
    """The year's figures of a finding: `year_end_amount` and `year_end_excess` (the year's total excess).

    A running total (report.total year_to_date) is read at the last pay period. A per-period amount
    (per_period) is added up over the year, and its excess over the periods the rule fires on: a
    deferral $200 above the plan's cap in each of 12 periods is $2,400 over for the year, not $200;
    where a year-to-date fact holds the year's excess itself (report.year_excess) it is read instead."""
    amount = facts[report.amount]
    limit = facts[report.limit] if report.limit else np.zeros_like(amount)
    if report.total == "per_period":
        excess = int(np.maximum(amount[rows] - limit[rows], 0).sum())
        if report.year_excess:
            excess = int(facts[report.year_excess][-1])
        return {"year_end_amount": format_cents(int(amount.sum())), "year_end_excess": format_cents(excess)}
    return {"year_end_amount": format_cents(int(amount[-1])), "year_end_excess": format_cents(int(amount[-1] - limit[-1]))}


def _after_tax_room(election: ElectionFile, plan: Plan, limits: LimitTable, arrays: PlanArrays,
                    projection: Projection, facts: dict[str, np.ndarray]) -> dict[str, Any]:
    """Largest after-tax contribution per year and per period that keeps 415(c) whole.

    Worked on the election's one projection: only its after-tax column changes. `facts` are the
    election's own period facts (their after_tax_cap is the plan's % of pay cap). They also give
    the year's figures without the election's after-tax money unless the plan matches after-tax:
    unmatched, after-tax money adds only itself to annual additions (catch-up never depends on it),
    and the room below is the limit less the additions other than after-tax.
    """
    after_tax_cap = facts["after_tax_cap"]
    if not plan.contributions.after_tax:
        return {"year": "0.00", "remaining": "0.00", "per_period": "0.00", "periods": 0,
                "reason": f"plan {plan.plan_id} does not accept after-tax contributions"}
    periods = len(projection.dates)
    matched = bool(plan.match and "after_tax" in plan.match.sources)

    def year_end(per_period: int) -> dict[str, int]:
        if per_period == 0 and not (matched and projection.rows.amounts["after_tax"].any()):
            return {k: int(v[-1]) for k, v in facts.items()}
        amounts = {**projection.rows.amounts, "after_tax": np.full(periods, per_period, dtype=np.int64)}
        trial = build_period_facts(replace(projection.rows, amounts=amounts), arrays, limits)
        return {k: int(v[-1]) for k, v in trial.items()}

    base = year_end(0)
    already = election.employee.year_to_date.after_tax
    limit = base["annual_additions_limit"]
    year_room = max(0, limit - (base["ytd_annual_additions"] - base["ytd_after_tax"]))
    remaining = max(0, year_room - already)
    per_period = remaining // periods
    if matched:
        # After-tax money is matched: more after-tax brings more match, so search the largest that fits.
        low, high = 0, per_period
        while low < high:
            middle = (low + high + 1) // 2
            if year_end(middle)["ytd_annual_additions"] <= limit:
                low = middle
            else:
                high = middle - 1
        per_period = low
        remaining = per_period * periods
        year_room = already + remaining
    room = {"year": format_cents(year_room), "remaining": format_cents(remaining),
            "per_period": format_cents(per_period), "periods": periods,
            "annual_additions_limit": format_cents(limit)}
    if plan.contributions.max_after_tax_percent is not None:
        room["per_period_within_plan_max"] = format_cents(min(per_period, int(after_tax_cap.min())))
    return room


def check_election(election: ElectionFile, plan: Plan, limits: LimitTable, rulebook: Rulebook, engine: Engine,
                   source: str, amounts: dict[str, np.ndarray] | None = None) -> ElectionResult:
    """Fire every period rule on every projected period; report each rule at its first period.

    `amounts` replaces elected columns (pretax, roth, after_tax) with per-period amounts in cents:
    how a schedule that varies by pay period, such as a nearest compliant election, is checked.
    """
    if election.plan_id is not None and election.plan_id != plan.plan_id:
        raise InputError(Problem(source, "plan_id", f"the election is for plan {shown(election.plan_id)} "
                                 f"but was checked against plan {shown(plan.plan_id)}"))
    arrays = PlanArrays.from_plans([plan])
    projection = project(election, plan, limits, source)
    if amounts:
        projection = replace(projection, rows=replace(projection.rows, amounts={**projection.rows.amounts, **amounts}))
    facts = build_period_facts(projection.rows, arrays, limits)
    n = len(projection.dates)
    # The batch's pre-screen: only periods on which some rule's condition may hold go to the engine,
    # which decides (a compliant election usually sends none).
    rules = [rule for rule in rulebook.rules["period"] if "election" in rule.inputs]
    candidates = np.zeros(n, dtype=bool)
    for rule in rules:
        candidates |= evaluate_columns(rule.condition, facts)
    firings = fire_on_rows(engine["period"], facts, np.flatnonzero(candidates)) if candidates.any() else []
    first: dict[str, int] = {}
    fired: dict[str, list[int]] = {}
    for row, rule_id in firings:
        first.setdefault(rule_id, row)
        fired.setdefault(rule_id, []).append(row)
    types = rulebook.fact_types("period")
    employee = election.employee
    findings = []
    for rule in sorted((r for r in rules if r.id in first), key=lambda r: first[r.id]):
        row = first[rule.id]
        at_row = {k: int(v[row]) for k, v in facts.items()}
        extra: dict[str, Any] = {"periods_affected": len(fired[rule.id])}
        if rule.report:
            extra.update(_year_end(rule.report, facts, fired[rule.id]))
        context = {"plan_id": plan.plan_id, "employee_id": employee.id, "year": projection.year,
                   "period": at_row["period"], "pay_date": projection.dates[row].isoformat()}
        findings.append(build_finding(rule, at_row, types, context, extra))
    end = {k: int(v[-1]) for k, v in facts.items()}
    summary = {
        "plan_id": plan.plan_id,
        "employee_id": employee.id,
        "year": projection.year,
        "first_pay_date": projection.dates[0].isoformat(),
        "periods": n,
        "year_end": {name: format_cents(end[fact]) for name, fact in (
            ("compensation", "ytd_compensation"), ("deferrals", "ytd_deferrals"),
            ("deferrals_employer", "ytd_deferrals_employer"), ("deferrals_all_plans", "ytd_deferrals_all_plans"),
            ("catch_up", "ytd_catch_up"),
            ("after_tax", "ytd_after_tax"), ("employer_match", "ytd_employer_match"),
            ("employer_nonelective", "ytd_employer_nonelective"), ("annual_additions", "ytd_annual_additions"),
            ("deferral_limit", "deferral_limit"), ("individual_deferral_limit", "individual_deferral_limit"),
            ("annual_additions_limit", "annual_additions_limit"))},
        "limit_402g_reached": _milestone(facts, facts["ytd_deferrals_all_plans"] >= facts["limit_402g"], projection.dates),
        "deferral_limit_reached": _milestone(facts, facts["ytd_deferrals_all_plans"] >= facts["deferral_limit"],
                                             projection.dates),
        "after_tax_room": _after_tax_room(election, plan, limits, arrays, projection, facts),
    }
    return ElectionResult(findings=findings, summary=summary)
