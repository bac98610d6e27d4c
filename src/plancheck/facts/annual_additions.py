"""415(c) at year end, per person across every defined contribution plan of the employer.

Annual additions = pretax + Roth + after-tax + match + nonelective + forfeitures allocated (census
column `forfeitures`, if given), less catch-up contributions and less excess deferrals (402(g))
distributed by April 15, summed over the employer's plans (plans whose documents name the same
`employer`; 415(f), 414(b), (c), (m)). Catch-up is counted as the batch counts it (facts/period.py):
what the plans' limits (402(g), the plan's cap) made catch-up, and up to the person's catch-up limit
the deferrals that take additions above 415(c) once employer money is counted (Treas. Reg.
1.414(v)-1(b)(1)(ii)); after-tax money never makes deferrals catch-up. No ADP recharacterization is
counted: 415(c) is corrected first, and the ADP and ACP tests leave out what it returns (as plan
documents and EPCRS provide). Limit: the lesser of the 415(c)(1)(A) figure and 100% of 415
compensation (the year's pay of the census, capped by 401(a)(17); the largest of the person's rows).

The excess is corrected in the order of Rev. Proc. 2021-30 (section 6.06(2), Appendix A .08):
unmatched after-tax contributions, unmatched elective deferrals, matched after-tax contributions and
matched deferrals with the match on them forfeited, then employer nonelective money, forfeitures,
then what is left of the match; each source across the person's plans in census order.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from plancheck.documents.census import Census
from plancheck.documents.plan import Plan
from plancheck.facts.by_person import People
from plancheck.facts.nondiscrimination import match_formula
from plancheck.money import apply_rate

#: Facts 415(c) adds to each plan's year-end record (rules/facts/yearend.yaml).
ANNUAL_ADDITIONS_FACTS = frozenset({"annual_additions_excess", "annual_additions_excess_employees",
                                    "annual_additions_corrected"})
#: Correction kinds, in the order they are taken.
KINDS = ("annual_additions_after_tax", "annual_additions_deferrals", "annual_additions_match_forfeited",
         "annual_additions_nonelective", "annual_additions_forfeitures", "annual_additions_match")


@dataclass
class AnnualAdditions:
    """Per census row: the person's figures at the employer (the same on each of their rows) and what each
    of their rows gives back to correct the excess."""

    additions: np.ndarray           # the person's annual additions over the employer's plans
    limit: np.ndarray               # the lesser of the 415(c) figure and 100% of 415 compensation
    catch_up: np.ndarray            # the person's catch-up left out of the additions
    excess: np.ndarray              # additions above the limit
    taken: dict[str, np.ndarray]    # KINDS -> amount from this row
    unmatched: dict[str, np.ndarray]  # after_tax / deferrals -> of the amount taken, the unmatched part

    def left(self, census: Census) -> Census:
        """The census with what the correction returns or takes out gone (deferrals pretax first), for the ADP and
        ACP tests and the top-heavy minimum; the census itself where nothing is over."""
        if not self.excess.any():
            return census
        m, t = census.money, self.taken
        from_pretax = np.minimum(t["annual_additions_deferrals"], m["pretax"])
        money = {**m, "pretax": m["pretax"] - from_pretax,
                 "roth": m["roth"] - (t["annual_additions_deferrals"] - from_pretax),
                 "after_tax": m["after_tax"] - t["annual_additions_after_tax"],
                 "employer_match": m["employer_match"] - t["annual_additions_match_forfeited"]
                 - t["annual_additions_match"],
                 "employer_nonelective": m["employer_nonelective"] - t["annual_additions_nonelective"]}
        if "forfeitures" in m:
            money["forfeitures"] = m["forfeitures"] - t["annual_additions_forfeitures"]
        return replace(census, money=money)

    def plan_facts(self, rows: np.ndarray) -> dict[str, int]:
        corrected = sum(self.taken[k][rows] for k in KINDS) if len(rows) else np.zeros(0, np.int64)
        return {"annual_additions_excess": int(self.excess[rows].sum()),
                "annual_additions_excess_employees": int((self.excess[rows] > 0).sum()),
                "annual_additions_corrected": int(np.sum(corrected))}


def match_formula_of(plan: Plan):
    """The plan's match on year totals (facts/nondiscrimination.py match_formula)."""
    return lambda pay, matched: match_formula(plan, pay, matched)


