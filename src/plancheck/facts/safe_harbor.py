"""Safe-harbor formulas (IRC 401(k)(12), (13)) compared with what a plan document writes.

The statutory formulas are cited parameters under rules/parameters (safe_harbor_basic_match,
safe_harbor_qaca_match, ...). A match formula is a list of tiers, `rate` % of deferrals up to
`up_to_percent` % of pay, stacked in order; at a deferral rate of d % of pay it gives

    sum over tiers of rate x (min(d, up_to) - previous up_to), for the tiers below d

percent of pay. Both the plan's formula and the statutory one are piecewise linear in d, with
corners only at tier bounds, so the plan's formula is at least the statutory one at every
deferral rate exactly when it is at every tier bound of either formula (and at 0). plancheck
checks those points and every whole percent up to the highest bound, in integers: rates and
bounds are parts per million, so a match is carried exactly in ppm x ppm until it is shown.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from plancheck.documents.plan import Match, Plan, SafeHarborDesign
from plancheck.money import PPM, apply_rate
from plancheck.rulebook.limits import LimitTable

#: A formula as (rate, up_to_percent) pairs in parts per million (100% is 1_000_000; 3% is 30_000).
Formula = tuple[tuple[int, int], ...]
ONE_PERCENT = 10_000

#: The statutory match each match design is measured against (rules/parameters/<id>.yaml).
REQUIRED_MATCH = {
    SafeHarborDesign.basic_match: "safe_harbor_basic_match",
    SafeHarborDesign.enhanced_match: "safe_harbor_basic_match",
    SafeHarborDesign.qaca_match: "safe_harbor_qaca_match",
}
#: The minimum nonelective contribution of each nonelective design.
REQUIRED_NONELECTIVE = {
    SafeHarborDesign.nonelective: "safe_harbor_nonelective_percent",
    SafeHarborDesign.qaca_nonelective: "safe_harbor_qaca_nonelective_percent",
}


def percent_to_ppm(value: Decimal) -> int:
    """A percentage from a parameter file (3, 4.5) in parts per million of one (30_000, 45_000)."""
    ppm = value * ONE_PERCENT
    if ppm != ppm.to_integral_value():
        raise ValueError(f"percentage {value} has more than four decimals")
    return int(ppm)


def parameter_percent(limits: LimitTable, parameter_id: str) -> int:
    """A single-valued percent parameter in parts per million."""
    return percent_to_ppm(limits.parameter(parameter_id))


def parameter_formula(limits: LimitTable, parameter_id: str) -> Formula:
    """A tiered percent parameter (a statutory match formula) in parts per million."""
    tiers = limits.parameters[parameter_id].tiers
    if tiers is None:
        raise ValueError(f"parameter {parameter_id} must give tiers, not a single value")
    return tuple((percent_to_ppm(t.rate), percent_to_ppm(t.up_to_percent)) for t in tiers)


def plan_formula(match: Match) -> Formula:
    """A plan's match formula in parts per million (the plan model already holds ppm)."""
    return tuple((t.rate, t.up_to_percent) for t in match.tiers)


def match_at(formula: Formula, deferral: int) -> int:
    """The match at a deferral rate (ppm of pay), exactly, in ppm x ppm of pay (divide by PPM for ppm)."""
    total, low = 0, 0
    for rate, high in formula:
        if deferral <= low:
            break
        total += rate * (min(deferral, high) - low)
        low = high
    return total


def deferral_levels(*formulas: Formula) -> list[int]:
    """0, every tier bound of the formulas, and every whole percent up to the highest bound."""
    bounds = {high for formula in formulas for _, high in formula}
    top = max(bounds, default=0)
    return sorted({0, *bounds, *range(0, top + 1, ONE_PERCENT)})


