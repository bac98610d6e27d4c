"""Year-end facts: eligibility, HCEs, ADP and ACP tests with their corrections, and top-heavy, put together.

Pure and vectorized: a validated census (numpy int64 cents, days, millionths of one) and the
plan documents in, one fact record per plan (rules/facts/yearend.yaml) and per-employee
arrays out. Ratios are integers in hundredths of a percent (see leveling.py). Every figure of
the law comes from rules/limits and rules/parameters. Order of the corrections (401(m)(6)(D)):
402(g) excess deferrals first, then ADP excess contributions (catch-up recharacterization
first, the related match forfeited), then the ACP test on what is left.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np

from plancheck.documents.census import Census
from plancheck.documents.plan import Plan
from plancheck.facts.annual_additions import ANNUAL_ADDITIONS_FACTS, AnnualAdditions, annual_additions
from plancheck.facts.calendar import day_number, months_after_year_end  # noqa: F401 (read from here by the tests)
from plancheck.facts.eligibility import eligibility, eligibility_problems  # noqa: F401 (read by checks/yearend.py)
from plancheck.facts.eligibility import per_plan as _per_plan
from plancheck.facts.employees import Employees
from plancheck.facts.employer import Employers, deferral_limits
from plancheck.facts.figures import Figures
from plancheck.facts.hce import (  # noqa: F401 (the hce_reasons bits, read from here by checks/yearend.py)
    OWNER_PRIOR_YEAR,
    OWNER_THIS_YEAR,
    PAID_ABOVE_THRESHOLD,
    highly_compensated,
)
from plancheck.facts.leveling import ratios
from plancheck.facts.nondiscrimination import acp_test, adp_test, counts_match, is_safe_harbor, top_heavy_exempt
from plancheck.facts.roth_catch_up import ROTH_CATCH_UP_FACTS, RothCatchUp
from plancheck.facts.top_heavy import (  # noqa: F401 (the key_reasons bits, read from here by checks/yearend.py)
    KEY_FIVE_PERCENT_OWNER,
    KEY_OFFICER,
    KEY_ONE_PERCENT_OWNER,
    top_heavy,
)
from plancheck.money import apply_rate
from plancheck.rulebook.limits import LimitTable


@dataclass
class PlanFacts:
    """One plan's fact record (what the yearend rules read) and where its rows are."""

    plan: Plan
    rows: np.ndarray                  # census row indices of the plan
    facts: dict[str, int]
    minimum_rate: tuple[int, int] = (0, 1)  # top-heavy minimum as an exact fraction of pay
    deadlines: dict[str, dt.date] = field(default_factory=dict)
    top_heavy_group: list[str] = field(default_factory=list)  # plan_ids of the group deciding top-heavy status
    top_heavy_aggregation: str | None = None                     # "required", "permissive", or None (alone)


@dataclass
class YearendFacts:
    figures: Figures
    employees: Employees
    plans: list[PlanFacts]
    #: The rows of each person in more than one plan of their employer (person number -> census rows).
    person_rows: dict[int, list[int]] = field(default_factory=dict)
    roth_catch_up: RothCatchUp | None = None        # 414(v)(7), facts/roth_catch_up.py
    annual_additions: AnnualAdditions | None = None  # 415(c) across the employer, facts/annual_additions.py


#: The name of every fact a plan's record holds; rules/facts/yearend.yaml must declare exactly these.
BUILT_FACTS = frozenset({
    "year", "first_plan_year", "prior_year_method", "safe_harbor", "eaca", "employees", "eligible_employees",
    "hces", "nhces",
    "adp_tested", "hce_adp", "nhce_adp", "adp_limit", "adp_limit_basic", "adp_limit_alternative", "adp_excess",
    "adp_recharacterized", "adp_distributed",
    "acp_tested", "acp_match_exempt", "hce_acp", "nhce_acp", "acp_limit", "acp_limit_basic",
    "acp_limit_alternative", "acp_excess", "match_forfeited", "excess_deferrals", "excess_deferral_employees",
    "top_heavy_exempt", "top_heavy_required_group", "top_heavy_group_plans", "key_employees", "key_officer_limit", "officers_beyond_limit", "key_account_balances",
    "account_balances", "top_heavy_balance_limit", "top_heavy_ratio", "top_heavy_minimum_rate", "top_heavy_minimum_owed", "top_heavy_minimum_employees",
}) | ROTH_CATCH_UP_FACTS | ANNUAL_ADDITIONS_FACTS


