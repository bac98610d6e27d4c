"""Year-end facts: eligibility, HCEs, ADP and ACP tests with their corrections, and top-heavy.

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
from decimal import Decimal

import numpy as np

from plancheck.documents.census import Census
from plancheck.documents.limits import LimitTable
from plancheck.documents.plan import Plan
from plancheck.errors import InputError, Problem
from plancheck.facts.annual_additions import ANNUAL_ADDITIONS_FACTS, AnnualAdditions, annual_additions
from plancheck.facts.employer import Employers, deferral_limits, top_paid
from plancheck.facts.leveling import allocate_by_amount, average, excess_by_ratio, ratios, test_limits
from plancheck.facts.roth_catch_up import ROTH_CATCH_UP_FACTS, RothCatchUp
from plancheck.facts.top_heavy import (  # noqa: F401 (the key_reasons bits, read from here by checks/yearend.py)
    KEY_FIVE_PERCENT_OWNER,
    KEY_OFFICER,
    KEY_ONE_PERCENT_OWNER,
    top_heavy,
)
from plancheck.money import apply_rate

EPOCH = dt.date(1970, 1, 1)
#: Bits of `hce_reasons`: why an employee is highly compensated.
OWNER_THIS_YEAR, OWNER_PRIOR_YEAR, PAID_ABOVE_THRESHOLD = 1, 2, 4
_ENTRY_STEP = {"immediate": 0, "monthly": 1, "quarterly": 3, "semiannual": 6}


def day_number(day: dt.date) -> int:
    return (day - EPOCH).days


def add_months(days: np.ndarray, months: np.ndarray | int) -> np.ndarray:
    """Dates plus whole months, the day of month clamped to the month's length (Jan 31 + 1 = Feb 28)."""
    d = np.asarray(days, dtype=np.int64).astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    day_of_month = (d - month.astype("datetime64[D]")).astype(np.int64)
    target = month + np.asarray(months, dtype=np.int64)
    length = ((target + 1).astype("datetime64[D]") - target.astype("datetime64[D]")).astype(np.int64)
    return (target.astype("datetime64[D]") + np.minimum(day_of_month, length - 1)).astype(np.int64)


def months_after_year_end(year: int, months: Decimal) -> dt.date:
    """The last day of a period of months (halves allowed) after the close of a calendar year.

    2 1/2 months after December 31 is March 15; 6 months June 30; 12 months December 31.
    """
    whole = int(months)
    half = months - whole
    if half not in (0, Decimal("0.5")):
        raise ValueError(f"a deadline of {months} months: only whole or half months are supported")
    start = day_number(dt.date(year + 1, 1, 1))
    end = int(add_months(np.array([start]), whole)[0]) + (15 if half else 0) - 1
    return EPOCH + dt.timedelta(days=end)


