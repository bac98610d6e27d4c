"""Pay-period facts: year-to-date figures and the limits that apply, one record per pay date.

One vectorized implementation serves both uses: an election (one employee-year, projected)
and a batch (many employee-years, actual deposits). All arithmetic is int64 cents, rates in
parts per million rounded half up, so the numbers are exact and identical in both uses.

Which limit counts which money (README "Conventions behind the figures"):
* 401(a)(30) and 415(c) count the plans of one employer (a controlled group, 414(b)/(c)/(m),
  415(f)); `PeriodRows.employer_other` brings in what the employer's other plans hold. The
  individual's 402(g)(1) limit also counts other employers' deferrals (`other_plan_deferrals`),
  which never make this employer's deferrals catch-up.
* Catch-up (Treas. Reg. 1.414(v)-1(b)(1)) is the part of this employer's deferrals above the
  first applicable limit, up to the catch-up the plan lets the participant use:
  c = min(cl, deferrals, max(0, deferrals - 402(g), deferrals + employer money - 415(c) limit,
  deferrals above the plan's per-period percent cap)). After-tax contributions never turn
  deferrals into catch-up: they are not elective deferrals, and catch-up never enlarges the
  after-tax room.
* Roth catch-up (414(v)(7), T.D. 10033): Roth deferrals made at any time in the year so far count
  toward it, so catch-up made pretax = max(0, catch-up - Roth deferrals year to date).
* Prior-year FICA wages may be unknown (`fica_known`); unknown is not zero.
* 401(a)(17): pay counts toward plan compensation until year-to-date pay reaches the limit.
* 415(c) compensation is the year's pay in the input (the projected year for an election, the
  pay in the feed for a batch; the largest of the employer's plans), capped by 401(a)(17). A
  year with no pay in the input at all is held to the dollar limit alone.
* Match: per-period plans must deposit the per-period formula; annual-basis plans may deposit
  anything between the per-period formula and the annual formula on year-to-date figures (a
  true-up brings them to the annual figure). A cited tolerance per period allows for rounding.
  What a per-period plan's formula gives less than the annual formula on the same year-to-date
  pay and deferrals is the match a participant loses by the timing of deferrals (front-loading).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from plancheck.facts.plan_arrays import PlanArrays
from plancheck.money import PPM, apply_rate
from plancheck.rulebook.limits import LimitTable

I64 = np.int64
#: Amount sources of a pay period, in the order used across the code base.
AMOUNTS = ("compensation", "pretax", "roth", "after_tax", "employer_match", "employer_nonelective")
#: Amounts the employer's other plans contribute to this employer's limits (401(a)(30), 415(c)).
EMPLOYER_AMOUNTS = ("pretax", "roth", "after_tax", "employer_match", "employer_nonelective")


@dataclass
class PeriodRows:
    """Pay periods of one or more employee-years: each group's rows contiguous, in pay-date order."""

    group_start: np.ndarray            # (G,) index of each group's first row
    plan_index: np.ndarray             # (G,) row of the plan in PlanArrays
    year: np.ndarray                   # (G,)
    age: np.ndarray                    # (G,) age attained by December 31 of the year
    prior_year_fica_wages: np.ndarray  # (G,) cents (0 where unknown; see fica_known)
    other_plan_deferrals: np.ndarray   # (G,) cents, this year, in other employers' plans
    period: np.ndarray                 # (N,) pay period number shown in findings
    amounts: dict[str, np.ndarray]     # (N,) per AMOUNTS; employer_match / employer_nonelective may be absent
    before: dict[str, np.ndarray] = field(default_factory=dict)  # (G,) amounts paid this year before the first row
    closes_year: np.ndarray | None = None  # (G,) bool: the last row is the year's last pay date
    #: (G,) bool: the prior-year FICA wages are known (None: all known).
    fica_known: np.ndarray | None = None
    #: (N,) per EMPLOYER_AMOUNTS: year to date in the employer's other plans as of each row.
    employer_other: dict[str, np.ndarray] = field(default_factory=dict)
    #: (G,) the employer's pay for 415(c) when larger than this plan's (None: this plan's pay).
    employer_compensation: np.ndarray | None = None
    #: (G,) bool: an election's percentage of pay falls between the plan's payroll steps (None: not an election).
    percent_off_step: np.ndarray | None = None


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


