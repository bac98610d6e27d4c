"""Pay-period facts: year-to-date figures and the limits that apply, one record per pay date.

One vectorized implementation serves both uses: an election (one employee-year, projected)
and a batch (many employee-years, actual deposits). All arithmetic is int64 cents, rates in
parts per million rounded half up, so the numbers are exact and identical in both uses.

Conventions a reader of findings needs (also in README):
* Deferrals made in other employers' plans this year count from the first period (402(g) is
  per person, 401(a)(30)).
* Catch-up is the part of the year's deferrals above the 402(g) limit, up to the catch-up limit
  the participant can use in this plan. Within a period that is both Roth and pretax, Roth is
  treated as the catch-up first (the most favourable reading for the Roth catch-up rule).
* 401(a)(17): pay counts toward plan compensation until year-to-date pay reaches the limit.
* 415(c) compensation is the year's pay in the input (the projected year for an election, the
  pay in the feed for a batch), capped by 401(a)(17).
* Match: per-period plans must deposit the per-period formula; annual-basis plans may deposit
  anything between the per-period formula and the annual formula on year-to-date figures (a
  true-up brings them to the annual figure). One cent per period is tolerated for rounding.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .limits import LimitTable
from .money import PPM, apply_rate
from .plan_arrays import PlanArrays

I64 = np.int64
#: Amount sources of a pay period, in the order used across the code base.
AMOUNTS = ("compensation", "pretax", "roth", "after_tax", "employer_match", "employer_nonelective")


@dataclass
class PeriodRows:
    """Pay periods of one or more employee-years: each group's rows contiguous, in pay-date order."""

    group_start: np.ndarray            # (G,) index of each group's first row
    plan_index: np.ndarray             # (G,) row of the plan in PlanArrays
    year: np.ndarray                   # (G,)
    age: np.ndarray                    # (G,) age attained by December 31 of the year
    prior_year_fica_wages: np.ndarray  # (G,) cents
    other_plan_deferrals: np.ndarray   # (G,) cents, this year, in other employers' plans
    period: np.ndarray                 # (N,) pay period number shown in findings
    amounts: dict[str, np.ndarray]     # (N,) per AMOUNTS; employer_match / employer_nonelective may be absent
    before: dict[str, np.ndarray] = field(default_factory=dict)  # (G,) amounts paid this year before the first row
    closes_year: np.ndarray | None = None  # (G,) bool: the last row is the year's last pay date