def _ppm(exact: int) -> int:
    """ppm x ppm to ppm, rounded half up (for display only; comparisons use the exact value)."""
    return (exact + PPM // 2) // PPM


@dataclass(frozen=True)
class Shortfall:
    """Where a plan's match falls furthest below the statutory one (all in ppm of pay)."""

    deferral: int
    given: int
    required: int


def largest_shortfall(plan: Formula, required: Formula) -> Shortfall | None:
    """The deferral rate at which the plan's match is furthest below the required one (lowest such rate).

    None when the plan's match is at least the required one at every deferral rate.
    """
    worst: tuple[int, int] | None = None  # (exact shortfall, deferral)
    for level in deferral_levels(plan, required):
        short = match_at(required, level) - match_at(plan, level)
        if short > 0 and (worst is None or short > worst[0]):
            worst = (short, level)
    if worst is None:
        return None
    level = worst[1]
    return Shortfall(level, _ppm(match_at(plan, level)), _ppm(match_at(required, level)))


def rate_increases(formula: Formula) -> bool:
    """A later tier matches at a higher rate than an earlier one (401(k)(12)(B)(iii)(I) forbids it)."""
    rates = [rate for rate, _ in formula]
    return any(later > earlier for earlier, later in zip(rates, rates[1:]))


def match_at_pay(formula: Formula, pay: int) -> int:
    """The largest match (cents) a formula gives on `pay` cents, each tier's pay bound rounded half up."""
    total, low = 0, 0
    for rate, up_to in formula:
        high = apply_rate(pay, up_to)
        total += apply_rate(high - low, rate)
        low = high
    return total


#: The plan facts safe_harbor_facts builds (part of audit.BUILT_FACTS).
SAFE_HARBOR_FACTS = frozenset({
    "safe_harbor_match_design", "safe_harbor_nonelective_design", "safe_harbor_match_short",
    "safe_harbor_match_short_at", "safe_harbor_match_given", "safe_harbor_match_required",
    "safe_harbor_match_rate_increases", "match_highest_matched_percent", "safe_harbor_match_max_pay_percent",
    "match_covers_pretax", "match_covers_roth", "match_matches_catch_up", "match_has_annual_cap",
    "match_annual_cap", "safe_harbor_match_required_at_pay_limit", "nonelective_percent",
    "safe_harbor_nonelective_minimum",
})


def safe_harbor_facts(plan: Plan, limits: LimitTable, pay_limit: int) -> dict[str, int]:
    """The safe-harbor plan facts (rules/facts/plan.yaml) of a document: exactly SAFE_HARBOR_FACTS.

    `pay_limit` is the 401(a)(17) compensation limit of the plan year in cents (0 when the year
    has no limits), the largest pay a formula applies to.
    """
    design = plan.safe_harbor_design
    match = plan.match
    facts = {
        "safe_harbor_match_design": int(design.is_match),
        "safe_harbor_nonelective_design": int(design.is_nonelective),
        "safe_harbor_match_short": 0,
        "safe_harbor_match_short_at": 0,
        "safe_harbor_match_given": 0,
        "safe_harbor_match_required": 0,
        "safe_harbor_match_rate_increases": 0,
        "match_highest_matched_percent": 0,
        "safe_harbor_match_max_pay_percent": parameter_percent(limits, "safe_harbor_enhanced_match_max_pay_percent"),
        "match_covers_pretax": int(bool(match) and "pretax" in match.sources),
        "match_covers_roth": int(bool(match) and "roth" in match.sources),
        "match_matches_catch_up": int(bool(match) and match.match_catch_up),
        "match_has_annual_cap": int(bool(match) and match.annual_cap is not None),
        "match_annual_cap": (match.annual_cap or 0) if match else 0,
        "safe_harbor_match_required_at_pay_limit": 0,
        "nonelective_percent": plan.nonelective.percent if plan.nonelective else 0,
        "safe_harbor_nonelective_minimum": 0,
    }
    if match:
        formula = plan_formula(match)
        facts["match_highest_matched_percent"] = formula[-1][1]
        if design.is_match:
            required = parameter_formula(limits, REQUIRED_MATCH[design])
            short = largest_shortfall(formula, required)
            if short is not None:
                facts.update(safe_harbor_match_short=1, safe_harbor_match_short_at=short.deferral,
                             safe_harbor_match_given=short.given, safe_harbor_match_required=short.required)
            facts["safe_harbor_match_rate_increases"] = int(rate_increases(formula))
            facts["safe_harbor_match_required_at_pay_limit"] = match_at_pay(required, pay_limit)
    if design.is_nonelective:
        facts["safe_harbor_nonelective_minimum"] = parameter_percent(limits, REQUIRED_NONELECTIVE[design])
    return facts