def catch_up(limit: np.ndarray, deferrals: np.ndarray, *excesses: np.ndarray) -> np.ndarray:
    """Treas. Reg. 1.414(v)-1(b)(1): deferrals above the first applicable limit, up to the catch-up limit."""
    above = np.zeros_like(deferrals)
    for excess in excesses:
        above = np.maximum(above, excess)
    return np.minimum(np.minimum(limit, deferrals), above)


class _Groups:
    """Row/group bookkeeping shared by every fact: running totals restart at each group."""

    def __init__(self, starts: np.ndarray, n: int):
        self.starts = starts
        self.n = n
        self.count = len(starts)
        self.sizes = np.diff(np.append(starts, n))
        self.last = np.append(starts[1:], n) - 1 if self.count else starts
        self.zero = np.zeros(self.count, dtype=I64)

    def ytd(self, values: np.ndarray, start: np.ndarray | None = None) -> np.ndarray:
        """Running total within each group, plus a starting amount per group."""
        total = np.cumsum(values)
        base = (total - values)[self.starts] if self.n else self.zero
        return total + self.spread(-base if start is None else start - base)

    def previous(self, running: np.ndarray, start: np.ndarray) -> np.ndarray:
        """Each row's value at the row before, `start` at each group's first row."""
        out = np.empty_like(running)
        out[1:] = running[:-1]
        out[self.starts] = start
        return out

    def spread(self, values: np.ndarray) -> np.ndarray:
        """A per-group value on every row of its group: values[group of each row], by np.repeat (twice as fast)."""
        return np.repeat(values, self.sizes)

    def total(self, values: np.ndarray) -> np.ndarray:
        return np.add.reduceat(values, self.starts) if self.n else self.zero