def build_yearend_facts(census: Census, plans: list[Plan], limits: LimitTable, year: int) -> YearendFacts:
    """Every year-end figure for every plan of a census (plans[i] is census plan code i)."""
    figures = Figures.for_year(limits, year)
    n = census.rows
    start, end = day_number(dt.date(year, 1, 1)), day_number(dt.date(year, 12, 31))
    money = census.money
    plan_pay = np.minimum(census.compensation, figures.compensation_401a17)

    # Eligibility (410(a)): age and service met, then the next entry date.
    entry, eligible = eligibility(census, plans, start, end)

    # HCEs (414(q)): 5% owners this year or last (with 318 attribution), or paid above the look-back figure.
    employers = Employers.of(census, plans)
    hce_reasons, ownership, prior_ownership = highly_compensated(census, plans, figures, employers)
    hce = hce_reasons > 0

    # Catch-up and 402(g), across the employer's plans (facts/employer.py).
    age = year - census.birth.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) - 1970
    offered = _per_plan(census, plans, lambda p: p.catch_up.offered, bool)
    catch_up_age = age >= figures.catch_up_age
    band_age = (figures.catch_up_60_63 is not None) & (age >= figures.band_first) & (age <= figures.band_last)

    def by_age(in_band: np.ndarray) -> np.ndarray:
        return np.where(catch_up_age, np.where(in_band, figures.catch_up_60_63 or 0, figures.catch_up), 0)

    plan_60_63 = _per_plan(census, plans, lambda p: p.catch_up.age_60_63, bool)
    catch_up_limit = np.where(offered, by_age(band_age & plan_60_63), 0)
    roth = RothCatchUp.of(census, plans, limits, year, employers.person)
    catch_up_limit = roth.restrict(catch_up_limit)  # no catch-up for those it reaches in a plan without Roth
    deferrals = money["pretax"] + money["roth"]
    employer = money["employer_match"] + money["employer_nonelective"]
    limit_415 = np.minimum(figures.annual_additions_415c, plan_pay)
    max_deferral = _per_plan(census, plans, lambda p: -1 if p.contributions.max_deferral_percent is None
                             else p.contributions.max_deferral_percent)
    above_plan_cap = np.where(max_deferral >= 0, deferrals - apply_rate(plan_pay, np.maximum(max_deferral, 0)), 0)
    rank = np.argsort(np.argsort([p.plan_id for p in plans], kind="stable"))
    plan_rank = rank[census.plan] if n else np.zeros(0, np.int64)
    limited = deferral_limits(employers, plan_rank, deferrals, figures.deferral_402g, catch_up_limit, by_age(band_age),
                              money["other_plan_deferrals"], deferrals + employer - limit_415, above_plan_cap)
    catch_up, excess_deferral = limited.catch_up, limited.excess
    # Per-row intermediates are freed once used: with 1 M rows each is 8 MB (the year-end peak, docs/performance.md).
    del age, band_age, offered, plan_60_63, employer, limit_415, max_deferral, above_plan_cap
    # 415(c) across the employer's plans before the ADP and ACP tests, which leave out what it returns.
    additions = annual_additions(census, plans, employers.person, figures.annual_additions_415c,
                                 figures.compensation_401a17, catch_up_limit, catch_up, excess_deferral)
    # Catch-up is left out of the ADP; an NHCE's distributed excess deferrals too (Treas. Reg. 1.401(k)-2(a)(4)).
    adp_amount = deferrals - additions.taken["annual_additions_deferrals"] - catch_up - np.where(hce, 0, excess_deferral)
    # An HCE eligible in several plans of the employer has one ratio from all of them (1.401(k)-2(a)(3)(ii)): the
    # deferrals of every plan they are eligible in over their pay, the most any row shows, 401(a)(17) once.
    in_several = eligible & hce
    adp_total, ratio_pay = employers.total(adp_amount, in_several), employers.most(plan_pay, in_several)
    adr = ratios(adp_total, ratio_pay)
    del deferrals

    emp = Employees(
        plan_pay=plan_pay, eligible=eligible, entry=entry, hce=hce, hce_reasons=hce_reasons, ownership=ownership,
        prior_year_ownership=prior_ownership, key=np.zeros(n, bool), key_reasons=np.zeros(n, np.int64),
        catch_up_limit=catch_up_limit, catch_up=catch_up, excess_deferral=excess_deferral, adp_amount=adp_amount,
        adr=adr, adp_excess=np.zeros(n, np.int64), recharacterized=np.zeros(n, np.int64),
        adp_distribution=np.zeros(n, np.int64), match_forfeited=np.zeros(n, np.int64),
        acp_amount=np.zeros(n, np.int64), acr=np.zeros(n, np.int64), acp_excess=np.zeros(n, np.int64),
        acp_from_after_tax=np.zeros(n, np.int64), acp_from_match=np.zeros(n, np.int64),
        top_heavy_minimum=np.zeros(n, np.int64), employer_deferrals=limited.employer_total,
        person=employers.person)
    tested = additions.left(census)  # the tests and the top-heavy minimum without what 415(c) returned or took out
    money = tested.money
    codes = [(code, plan, np.flatnonzero(census.plan == code)) for code, plan in enumerate(plans)]
    # Catch-up a person has left to take an ADP excess as catch-up: once across the employer's plans (414(v)(2)(D)).
    unused = np.where(catch_up_limit > 0, np.maximum(employers.most(catch_up_limit) - employers.total(catch_up), 0), 0)
    # Plans correct in plan_id order; what an earlier plan of the employer took from an HCE is out of their one
    # ratio when a later plan levels, so the person is brought to the level once, not once per plan.
    adp, adp_left = {}, adp_total.copy()
    for code, plan, rows in sorted(codes, key=lambda item: item[1].plan_id):
        adp[code] = adp_test(tested, plan, rows, figures, emp, adp_left, ratio_pay, unused[rows])
        taken, excess = np.zeros(n, np.int64), np.zeros(n, np.int64)
        taken[rows], excess[rows] = emp.recharacterized[rows], emp.adp_excess[rows]
        unused = np.where(catch_up_limit > 0, np.maximum(unused - employers.total(taken), 0), 0)
        adp_left = adp_left - employers.total(excess, in_several)
    match_left = money["employer_match"] - emp.match_forfeited
    acp_amount = np.zeros(n, np.int64)
    for code, plan, rows in codes:
        acp_amount[rows] = money["after_tax"][rows] + (match_left[rows] if counts_match(plan) else 0)
    # One contribution ratio: the plan's own as its test counts it, and from the HCE's other plans every match and
    # after-tax contribution that would count were that plan tested, a 401(m)(11) match too (1.401(m)-2(a)(3)(ii)).
    has_match = _per_plan(census, plans, lambda p: p.match is not None, bool)
    if_tested = money["after_tax"] + np.where(has_match, match_left, 0)
    acp_total = employers.total(if_tested, in_several) - if_tested + acp_amount
    emp.acp_amount, emp.acr = acp_amount, ratios(acp_total, ratio_pay)
    acp, acp_left = {}, acp_total.copy()
    for code, plan, rows in sorted(codes, key=lambda item: item[1].plan_id):
        acp[code] = acp_test(tested, plan, rows, figures, emp, acp_left, ratio_pay)
        excess = np.zeros(n, np.int64)
        excess[rows] = emp.acp_excess[rows]
        acp_left = acp_left - employers.total(excess, in_several)
    del unused, adp_left, acp_left, adp_total, acp_total, if_tested, has_match, taken, excess
    exempt = [top_heavy_exempt(plan, money["after_tax"][rows], money["employer_nonelective"][rows])
              for _, plan, rows in codes]
    heavy = top_heavy(tested, plans, figures, emp, employers, match_left, exempt,
                      int(limits.parameter("top_heavy_no_service_period")), plan_rank)
    results = []
    for code, plan, rows in codes:
        if not len(rows):
            continue
        testing = plan.nondiscrimination_testing
        facts = {"year": figures.year, "first_plan_year": int(testing.first_plan_year),
                 "prior_year_method": int(testing.method == "prior_year"), "safe_harbor": int(is_safe_harbor(plan)),
                 "eaca": int(testing.eaca), "employees": len(rows),
                 "eligible_employees": int(eligible[rows].sum()), "hces": int((eligible & hce)[rows].sum()),
                 "nhces": int((eligible & ~hce)[rows].sum()), **adp[code], **acp[code],
                 "excess_deferrals": int(excess_deferral[rows].sum()),
                 "excess_deferral_employees": int((excess_deferral[rows] > 0).sum()), **heavy[code].facts}
        deadlines = {"excess_deferral": figures.deadlines["excess_deferral"],
                     "excise": figures.deadlines["excise_eaca" if testing.eaca else "excise"],
                     "final": figures.deadlines["final"]}
        results.append(PlanFacts(plan=plan, rows=rows, facts=facts, minimum_rate=heavy[code].minimum_rate,
                                 deadlines=deadlines, top_heavy_group=heavy[code].group,
                                 top_heavy_aggregation=heavy[code].aggregation))
    # Across the employer's plans, once the plans' catch-up and ADP corrections are known: 414(v)(7).
    roth.settle(census, employers.person, emp.catch_up, emp.recharacterized, emp.excess_deferral)
    for result in results:
        result.facts |= roth.plan_facts(result.rows) | additions.plan_facts(result.rows)
    return YearendFacts(figures, emp, results, _several_plans(employers), roth, additions)


def _several_plans(employers: Employers) -> dict[int, list[int]]:
    if employers.one_row_each:
        return {}
    several = np.flatnonzero(employers.total(np.ones(len(employers.person), np.int64)) > 1)
    out: dict[int, list[int]] = {}
    for row, person in zip(several.tolist(), employers.person[several].tolist()):
        out.setdefault(person, []).append(row)
    return out


