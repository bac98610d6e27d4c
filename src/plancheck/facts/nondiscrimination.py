"""The ADP and ACP tests of one plan and their corrections, and the plan designs that decide what they
count: the safe harbor, a 401(m)(11) match, the match formula on a year's totals, the 416(g)(4)(H)
top-heavy exemption. Ratios are integers in hundredths of a percent (see leveling.py)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from plancheck.documents.census import Census
from plancheck.documents.plan import Plan
from plancheck.facts.figures import Figures
from plancheck.facts.leveling import allocate_by_amount, average, excess_by_ratio, ratios, test_limits
from plancheck.money import apply_rate

if TYPE_CHECKING:
    from plancheck.facts.employees import Employees


def match_meets_401m11(plan: Plan) -> bool:
    """A match that 401(m)(11)(B) lets a safe-harbor plan leave out of the ACP test: no match on
    contributions above 6% of pay, and a rate that does not rise with the rate of deferral.
    (Equal rates for HCEs and NHCEs follow from one formula for all.)"""
    if plan.match is None:
        return False
    rates = [tier.rate for tier in plan.match.tiers]
    return (plan.match.tiers[-1].up_to_percent <= 60_000 and all(b <= a for a, b in zip(rates, rates[1:]))
            and "after_tax" not in plan.match.sources)


def is_safe_harbor(plan: Plan) -> bool:
    return plan.safe_harbor != "none" or bool(plan.nonelective and plan.nonelective.safe_harbor)


def match_formula(plan: Plan, pay: np.ndarray, matched: np.ndarray) -> np.ndarray:
    """The plan's match on a year's totals: each tier's rate on deferrals up to its share of pay."""
    if plan.match is None:
        return np.zeros(len(pay), dtype=np.int64)
    total = np.zeros(len(pay), dtype=np.int64)
    low = np.zeros(len(pay), dtype=np.int64)
    for tier in plan.match.tiers:
        high = apply_rate(pay, tier.up_to_percent)
        total += apply_rate(np.clip(matched - low, 0, np.maximum(high - low, 0)), tier.rate)
        low = high
    if plan.match.annual_cap is not None:
        total = np.minimum(total, plan.match.annual_cap)
    return total


def _nhce_figure(plan: Plan, current: int, prior: int | None, figures: Figures) -> int:
    testing = plan.nondiscrimination_testing
    if testing.method == "current_year":
        return current
    if testing.first_plan_year:
        return figures.first_year_nhce
    return (prior or 0) // 100


def _leveled(amounts: np.ndarray, own: np.ndarray, pay: np.ndarray, limit: int) -> np.ndarray:
    """Each HCE's excess: the total found by lowering the highest ratios, taken from the most dollars (ratios and
    dollars the employer-wide ones, less what earlier plans took), at most what the HCE contributed to this plan."""
    total = int(excess_by_ratio(amounts, pay, ratios(amounts, pay), limit).sum())
    return np.minimum(allocate_by_amount(amounts, total), own)


def adp_test(census: Census, plan: Plan, rows: np.ndarray, figures: Figures, emp: Employees, adp_total: np.ndarray,
         ratio_pay: np.ndarray, unused_catch_up: np.ndarray) -> dict[str, int]:
    """The plan's ADP test and its correction (recharacterization, distribution, the match forfeited)."""
    testing = plan.nondiscrimination_testing
    money = {k: v[rows] for k, v in census.money.items()}
    pay = emp.plan_pay[rows]
    eligible, hce = emp.eligible[rows], emp.hce[rows]
    hce_rows, nhce_rows = eligible & hce, eligible & ~hce
    adr = emp.adr[rows]
    nhce_adp = _nhce_figure(plan, average(adr[nhce_rows]), testing.prior_year_nhce_adp, figures)
    hce_adp = average(adr[hce_rows])
    adp_limit, adp_basic, adp_alternative = test_limits(nhce_adp, figures.basic, figures.alternative, figures.spread)
    adp_tested = not is_safe_harbor(plan) and hce_rows.any() and (nhce_rows.any() or testing.method == "prior_year")
    adp_excess = np.zeros(len(rows), np.int64)
    if adp_tested and hce_adp > adp_limit:
        adp_excess[hce_rows] = _leveled(adp_total[rows][hce_rows], emp.adp_amount[rows][hce_rows],
                                        ratio_pay[rows][hce_rows], adp_limit)
    recharacterized = np.minimum(adp_excess, unused_catch_up)
    # Excess deferrals already distributed reduce the excess contributions to distribute (1.401(k)-2(b)(4)).
    adp_distribution = np.maximum(adp_excess - recharacterized - emp.excess_deferral[rows], 0)
    # The match on distributed deferrals is forfeited (401(k)(8)(E), 411(a)(3)(G)).
    matched = np.zeros(len(rows), np.int64)
    if plan.match is not None:
        for source in plan.match.sources:
            matched += money[source]
    distributed = emp.excess_deferral[rows] + adp_distribution
    forfeited = np.minimum(money["employer_match"], np.maximum(
        match_formula(plan, pay, matched) - match_formula(plan, pay, np.maximum(matched - distributed, 0)), 0))
    forfeited = np.where(distributed > 0, forfeited, 0)
    emp.adp_excess[rows], emp.recharacterized[rows] = adp_excess, recharacterized
    emp.adp_distribution[rows], emp.match_forfeited[rows] = adp_distribution, forfeited
    return {"adp_tested": int(adp_tested), "hce_adp": hce_adp, "nhce_adp": nhce_adp, "adp_limit": adp_limit,
            "adp_limit_basic": adp_basic, "adp_limit_alternative": adp_alternative,
            "adp_excess": int(adp_excess.sum()), "adp_recharacterized": int(recharacterized.sum()),
            "adp_distributed": int(adp_distribution.sum()), "match_forfeited": int(forfeited.sum())}