def _match_timing(g: _Groups, plans: PlanArrays, pr: np.ndarray, cap: np.ndarray, plan_comp: np.ndarray,
                  matched: np.ndarray, pretax: np.ndarray, deferrals: np.ndarray, employer_deferrals: np.ndarray,
                  deferrals_before: np.ndarray, stop_limit: np.ndarray, before_matched: np.ndarray,
                  match_before: np.ndarray, pay_before: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Year-to-date match paycheck by paycheck and by the annual formula, on deferrals as payroll takes them
    (stopping at the plan-level 402(g) limit `stop_limit`), pay counted from `pay_before` (per group)."""
    taken_ytd = np.minimum(employer_deferrals, g.spread(stop_limit))
    taken = np.clip(taken_ytd - g.previous(taken_ytd, np.minimum(deferrals_before, stop_limit)), 0, deferrals)
    stopped_pretax = np.minimum(deferrals - taken, pretax)
    matched_taken = np.maximum(matched - stopped_pretax * plans.match_pretax[pr]
                               - (deferrals - taken - stopped_pretax) * plans.match_roth[pr], 0)
    per_period = g.ytd(_tiered_match(plan_comp, matched_taken, pr, plans), match_before)
    annual = _tiered_match(g.ytd(plan_comp, pay_before), g.ytd(matched_taken, before_matched), pr, plans)
    return np.where(cap >= 0, np.minimum(per_period, cap), per_period), np.where(cap >= 0, np.minimum(annual, cap), annual)


def build_period_facts(rows: PeriodRows, plans: PlanArrays, limits: LimitTable) -> dict[str, np.ndarray]:
    """Every period fact (rules/facts/period.yaml) as int64 columns, one entry per row."""
    n = len(rows.period)
    g = _Groups(rows.group_start, n)

    def before(name: str) -> np.ndarray:
        return rows.before.get(name, g.zero).astype(I64, copy=False)

    def other(name: str) -> np.ndarray:
        return rows.employer_other[name].astype(I64, copy=False) if name in rows.employer_other else np.zeros(n, dtype=I64)

    # Limits of each group's year; -1 where a limit is not in force that year.
    years, year_of_group = np.unique(rows.year, return_inverse=True)
    by_year = [limits.for_year(int(y)) for y in years]

    def limit(attr: str) -> np.ndarray:
        values = np.array([-1 if getattr(v, attr) is None else getattr(v, attr) for v in by_year], dtype=I64)
        return values[year_of_group] if g.count else g.zero

    p = rows.plan_index
    age = rows.age.astype(I64, copy=False)
    prior_fica = rows.prior_year_fica_wages.astype(I64, copy=False)
    fica_known = np.ones(g.count, dtype=bool) if rows.fica_known is None else rows.fica_known.astype(bool)
    other_employers = rows.other_plan_deferrals.astype(I64, copy=False)
    limit_402g, limit_415c, limit_401a17 = limit("deferral_402g"), limit("annual_additions_415c"), limit("compensation_401a17")
    catch_up_60_63 = limit("catch_up_60_63")
    roth_threshold = limit("roth_catch_up_wages")
    hce_prior = limit("hce_414q_prior_year")

    # Catch-up limits: the individual's (402(g)(1)(C), by age whatever the plans offer) and the plan's.
    eligible = age >= int(limits.parameter("catch_up_eligibility_age"))
    in_band = ((age >= int(limits.parameter("catch_up_age_60_63_first")))
               & (age <= int(limits.parameter("catch_up_age_60_63_last"))) & (catch_up_60_63 >= 0))
    regular = limit("catch_up")
    individual_catch_up = np.where(eligible, np.where(in_band, catch_up_60_63, regular), 0)
    catch_up_limit = np.where(eligible, np.where(in_band & (plans.catch_up_60_63[p] == 1), catch_up_60_63, regular), 0)
    roth_in_force = roth_threshold >= 0
    roth_catch_up_applies = roth_in_force & fica_known & (prior_fica > roth_threshold)
    available = eligible & (plans.catch_up_offered[p] == 1) & ~(roth_catch_up_applies & (plans.allows_roth[p] == 0))
    usable_limit = np.where(available, catch_up_limit, 0)  # (G,) the catch-up this plan lets the participant use
    usable = g.spread(usable_limit)

    amounts = {k: rows.amounts[k].astype(I64, copy=False) for k in ("compensation", "pretax", "roth", "after_tax")}
    comp, pretax, roth, after_tax = (amounts[k] for k in ("compensation", "pretax", "roth", "after_tax"))
    deferrals = pretax + roth
    comp_total = g.total(comp) + before("compensation")
    if rows.employer_compensation is not None:
        comp_total = np.maximum(comp_total, rows.employer_compensation.astype(I64, copy=False))
    compensation_415 = np.minimum(comp_total, limit_401a17)
    # 100% of compensation cannot be tested on a year with no pay in the input (a deposit allocated to it alone).
    additions_limit = np.where(comp_total > 0, np.minimum(limit_415c, compensation_415), limit_415c)

    ytd_comp = g.ytd(comp, before("compensation"))
    plan_comp = plan_compensation(comp, ytd_comp - comp, g.spread(limit_401a17))
    ytd_plan_comp = g.ytd(plan_comp, np.minimum(before("compensation"), limit_401a17))
    ytd_pretax = g.ytd(pretax, before("pretax"))
    ytd_roth = g.ytd(roth, before("roth"))
    ytd_after_tax = g.ytd(after_tax, before("after_tax"))
    ytd_deferrals = ytd_pretax + ytd_roth
    employer_deferrals = ytd_deferrals + other("pretax") + other("roth")
    employer_roth = ytd_roth + other("roth")

    # The plan's per-period percent cap: what is above it may be catch-up (an employer-provided limit).
    max_deferral, max_after_tax = g.spread(plans.max_deferral_ppm[p]), g.spread(plans.max_after_tax_ppm[p])
    deferral_cap = np.where(max_deferral >= 0, apply_rate(comp, np.maximum(max_deferral, 0)), comp)
    above_cap = g.ytd(np.where(max_deferral >= 0, np.maximum(deferrals - deferral_cap, 0), 0))

    # Catch-up for the match formula: 402(g) and plan-cap excesses only (the 415(c) excess depends on the match).
    above_402g = employer_deferrals - g.spread(limit_402g)
    match_catch_up = catch_up(usable, employer_deferrals, above_402g, above_cap)
    deferrals_before = before("pretax") + before("roth") + (other("pretax") + other("roth"))[g.starts] if n else g.zero
    start_catch_up = catch_up(usable_limit, deferrals_before, deferrals_before - limit_402g)
    catch_up_step = np.clip(match_catch_up - g.previous(match_catch_up, start_catch_up), 0, deferrals)

    # Employer match: the plan formula on plan compensation, per period and on year-to-date totals.
    pr = g.spread(p)
    matched = (pretax * plans.match_pretax[pr] + roth * plans.match_roth[pr] + after_tax * plans.match_after_tax[pr]
               - np.where(plans.match_catch_up[pr] == 1, 0, catch_up_step))
    matched = np.maximum(matched, 0)
    match_period = _tiered_match(plan_comp, matched, pr, plans)
    before_matched = (before("pretax") * plans.match_pretax[p] + before("roth") * plans.match_roth[p]
                      + before("after_tax") * plans.match_after_tax[p])
    per_period_ytd = g.ytd(match_period, before("employer_match"))
    annual_ytd = _tiered_match(ytd_plan_comp, g.ytd(matched, before_matched), pr, plans)
    annual = plans.match_annual_basis[pr] == 1
    cap = plans.match_cap[pr]
    low = np.minimum(per_period_ytd, np.where(annual, annual_ytd, per_period_ytd))
    high = np.maximum(per_period_ytd, np.where(annual, annual_ytd, per_period_ytd))
    low, high, annual_ytd = (np.where(cap >= 0, np.minimum(x, cap), x) for x in (low, high, annual_ytd))

    # Match lost to the timing of deferrals (front-loading): deferrals as payroll takes them, stopping at the
    # plan-level 402(g) limit; the per-period formula on them against the annual formula on their totals, on
    # the pay from when matched deferrals began (pay before an election that followed no deferrals is a late
    # start, not timing within the year).
    if "employer_match" in rows.amounts:  # a payroll feed: the notice is for elections (rule inputs), skip the cost
        timing_per_period = timing_annual = np.zeros(n, dtype=I64)
    else:
        timing_per_period, timing_annual = _match_timing(
            g, plans, pr, cap, plan_comp, matched, pretax, deferrals, employer_deferrals, deferrals_before,
            limit_402g + usable_limit, before_matched, before("employer_match"),
            np.where(before_matched > 0, np.minimum(before("compensation"), limit_401a17), 0))

    if "employer_match" in rows.amounts:
        match = rows.amounts["employer_match"].astype(I64, copy=False)
    else:  # projection: deposit the formula; a true-up plan gets its true-up with the year's last pay
        deposited_ytd = low.copy()
        if rows.closes_year is not None and n:
            true_up = rows.closes_year & (plans.match_true_up[p] == 1)
            deposited_ytd[g.last[true_up]] = high[g.last[true_up]]
        match = deposited_ytd - g.previous(deposited_ytd, before("employer_match"))
    nonelective_expected = apply_rate(plan_comp, plans.nonelective_ppm[pr])
    nonelective = (rows.amounts["employer_nonelective"].astype(I64, copy=False)
                   if "employer_nonelective" in rows.amounts else nonelective_expected)
    ytd_match = g.ytd(match, before("employer_match"))
    ytd_nonelective = g.ytd(nonelective, before("employer_nonelective"))

    # 415(c) for the employer: catch-up as the law counts it, then annual additions less catch-up.
    employer_money = ytd_match + ytd_nonelective + other("employer_match") + other("employer_nonelective")
    employer_after_tax = ytd_after_tax + other("after_tax")
    ytd_catch_up = catch_up(usable, employer_deferrals, above_402g, above_cap,
                            employer_deferrals + employer_money - g.spread(additions_limit))
    ordinal = np.arange(n, dtype=I64) - g.spread(g.starts) + 1
    is_last = np.zeros(n, dtype=I64)
    is_last[g.last] = 1

    def flag(values: np.ndarray) -> np.ndarray:
        return values.astype(I64, copy=False)

    group_facts = {
        "year": rows.year.astype(I64, copy=False),
        "age": age,
        "catch_up_eligible": flag(eligible),
        "catch_up_available": flag(available),
        "roth_catch_up_in_force": flag(roth_in_force),
        "roth_catch_up_applies": flag(roth_catch_up_applies),
        "prior_year_fica_wages_known": flag(fica_known),
        "prior_year_hce": flag(fica_known & (hce_prior >= 0) & (prior_fica > hce_prior)),
        "plan_allows_pretax": plans.allows_pretax[p],
        "plan_allows_roth": plans.allows_roth[p],
        "plan_allows_after_tax": plans.allows_after_tax[p],
        "plan_offers_catch_up": plans.catch_up_offered[p],
        "plan_has_deferral_max": flag(plans.max_deferral_ppm[p] >= 0),
        "plan_has_after_tax_max": flag(plans.max_after_tax_ppm[p] >= 0),
        "plan_has_match": plans.has_match[p],
        "plan_match_annual_basis": plans.match_annual_basis[p],
        "limit_402g": limit_402g,
        "catch_up_limit": catch_up_limit.astype(I64, copy=False),
        "deferral_limit": limit_402g + usable_limit,
        "individual_catch_up_limit": individual_catch_up.astype(I64, copy=False),
        "individual_deferral_limit": limit_402g + individual_catch_up,
        "limit_415c": limit_415c,
        "limit_401a17": limit_401a17,
        "compensation_415": compensation_415,
        "annual_additions_limit": additions_limit,
        "prior_year_fica_wages": prior_fica,
        "other_plan_deferrals": other_employers,
        "election_percent_off_step": flag(rows.percent_off_step) if rows.percent_off_step is not None
        else np.zeros(len(rows.group_start), dtype=I64),
    }
    facts = {name: g.spread(values) for name, values in group_facts.items()}
    facts.update({
        "period": rows.period.astype(I64, copy=False),
        "is_last_period": is_last,
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
        "ytd_deferrals_employer": employer_deferrals,
        "ytd_deferrals_all_plans": employer_deferrals + g.spread(other_employers),
        "ytd_deferrals_above_plan_max": above_cap,
        "ytd_deferrals_above_plan_max_not_catch_up": np.maximum(above_cap - ytd_catch_up, 0),
        "ytd_catch_up": ytd_catch_up,
        "ytd_pretax_catch_up": np.maximum(ytd_catch_up - employer_roth, 0),
        "ytd_employer_match": ytd_match,
        "ytd_employer_nonelective": ytd_nonelective,
        "ytd_annual_additions": employer_deferrals - ytd_catch_up + employer_after_tax + employer_money,
        "match_expected": match_period,
        "ytd_match_expected": np.clip(ytd_match, low, high),
        "match_true_up_owed": np.where(annual, np.maximum(annual_ytd - ytd_match, 0), 0),
        "ytd_match_annual_formula": timing_annual,
        "ytd_match_per_period_formula": timing_per_period,
        "match_lost_per_period": np.where(annual, 0, np.maximum(timing_annual - timing_per_period, 0)),
        "match_tolerance": ordinal * limits.cents("match_rounding_tolerance"),
        "deferral_cap": deferral_cap,
        "after_tax_cap": np.where(max_after_tax >= 0, apply_rate(comp, np.maximum(max_after_tax, 0)), comp),
    })
    return facts


#: The name of every fact build_period_facts returns; rules/facts/period.yaml must declare exactly these.
BUILT_FACTS = frozenset({
    "year", "age", "catch_up_eligible", "catch_up_available", "roth_catch_up_in_force", "roth_catch_up_applies",
    "prior_year_fica_wages_known", "prior_year_hce", "plan_allows_pretax", "plan_allows_roth",
    "plan_allows_after_tax", "plan_offers_catch_up", "plan_has_deferral_max", "plan_has_after_tax_max",
    "plan_has_match", "plan_match_annual_basis", "limit_402g", "catch_up_limit", "deferral_limit",
    "individual_catch_up_limit", "individual_deferral_limit", "limit_415c", "limit_401a17", "compensation_415",
    "annual_additions_limit", "prior_year_fica_wages", "other_plan_deferrals", "period", "is_last_period",
    "compensation", "plan_compensation", "ytd_compensation", "pretax", "roth", "after_tax", "deferrals",
    "employee_contributions", "employer_match", "employer_nonelective", "ytd_pretax", "ytd_roth", "ytd_after_tax",
    "ytd_deferrals", "ytd_deferrals_employer", "ytd_deferrals_all_plans", "ytd_deferrals_above_plan_max",
    "ytd_deferrals_above_plan_max_not_catch_up", "ytd_catch_up", "ytd_pretax_catch_up", "ytd_employer_match",
    "ytd_employer_nonelective", "ytd_annual_additions",
    "match_expected", "ytd_match_expected", "match_true_up_owed", "ytd_match_annual_formula", "ytd_match_per_period_formula",
    "match_lost_per_period",
    "match_tolerance", "deferral_cap", "after_tax_cap",
    "election_percent_off_step",
})