def annual_additions(census: Census, plans: list[Plan], person: np.ndarray, dollar_limit: int, pay_limit: int,
                     catch_up_limit: np.ndarray, catch_up: np.ndarray, excess_deferral: np.ndarray) -> AnnualAdditions:
    """Every person's 415(c) figures and the corrections of an excess (catch_up: what the plans' limits - 402(g),
    the plan's cap, 415(c) - already made catch-up, per row, as the batch counts it: before any ADP
    recharacterization)."""
    people = People(person)
    m = census.money
    n = census.rows
    deferrals = m["pretax"] + m["roth"]
    employer = m["employer_match"] + m["employer_nonelective"]
    forfeitures = m.get("forfeitures", np.zeros(n, dtype=np.int64))  # forfeitures allocated: employer money too
    employer = employer + forfeitures
    kept = np.maximum(deferrals - excess_deferral, 0)  # excess deferrals distributed are not annual additions
    limit = np.minimum(dollar_limit, people.largest(np.minimum(census.compensation, pay_limit))) if n else kept
    # Catch-up as the batch counts it, for the person across the employer's plans.
    kept_all = people.total(kept)
    made = people.total(np.minimum(catch_up, kept))  # what the plans' limits made catch-up stands
    above_415 = kept_all + people.total(employer) - limit
    more = np.clip(np.minimum(people.largest(catch_up_limit), above_415) - made, 0, None) if n else kept
    person_catch_up = np.minimum(made + more, kept_all)
    first = people.take_in_order(np.minimum(catch_up, kept), person_catch_up)
    row_catch_up = first + people.take_in_order(kept - first, person_catch_up - people.total(first))
    counted = kept - row_catch_up
    additions = people.total(counted + m["after_tax"] + employer)
    excess = np.maximum(additions - limit, 0)
    taken = {k: np.zeros(n, dtype=np.int64) for k in KINDS}
    none = {"after_tax": taken["annual_additions_after_tax"], "deferrals": taken["annual_additions_deferrals"]}
    if not excess.any():
        return AnnualAdditions(additions=additions, limit=limit, catch_up=people.total(row_catch_up), excess=excess,
                               taken=taken, unmatched=none)

    # What the match reaches: the deferrals (then after-tax money) up to the last tier's share of pay.
    pay = np.minimum(census.compensation, pay_limit)
    ceiling = np.zeros(n, dtype=np.int64)
    matches_deferrals = np.zeros(n, dtype=bool)
    matches_after_tax = np.zeros(n, dtype=bool)
    for code, plan in enumerate(plans):
        if plan.match is None:
            continue
        rows = census.plan == code
        ceiling[rows] = apply_rate(pay[rows], plan.match.tiers[-1].up_to_percent)
        matches_deferrals[rows] = bool({"pretax", "roth"} & set(plan.match.sources))
        matches_after_tax[rows] = "after_tax" in plan.match.sources
    matched_deferrals = np.where(matches_deferrals, np.minimum(counted, ceiling), 0)
    matched_after_tax = np.where(matches_after_tax,
                                 np.minimum(m["after_tax"], np.maximum(ceiling - matched_deferrals, 0)), 0)

    need = excess.copy()

    def take(available: np.ndarray) -> np.ndarray:
        nonlocal need
        got = people.take_in_order(available, need)
        need = need - people.total(got)
        return got

    unmatched_after_tax = take(m["after_tax"] - matched_after_tax)
    unmatched_deferrals = take(counted - matched_deferrals)
    # Matched contributions: each dollar returned also forfeits the match on it, which counts toward the excess.
    # The formula's base is what is left of the matched sources once the excess deferrals and the unmatched
    # amounts are back; the match lost is the formula on it less the formula on it less what is returned.
    forfeitable = m["employer_match"]
    matched_base = np.zeros(n, dtype=np.int64)
    for code, plan in enumerate(plans):
        if plan.match is not None:
            rows = census.plan == code
            for source in plan.match.sources:
                matched_base[rows] += m[source][rows]
    matched_base -= (np.where(matches_deferrals, excess_deferral + unmatched_deferrals, 0)
                     + np.where(matches_after_tax, unmatched_after_tax, 0))
    matched_base = np.maximum(matched_base, 0)
    capacity_source = matched_after_tax + matched_deferrals
    full_forfeit = _forfeit(census, plans, pay, matched_base, capacity_source, forfeitable)
    reduce_by = people.take_in_order(capacity_source + full_forfeit, need)
    returned = _least_returned(census, plans, pay, matched_base, capacity_source, forfeitable, reduce_by)
    forfeited = _forfeit(census, plans, pay, matched_base, returned, forfeitable)
    need = need - people.total(returned + forfeited)
    matched_after_tax_taken = np.minimum(returned, matched_after_tax)
    taken["annual_additions_after_tax"] = unmatched_after_tax + matched_after_tax_taken
    taken["annual_additions_deferrals"] = unmatched_deferrals + returned - matched_after_tax_taken
    taken["annual_additions_match_forfeited"] = forfeited
    taken["annual_additions_nonelective"] = take(m["employer_nonelective"])
    taken["annual_additions_forfeitures"] = take(forfeitures)
    taken["annual_additions_match"] = take(m["employer_match"] - forfeited)
    return AnnualAdditions(additions=additions, limit=limit, catch_up=people.total(row_catch_up), excess=excess,
                           taken=taken, unmatched={"after_tax": unmatched_after_tax, "deferrals": unmatched_deferrals})


def _forfeit(census: Census, plans: list[Plan], pay: np.ndarray, base: np.ndarray, returned: np.ndarray,
             held: np.ndarray) -> np.ndarray:
    """The match forfeited when `returned` of the matched contributions goes back: the plan formula on the year's
    totals less the formula on what is left (401(a)(4); Treas. Reg. 1.401(k)-2(b)(4)), at most the match held."""
    out = np.zeros(census.rows, dtype=np.int64)
    for code, plan in enumerate(plans):
        rows = np.flatnonzero((census.plan == code) & (returned > 0))
        if plan.match is None or not len(rows):
            continue
        formula = match_formula_of(plan)
        lost = formula(pay[rows], base[rows]) - formula(pay[rows], np.maximum(base[rows] - returned[rows], 0))
        out[rows] = np.clip(lost, 0, held[rows])
    return out


def _least_returned(census: Census, plans: list[Plan], pay: np.ndarray, base: np.ndarray, available: np.ndarray,
                    held: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The least matched contribution to return so that it and the match it forfeits reach `target` (bisection
    in cents: the sum rises with what is returned)."""
    low = np.zeros(census.rows, dtype=np.int64)
    high = np.where(target > 0, available, 0)
    while True:
        open_ = low < high
        if not open_.any():
            return high
        middle = (low + high) // 2
        reached = middle + _forfeit(census, plans, pay, base, middle, held) >= target
        high = np.where(open_ & reached, middle, high)
        low = np.where(open_ & ~reached, middle + 1, low)
