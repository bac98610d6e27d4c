"""Mid-year preview: project a year-to-date census to year end and find each HCE's room.

Projection: pay continues at the year-to-date pay per pay date over the plan's remaining pay
dates (schedule.py) up to a termination date; each contribution continues at the employee's
current election (percent of pay), or at the year-to-date rate where none is given; deferrals
stop at 402(g) plus the catch-up the plan allows, after-tax money at the 415(c) room; the
match follows the plan's formula on the year's totals.

Room: one cap for all HCEs of a plan, the largest ratio L such that the test still passes even
if every HCE contributes up to L of projected pay for the rest of the year (what they already
contributed stays; nobody goes above the law's limits). A sponsor who caps HCE elections at L
cannot fail the test on the projection, whatever the HCEs elect below it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

import numpy as np

from plancheck.documents.census import Census
from plancheck.documents.plan import Plan
from plancheck.facts.calendar import day_number
from plancheck.facts.leveling import WHOLE, average, highest_level, ratios
from plancheck.facts.nondiscrimination import is_safe_harbor, match_formula, match_meets_401m11
from plancheck.facts.schedule import pay_dates
from plancheck.facts.yearend import YearendFacts
from plancheck.money import apply_rate
from plancheck.rulebook.limits import LimitTable

#: Election column of each employee contribution projected.
_ELECTED = {"pretax": "election_pretax_percent", "roth": "election_roth_percent",
            "after_tax": "election_after_tax_percent"}


@dataclass
class Projection:
    """Year-to-date figures, the projected census, and pay dates per row."""

    ytd: Census
    projected: Census
    periods_elapsed: np.ndarray
    periods_remaining: np.ndarray
    remaining_pay: np.ndarray


def _round_div(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    safe = np.where(denominator > 0, denominator, 1)
    return np.where(denominator > 0, (2 * numerator + safe) // (2 * safe), 0)


def project(census: Census, plans: list[Plan], limits: LimitTable, as_of: dt.date) -> Projection:
    """The census as it would stand on December 31 if everyone kept their current elections."""
    year = as_of.year
    figures = limits.for_year(year)
    n = census.rows
    elapsed = np.zeros(n, np.int64)
    remaining = np.zeros(n, np.int64)
    cutoff = day_number(as_of)
    for code, plan in enumerate(plans):
        rows = np.flatnonzero(census.plan == code)
        days = np.array([day_number(d) for d in pay_dates(plan.payroll, year)], dtype=np.int64)
        done = np.searchsorted(days, cutoff, side="right")
        elapsed[rows] = done - np.searchsorted(days, census.hire[rows], side="left")
        last = np.searchsorted(days, np.minimum(census.termination[rows], days[-1] if len(days) else 0), side="right")
        remaining[rows] = np.maximum(last - done, 0)
    elapsed = np.maximum(elapsed, 0)
    ytd_pay = census.compensation
    remaining_pay = _round_div(ytd_pay * remaining, elapsed)
    pay = np.minimum(ytd_pay + remaining_pay, figures.compensation_401a17)
    money = dict(census.money)
    for source, column in _ELECTED.items():
        elected = census.elections[column]
        at_rate = _round_div(census.money[source] * remaining_pay, ytd_pay)
        money[source] = census.money[source] + np.where(elected >= 0, apply_rate(remaining_pay, np.maximum(elected, 0)),
                                                        at_rate)
    # Payroll stops deferrals at 402(g) plus catch-up, as the batch checks it would.
    ages = year - census.birth.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) - 1970
    offered = np.array([p.catch_up.offered for p in plans], dtype=bool)[census.plan] if n else np.zeros(0, bool)
    ceiling = figures.deferral_402g + np.where(offered & (ages >= int(limits.parameter("catch_up_eligibility_age"))),
                                               figures.catch_up, 0)
    deferrals = money["pretax"] + money["roth"]
    ytd_deferrals = census.money["pretax"] + census.money["roth"]
    allowed = np.maximum(ceiling, ytd_deferrals)
    over = np.maximum(deferrals - allowed, 0)
    cut_roth = np.minimum(over, np.maximum(money["roth"] - census.money["roth"], 0))
    money["roth"] = money["roth"] - cut_roth
    money["pretax"] = money["pretax"] - (over - cut_roth)
    matched_match = np.zeros(n, np.int64)
    for code, plan in enumerate(plans):
        rows = np.flatnonzero(census.plan == code)
        if plan.match is not None:
            matched = sum(money[s][rows] for s in plan.match.sources)
            matched_match[rows] = np.maximum(match_formula(plan, pay[rows], matched), census.money["employer_match"][rows])
        else:
            matched_match[rows] = census.money["employer_match"][rows]
    money["employer_match"] = matched_match
    money["employer_nonelective"] = _round_div(census.money["employer_nonelective"] * (ytd_pay + remaining_pay),
                                               np.where(ytd_pay > 0, ytd_pay, 1))
    room_415 = np.minimum(figures.annual_additions_415c, pay) - (money["pretax"] + money["roth"]) \
        - money["employer_match"] - money["employer_nonelective"]
    money["after_tax"] = np.maximum(np.minimum(money["after_tax"], np.maximum(room_415, 0)), census.money["after_tax"])
    projected = replace(census, compensation=ytd_pay + remaining_pay, money={**money, "account_balance": census.money["account_balance"]})
    return Projection(census, projected, elapsed, remaining, remaining_pay)


def _clip_amount(level: int, pay: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    return np.clip((2 * pay * level + WHOLE) // (2 * WHOLE), low, high)


def hce_room(projection: Projection, facts: YearendFacts, plans: list[Plan], limits: LimitTable) -> list[dict]:
    """Per HCE: the cap that keeps both tests passing and the deferral and after-tax room it leaves."""
    figures = facts.figures
    ytd, projected, e = projection.ytd, projection.projected, facts.employees
    out: list[dict] = []
    for plan_facts in facts.plans:
        plan, rows, f = plan_facts.plan, plan_facts.rows, plan_facts.facts
        hce_rows = rows[e.eligible[rows] & e.hce[rows]]
        if not len(hce_rows):
            continue
        pay = e.plan_pay[hce_rows]
        ytd_deferrals = ytd.money["pretax"][hce_rows] + ytd.money["roth"][hce_rows]
        catch_up = e.catch_up_limit[hce_rows]
        # ADP: deferrals the test counts stop at 402(g) (the rest is catch-up) and at pay.
        low = np.minimum(ytd_deferrals, figures.deferral_402g)
        high = np.maximum(np.minimum(figures.deferral_402g, ytd_deferrals + projection.remaining_pay[hce_rows]), low)
        if f["adp_tested"]:
            adp_cap = highest_level(ratios(low, pay), ratios(high, pay), f["adp_limit"])
            adp_amount = _clip_amount(adp_cap, pay, low, high) if adp_cap < WHOLE else high
        else:
            adp_cap, adp_amount = WHOLE, high
        year_deferrals = adp_amount + np.minimum(catch_up, np.maximum(ytd_deferrals + projection.remaining_pay[hce_rows]
                                                                      - adp_amount, 0))
        year_deferrals = np.maximum(year_deferrals, ytd_deferrals)
        # ACP: the match at those deferrals, plus after-tax money up to the 415(c) room.
        counts_match = plan.match is not None and not (is_safe_harbor(plan) and match_meets_401m11(plan))
        match = np.maximum(match_formula(plan, pay, year_deferrals), ytd.money["employer_match"][hce_rows]) \
            if plan.match is not None else ytd.money["employer_match"][hce_rows]
        ytd_after_tax = ytd.money["after_tax"][hce_rows]
        nonelective = projected.money["employer_nonelective"][hce_rows]
        room_415 = np.maximum(np.minimum(figures.annual_additions_415c, pay) - (year_deferrals - np.minimum(
            catch_up, np.maximum(year_deferrals - figures.deferral_402g, 0))) - match - nonelective, 0)
        max_after_tax = np.maximum(np.minimum(room_415, ytd_after_tax + projection.remaining_pay[hce_rows])
                                   if plan.contributions.after_tax else ytd_after_tax, ytd_after_tax)
        counted_match = match if counts_match else 0
        low_acp, high_acp = counted_match + ytd_after_tax, counted_match + max_after_tax
        if f["acp_tested"]:
            acp_cap = highest_level(ratios(low_acp, pay), ratios(high_acp, pay), f["acp_limit"])
            acp_amount = _clip_amount(acp_cap, pay, low_acp, high_acp) if acp_cap < WHOLE else high_acp
        else:
            acp_cap, acp_amount = WHOLE, high_acp
        year_after_tax = acp_amount - counted_match
        for i, row in enumerate(hce_rows.tolist()):
            periods = int(projection.periods_remaining[row])
            more_deferral = max(int(year_deferrals[i] - ytd_deferrals[i]), 0)
            more_after_tax = max(int(year_after_tax[i] - ytd_after_tax[i]), 0)
            out.append({
                "plan_id": plan.plan_id, "employee_id": str(ytd.employee_id[row]), "line": int(ytd.line[row]),
                "periods_remaining": periods, "projected_compensation": int(projected.compensation[row]),
                "adp_cap": adp_cap, "acp_cap": acp_cap,
                "adp_can_pass": not f["adp_tested"] or average(ratios(low, pay)) <= f["adp_limit"],
                "acp_can_pass": not f["acp_tested"] or average(ratios(low_acp, pay)) <= f["acp_limit"],
                "year_end_deferrals": int(year_deferrals[i]), "remaining_deferral": more_deferral,
                "remaining_deferral_per_period": more_deferral // periods if periods else 0,
                "year_end_after_tax": int(year_after_tax[i]), "remaining_after_tax": more_after_tax,
                "remaining_after_tax_per_period": more_after_tax // periods if periods else 0,
            })
    return out