def entry_dates(eligible_from: np.ndarray, step_months: np.ndarray) -> np.ndarray:
    """The first entry date on or after each date: itself (step 0), or the first day of the next
    month, quarter or half year (step 1, 3, 6) coinciding with or next following it."""
    d = eligible_from.astype("datetime64[D]")
    month = d.astype("datetime64[M]")
    index = month.astype(np.int64)  # months since 1970-01 (a January: quarters and halves align)
    on_first = (d == month.astype("datetime64[D]"))
    candidate = index + (~on_first).astype(np.int64)
    step = np.maximum(step_months, 1)
    aligned = -(-candidate // step) * step
    first_day = aligned.astype("datetime64[M]").astype("datetime64[D]").astype(np.int64)
    return np.where(step_months == 0, eligible_from, first_day)


@dataclass(frozen=True)
class Figures:
    """The law's figures for one plan year, as integers (cents, hundredths of a percent, ppm)."""

    year: int
    deferral_402g: int
    catch_up: int
    catch_up_60_63: int | None
    annual_additions_415c: int
    compensation_401a17: int
    hce_threshold_lookback: int
    key_officer_pay: int          # 416(i) figure of the year key employees are determined in
    key_officer_pay_first_year: int
    catch_up_age: int
    band_first: int
    band_last: int
    basic: Decimal
    alternative: Decimal
    spread: Decimal
    first_year_nhce: int
    top_paid_percent: Decimal
    top_paid_age: int
    top_paid_service_months: int
    five_percent_ppm: int
    one_percent_ppm: int
    one_percent_pay: int
    top_heavy_percent: Decimal
    top_heavy_minimum: int        # hundredths of a percent
    officer_limit: int            # 416(i)(1)(A): at most this many officers are key employees,
    officer_minimum: int          # ... at least this many may be,
    officer_percent: Decimal      # ... and otherwise this share of the employees
    deadlines: dict[str, dt.date]
    deadline_months: dict[str, Decimal]

    @classmethod
    def for_year(cls, limits: LimitTable, year: int) -> "Figures":
        year_limits = limits.for_year(year)
        lookback = year_limits.hce_414q_prior_year
        key_prior = limits.amount("key_employee_compensation_416i", year - 1)
        if lookback is None or key_prior is None:
            raise InputError(Problem("rules/limits", "values", f"year-end tests for {year} need the {year - 1} figures "
                                     "of hce_compensation_threshold and key_employee_compensation_416i"))
        p = limits.parameter
        months = {name: p(parameter) for name, parameter in (
            ("excise", "excess_contribution_excise_deadline"),
            ("excise_eaca", "excess_contribution_excise_deadline_eaca"),
            ("final", "excess_contribution_final_deadline"),
            ("excess_deferral", "excess_deferral_deadline"))}
        return cls(
            year=year, deferral_402g=year_limits.deferral_402g, catch_up=year_limits.catch_up,
            catch_up_60_63=year_limits.catch_up_60_63, annual_additions_415c=year_limits.annual_additions_415c,
            compensation_401a17=year_limits.compensation_401a17, hce_threshold_lookback=lookback,
            key_officer_pay=key_prior, key_officer_pay_first_year=year_limits.key_employee_416i or 0,
            catch_up_age=int(p("catch_up_eligibility_age")), band_first=int(p("catch_up_age_60_63_first")),
            band_last=int(p("catch_up_age_60_63_last")), basic=p("adp_acp_multiplier_basic"),
            alternative=p("adp_acp_multiplier_alternative"), spread=p("adp_acp_alternative_spread"),
            first_year_nhce=int(p("first_plan_year_nhce_percentage") * 100),
            top_paid_percent=p("top_paid_group_percent"), top_paid_age=int(p("top_paid_group_exclusion_age")),
            top_paid_service_months=int(p("top_paid_group_exclusion_service")),
            five_percent_ppm=int(p("five_percent_owner") * 10_000), one_percent_ppm=int(p("one_percent_owner") * 10_000),
            one_percent_pay=limits.cents("one_percent_owner_compensation"), top_heavy_percent=p("top_heavy_ratio"),
            top_heavy_minimum=int(p("top_heavy_minimum_contribution") * 100),
            officer_limit=int(p("top_heavy_officer_limit")), officer_minimum=int(p("top_heavy_officer_minimum")),
            officer_percent=p("top_heavy_officer_percent"),
            deadlines={name: months_after_year_end(year, value) for name, value in months.items()},
            deadline_months=months,
        )


def eligibility_problems(plan: Plan, limits: LimitTable, source: str) -> list[Problem]:
    """The plan's eligibility terms against the 410(a) maxima (cited parameters)."""
    problems = []
    maximum_age = int(limits.parameter("eligibility_maximum_age"))
    maximum_service = int(limits.parameter("eligibility_maximum_service"))
    if plan.eligibility.minimum_age > maximum_age:
        problems.append(Problem(source, "eligibility.minimum_age", f"at most {maximum_age} (IRC 410(a)(1)(A)(i))",
                                got=str(plan.eligibility.minimum_age)))
    if plan.eligibility.months_of_service > maximum_service:
        problems.append(Problem(source, "eligibility.months_of_service",
                                f"at most {maximum_service} months (IRC 410(a)(1)(A)(ii), 401(k)(2)(D))",
                                got=str(plan.eligibility.months_of_service)))
    return problems


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


@dataclass
class Employees:
    """Per-row results, aligned with the census rows."""

    plan_pay: np.ndarray
    eligible: np.ndarray
    entry: np.ndarray
    hce: np.ndarray
    hce_reasons: np.ndarray
    ownership: np.ndarray             # with 318 attribution, this year (ppm)
    prior_year_ownership: np.ndarray
    key: np.ndarray
    key_reasons: np.ndarray
    catch_up_limit: np.ndarray
    catch_up: np.ndarray              # deferrals that are catch-up before the ADP test
    excess_deferral: np.ndarray       # above 402(g): plan level (401(a)(30)) or the individual's (402(g)(1)), the larger
    adp_amount: np.ndarray            # deferrals the ADP test counts
    adr: np.ndarray
    adp_excess: np.ndarray            # allocated excess contributions (before recharacterization)
    recharacterized: np.ndarray       # of them, treated as catch-up
    adp_distribution: np.ndarray
    match_forfeited: np.ndarray
    acp_amount: np.ndarray
    acr: np.ndarray
    acp_excess: np.ndarray
    acp_from_after_tax: np.ndarray
    acp_from_match: np.ndarray
    top_heavy_minimum: np.ndarray
    employer_deferrals: np.ndarray    # the person's deferrals in every plan of the employer (401(a)(30))
    person: np.ndarray                # a person's number: the same employee_id at the same employer


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


def _per_plan(census: Census, plans: list[Plan], getter, dtype=np.int64) -> np.ndarray:
    return np.array([getter(p) for p in plans], dtype=dtype)[census.plan] if len(plans) else np.zeros(0, dtype)


def _attributed(own: np.ndarray, related: np.ndarray) -> np.ndarray:
    """Ownership counting the family member's named in related_to (318(a)(1); one level, 318(a)(5)(B))."""
    return own + np.where(related >= 0, own[np.maximum(related, 0)], 0) if len(own) else own



def build_yearend_facts(census: Census, plans: list[Plan], limits: LimitTable, year: int) -> YearendFacts:
    """Every year-end figure for every plan of a census (plans[i] is census plan code i)."""
    figures = Figures.for_year(limits, year)
    n = census.rows
    start, end = day_number(dt.date(year, 1, 1)), day_number(dt.date(year, 12, 31))
    money = census.money
    plan_pay = np.minimum(census.compensation, figures.compensation_401a17)

    # Eligibility (410(a)): age and service met, then the next entry date.
    min_age = _per_plan(census, plans, lambda p: p.eligibility.minimum_age)
    service = _per_plan(census, plans, lambda p: p.eligibility.months_of_service)
    step = _per_plan(census, plans, lambda p: _ENTRY_STEP[p.eligibility.entry])
    met = np.maximum(add_months(census.birth, 12 * min_age), add_months(census.hire, service)) if n else census.hire
    entry = entry_dates(met, step) if n else met
    eligible = (entry <= end) & (census.termination >= entry) & (census.termination >= start)

    # HCEs (414(q)): 5% owners this year or last (with 318 attribution), or paid above the look-back figure.
    ownership = _attributed(census.ownership, census.related)
    prior_ownership = _attributed(census.prior_year_ownership, census.related)
    pay_test = census.prior_year_compensation > figures.hce_threshold_lookback
    employers = Employers.of(census, plans)
    for code, plan in enumerate(plans):
        if plan.nondiscrimination_testing.top_paid_group_election:
            rows = employers.rows[plan.employer_id]
            in_plan = census.plan[rows] == code
            pay_test[rows[in_plan]] &= top_paid(census, rows, figures, employers)[in_plan]
    hce_reasons = (np.where(ownership > figures.five_percent_ppm, OWNER_THIS_YEAR, 0)
                   | np.where(prior_ownership > figures.five_percent_ppm, OWNER_PRIOR_YEAR, 0)
                   | np.where(pay_test, PAID_ABOVE_THRESHOLD, 0)).astype(np.int64)
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
        adp[code] = _adp(tested, plan, rows, figures, emp, adp_left, ratio_pay, unused[rows])
        taken, excess = np.zeros(n, np.int64), np.zeros(n, np.int64)
        taken[rows], excess[rows] = emp.recharacterized[rows], emp.adp_excess[rows]
        unused = np.where(catch_up_limit > 0, np.maximum(unused - employers.total(taken), 0), 0)
        adp_left = adp_left - employers.total(excess, in_several)
    match_left = money["employer_match"] - emp.match_forfeited
    acp_amount = np.zeros(n, np.int64)
    for code, plan, rows in codes:
        acp_amount[rows] = money["after_tax"][rows] + (match_left[rows] if _counts_match(plan) else 0)
    # One contribution ratio: the plan's own as its test counts it, and from the HCE's other plans every match and
    # after-tax contribution that would count were that plan tested, a 401(m)(11) match too (1.401(m)-2(a)(3)(ii)).
    has_match = _per_plan(census, plans, lambda p: p.match is not None, bool)
    if_tested = money["after_tax"] + np.where(has_match, match_left, 0)
    acp_total = employers.total(if_tested, in_several) - if_tested + acp_amount
    emp.acp_amount, emp.acr = acp_amount, ratios(acp_total, ratio_pay)
    acp, acp_left = {}, acp_total.copy()
    for code, plan, rows in sorted(codes, key=lambda item: item[1].plan_id):
        acp[code] = _acp(tested, plan, rows, figures, emp, acp_left, ratio_pay)
        excess = np.zeros(n, np.int64)
        excess[rows] = emp.acp_excess[rows]
        acp_left = acp_left - employers.total(excess, in_several)
    exempt = [_top_heavy_exempt(plan, money["after_tax"][rows], money["employer_nonelective"][rows])
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


def _adp(census: Census, plan: Plan, rows: np.ndarray, figures: Figures, emp: Employees, adp_total: np.ndarray,
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


def _counts_match(plan: Plan) -> bool:
    """The ACP test counts the plan's match: there is one, and it is not a 401(m)(11) safe-harbor match."""
    return plan.match is not None and not (is_safe_harbor(plan) and match_meets_401m11(plan))


def _acp(census: Census, plan: Plan, rows: np.ndarray, figures: Figures, emp: Employees, acp_total: np.ndarray,
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
    acp_applies = _counts_match(plan) or plan.contributions.after_tax or bool(after_tax.any())
    acp_tested = acp_applies and hce_rows.any() and (nhce_rows.any() or testing.method == "prior_year")
    acp_excess = np.zeros(len(rows), np.int64)
    if acp_tested and hce_acp > acp_limit:
        acp_excess[hce_rows] = _leveled(acp_total[rows][hce_rows], acp_amount[hce_rows], ratio_pay[rows][hce_rows],
                                        acp_limit)
    # After-tax contributions (unmatched) come back first, then the match.
    from_after_tax = np.minimum(acp_excess, after_tax)
    emp.acp_excess[rows], emp.acp_from_after_tax[rows] = acp_excess, from_after_tax
    emp.acp_from_match[rows] = acp_excess - from_after_tax
    return {"acp_tested": int(acp_tested), "acp_match_exempt": int(plan.match is not None and not _counts_match(plan)),
            "hce_acp": hce_acp, "nhce_acp": nhce_acp, "acp_limit": acp_limit, "acp_limit_basic": acp_basic,
            "acp_limit_alternative": acp_alternative, "acp_excess": int(acp_excess.sum())}


def _top_heavy_exempt(plan: Plan, after_tax: np.ndarray, nonelective: np.ndarray) -> bool:
    """416(g)(4)(H): a plan that consists solely of deferrals and safe-harbor money for the year - a safe-harbor
    design (match or nonelective, however the document spells it), a match that meets 401(m)(11) if any, and, in
    the year, no after-tax money and no nonelective contribution beyond the safe-harbor one. Decided year by year
    on what was contributed: a discretionary profit-sharing contribution the document allows but that was not
    made leaves the plan exempt; one made takes it out (Rev. Rul. 2004-13, Situations 1 and 2)."""
    nonelective_is_safe_harbor = plan.safe_harbor_design.is_nonelective
    return (is_safe_harbor(plan) and not after_tax.any()
            and (plan.match is None or not _counts_match(plan))
            and (nonelective_is_safe_harbor or not nonelective.any()))