def counts_match(plan: Plan) -> bool:
    """The ACP test counts the plan's match: there is one, and it is not a 401(m)(11) safe-harbor match."""
    return plan.match is not None and not (is_safe_harbor(plan) and match_meets_401m11(plan))


def acp_test(census: Census, plan: Plan, rows: np.ndarray, figures: Figures, emp: Employees, acp_total: np.ndarray,
         ratio_pay: np.ndarray) -> dict[str, int]:
    """The plan's ACP test (match unless a 401(m)(11) safe-harbor match, and after-tax money) and its correction."""
    testing = plan.nondiscrimination_testing
    after_tax = census.money["after_tax"][rows]
    eligible, hce = emp.eligible[rows], emp.hce[rows]
    hce_rows, nhce_rows = eligible & hce, eligible & ~hce
    acp_amount, acr = emp.acp_amount[rows], emp.acr[rows]
    nhce_acp = _nhce_figure(plan, average(acr[nhce_rows]), testing.prior_year_nhce_acp, figures)
    hce_acp = average(acr[hce_rows])
    acp_limit, acp_basic, acp_alternative = test_limits(nhce_acp, figures.basic, figures.alternative, figures.spread)
    acp_applies = counts_match(plan) or plan.contributions.after_tax or bool(after_tax.any())
    acp_tested = acp_applies and hce_rows.any() and (nhce_rows.any() or testing.method == "prior_year")
    acp_excess = np.zeros(len(rows), np.int64)
    if acp_tested and hce_acp > acp_limit:
        acp_excess[hce_rows] = _leveled(acp_total[rows][hce_rows], acp_amount[hce_rows], ratio_pay[rows][hce_rows],
                                        acp_limit)
    # After-tax contributions (unmatched) come back first, then the match.
    from_after_tax = np.minimum(acp_excess, after_tax)
    emp.acp_excess[rows], emp.acp_from_after_tax[rows] = acp_excess, from_after_tax
    emp.acp_from_match[rows] = acp_excess - from_after_tax
    return {"acp_tested": int(acp_tested), "acp_match_exempt": int(plan.match is not None and not counts_match(plan)),
            "hce_acp": hce_acp, "nhce_acp": nhce_acp, "acp_limit": acp_limit, "acp_limit_basic": acp_basic,
            "acp_limit_alternative": acp_alternative, "acp_excess": int(acp_excess.sum())}


def top_heavy_exempt(plan: Plan, after_tax: np.ndarray, nonelective: np.ndarray) -> bool:
    """416(g)(4)(H): a plan that consists solely of deferrals and safe-harbor money for the year - a safe-harbor
    design (match or nonelective, however the document spells it), a match that meets 401(m)(11) if any, and, in
    the year, no after-tax money and no nonelective contribution beyond the safe-harbor one. Decided year by year
    on what was contributed: a discretionary profit-sharing contribution the document allows but that was not
    made leaves the plan exempt; one made takes it out (Rev. Rul. 2004-13, Situations 1 and 2)."""
    nonelective_is_safe_harbor = plan.safe_harbor_design.is_nonelective
    return (is_safe_harbor(plan) and not after_tax.any()
            and (plan.match is None or not counts_match(plan))
            and (nonelective_is_safe_harbor or not nonelective.any()))