def plan_compensation(pay: np.ndarray, paid_before: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """The part of each period's pay that counts under 401(a)(17), given pay earlier in the year."""
    return np.clip(limit - paid_before, 0, pay)


def _tiered_match(pay: np.ndarray, matched: np.ndarray, plan: np.ndarray, plans: PlanArrays) -> np.ndarray:
    """Match formula: each tier matches `rate` of deferrals between the previous and its own % of pay."""
    units = np.zeros(len(pay), dtype=I64)
    low = np.zeros(len(pay), dtype=I64)
    for tier in range(plans.match_rate_ppm.shape[1]):
        high = apply_rate(pay, plans.match_upto_ppm[plan, tier])
        units += np.clip(matched - low, 0, np.maximum(high - low, 0)) * plans.match_rate_ppm[plan, tier]
        low = high
    return np.where(plans.has_match[plan] == 1, (units + PPM // 2) // PPM, 0)


def build_period_facts(rows: PeriodRows, plans: PlanArrays, limits: LimitTable) -> dict[str, np.ndarray]:
    """Every period fact (rules/facts/period.yaml) as int64 columns, one entry per row."""
    n = len(rows.period)
    starts = rows.group_start
    groups = len(starts)
    counts = np.diff(np.append(starts, n))
    gid = np.repeat(np.arange(groups), counts)
    is_first = np.zeros(n, dtype=bool)
    is_first[starts] = True
    zero_g = np.zeros(groups, dtype=I64)

    def before(name: str) -> np.ndarray:
        return rows.before.get(name, zero_g)

    def ytd(values: np.ndarray, start: np.ndarray = zero_g) -> np.ndarray:
        total = np.cumsum(values)
        return total - (total - values)[starts][gid] + start[gid]

    def previous(running: np.ndarray, start: np.ndarray) -> np.ndarray:
        out = np.empty_like(running)
        out[1:] = running[:-1]
        out[starts] = start
        return out

    # Limits of each group's year; -1 where a limit is not in force that year.
    years, year_of_group = np.unique(rows.year, return_inverse=True)
    by_year = [limits.for_year(int(y)) for y in years]

    def limit(attr: str) -> np.ndarray:
        values = np.array([-1 if getattr(v, attr) is None else getattr(v, attr) for v in by_year], dtype=I64)
        return values[year_of_group] if groups else zero_g

    p = rows.plan_index
    age = rows.age.astype(I64)
    prior_fica = rows.prior_year_fica_wages.astype(I64)
    other = rows.other_plan_deferrals.astype(I64)
    limit_402g, limit_415c, limit_401a17 = limit("deferral_402g"), limit("annual_additions_415c"), limit("compensation_401a17")
    catch_up_60_63 = limit("catch_up_60_63")
    roth_threshold = limit("roth_catch_up_wages")
    hce_prior = limit("hce_414q_prior_year")

    eligible = age >= int(limits.parameter("catch_up_eligibility_age"))
    in_band = ((age >= int(limits.parameter("catch_up_age_60_63_first")))
               & (age <= int(limits.parameter("catch_up_age_60_63_last"))))
    enhanced = in_band & (plans.catch_up_60_63[p] == 1) & (catch_up_60_63 >= 0)
    catch_up_limit = np.where(eligible, np.where(enhanced, catch_up_60_63, limit("catch_up")), 0)
    roth_catch_up_applies = (roth_threshold >= 0) & (prior_fica > roth_threshold)
    available = eligible & (plans.catch_up_offered[p] == 1) & ~(roth_catch_up_applies & (plans.allows_roth[p] == 0))
    usable_catch_up = np.where(available, catch_up_limit, 0)
    deferral_limit = limit_402g + usable_catch_up

    amounts = {k: rows.amounts[k].astype(I64) for k in ("compensation", "pretax", "roth", "after_tax")}
    comp, pretax, roth, after_tax = (amounts[k] for k in ("compensation", "pretax", "roth", "after_tax"))
    comp_total = (np.add.reduceat(comp, starts) if n else zero_g) + before("compensation")
    compensation_415 = np.minimum(comp_total, limit_401a17)

    ytd_comp = ytd(comp, before("compensation"))
    plan_comp = plan_compensation(comp, ytd_comp - comp, limit_401a17[gid])
    ytd_plan_comp = ytd(plan_comp, np.minimum(before("compensation"), limit_401a17))
    ytd_pretax = ytd(pretax, before("pretax"))
    ytd_roth = ytd(roth, before("roth"))
    ytd_after_tax = ytd(after_tax, before("after_tax"))
    ytd_deferrals = ytd_pretax + ytd_roth
    ytd_all = ytd_deferrals + other[gid]

    def catch_up_of(deferred_here: np.ndarray, deferred_all: np.ndarray, g: np.ndarray) -> np.ndarray:
        return np.minimum(np.clip(deferred_all - limit_402g[g], 0, usable_catch_up[g]), deferred_here)

    all_groups = np.arange(groups)
    before_deferrals = before("pretax") + before("roth")
    ytd_catch_up = catch_up_of(ytd_deferrals, ytd_all, gid)
    catch_up_step = ytd_catch_up - previous(ytd_catch_up, catch_up_of(before_deferrals, before_deferrals + other, all_groups))
    ytd_pretax_catch_up = ytd(np.minimum(pretax, np.maximum(catch_up_step - roth, 0)))

    # Employer match: the plan formula on plan compensation, per period and on year-to-date totals.
    pr = p[gid]
    matched = (pretax * plans.match_pretax[pr] + roth * plans.match_roth[pr] + after_tax * plans.match_after_tax[pr]
               - np.where(plans.match_catch_up[pr] == 1, 0, catch_up_step))
    matched = np.maximum(matched, 0)
    match_period = _tiered_match(plan_comp, matched, pr, plans)
    before_matched = (before("pretax") * plans.match_pretax[p] + before("roth") * plans.match_roth[p]
                      + before("after_tax") * plans.match_after_tax[p])
    per_period_ytd = ytd(match_period, before("employer_match"))
    annual_ytd = _tiered_match(ytd_plan_comp, ytd(matched, before_matched), pr, plans)
    annual = plans.match_annual_basis[pr] == 1
    cap = plans.match_cap[pr]
    low = np.minimum(per_period_ytd, np.where(annual, annual_ytd, per_period_ytd))
    high = np.maximum(per_period_ytd, np.where(annual, annual_ytd, per_period_ytd))
    low, high = (np.where(cap >= 0, np.minimum(x, cap), x) for x in (low, high))

    if "employer_match" in rows.amounts:
        match = rows.amounts["employer_match"].astype(I64)
    else:  # projection: deposit the formula; a true-up plan gets its true-up with the year's last pay
        deposited_ytd = low.copy()
        if rows.closes_year is not None and n:
            last = np.append(starts[1:], n) - 1
            true_up = rows.closes_year & (plans.match_true_up[p] == 1)
            deposited_ytd[last[true_up]] = high[last[true_up]]
        match = deposited_ytd - previous(deposited_ytd, before("employer_match"))
    nonelective_expected = apply_rate(plan_comp, plans.nonelective_ppm[pr])
    nonelective = (rows.amounts["employer_nonelective"].astype(I64)
                   if "employer_nonelective" in rows.amounts else nonelective_expected)
    ytd_match = ytd(match, before("employer_match"))
    ytd_nonelective = ytd(nonelective, before("employer_nonelective"))
    ordinal = np.arange(n, dtype=I64) - starts[gid] + 1

    max_deferral, max_after_tax = plans.max_deferral_ppm[pr], plans.max_after_tax_ppm[pr]
    deferrals = pretax + roth

    def flag(values: np.ndarray) -> np.ndarray:
        return values.astype(I64)

    group_facts = {
        "year": rows.year.astype(I64),
        "age": age,
        "catch_up_eligible": flag(eligible),
        "catch_up_available": flag(available),
        "roth_catch_up_applies": flag(roth_catch_up_applies),
        "prior_year_hce": flag((hce_prior >= 0) & (prior_fica > hce_prior)),
        "plan_allows_pretax": plans.allows_pretax[p],
        "plan_allows_roth": plans.allows_roth[p],
        "plan_allows_after_tax": plans.allows_after_tax[p],
        "plan_offers_catch_up": plans.catch_up_offered[p],
        "plan_has_deferral_max": flag(plans.max_deferral_ppm[p] >= 0),
        "plan_has_after_tax_max": flag(plans.max_after_tax_ppm[p] >= 0),
        "plan_has_match": plans.has_match[p],
        "limit_402g": limit_402g,
        "catch_up_limit": catch_up_limit.astype(I64),
        "deferral_limit": deferral_limit.astype(I64),
        "limit_415c": limit_415c,
        "limit_401a17": limit_401a17,
        "compensation_415": compensation_415,
        "annual_additions_limit": np.minimum(limit_415c, compensation_415),
        "prior_year_fica_wages": prior_fica,
        "other_plan_deferrals": other,
    }
    facts = {name: values[gid] for name, values in group_facts.items()}
    facts.update({
        "period": rows.period.astype(I64),
        "compensation": comp,
        "plan_compensation": plan_comp,
        "ytd_compensation": ytd_comp,
        "pretax": pretax,
        "roth": roth,
        "after_tax": after_tax,
        "deferrals": deferrals,
        "employee_contributions": deferrals + after_tax,
        "employer_match": match,
        "employer_nonelective": nonelective,
        "ytd_pretax": ytd_pretax,
        "ytd_roth": ytd_roth,
        "ytd_after_tax": ytd_after_tax,
        "ytd_deferrals": ytd_deferrals,
        "ytd_deferrals_all_plans": ytd_all,
        "ytd_catch_up": ytd_catch_up,
        "ytd_pretax_catch_up": ytd_pretax_catch_up,
        "ytd_employer_match": ytd_match,
        "ytd_employer_nonelective": ytd_nonelective,
        "ytd_annual_additions": ytd_deferrals - ytd_catch_up + ytd_after_tax + ytd_match + ytd_nonelective,
        "match_expected": match_period,
        "ytd_match_expected": np.clip(ytd_match, low, high),
        "match_tolerance": ordinal * limits.cents("match_rounding_tolerance"),
        "deferral_cap": np.where(max_deferral >= 0, apply_rate(comp, np.maximum(max_deferral, 0)), comp),
        "after_tax_cap": np.where(max_after_tax >= 0, apply_rate(comp, np.maximum(max_after_tax, 0)), comp),
    })
    return facts
