"""An independent, row-by-row implementation of the period rules, for differential tests.

Written plainly from shared/DOMAIN.md and the README's conventions, sharing no code with
plancheck's vectorized facts: its own limit table, Decimal rounding, Python loops.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from plancheck.plan import Plan

# year: (402g, catch-up, 60-63 catch-up or None, 415c, 401a17, Roth catch-up wages or None), dollars
LIMITS = {2023: (22500, 7500, None, 66000, 330000, None), 2024: (23000, 7500, None, 69000, 345000, None),
          2025: (23500, 7500, 11250, 70000, 350000, None), 2026: (24500, 8000, 11250, 72000, 360000, 150000)}
HCE = {2022: 135000, 2023: 150000, 2024: 155000, 2025: 160000, 2026: 160000}


def cents(text: str) -> int:
    return int(Decimal(text or "0") * 100)


def pct(cents_value: int, percent: Decimal) -> int:
    return int((Decimal(cents_value) * percent / 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def match_formula(pay: int, matched: int, plan: Plan) -> int:
    if not plan.match:
        return 0
    units, low = Decimal(0), 0
    for tier in plan.match.tiers:
        high = pct(pay, Decimal(tier.up_to_percent) / 10_000)
        units += Decimal(min(max(matched - low, 0), max(high - low, 0))) * (Decimal(tier.rate) / 10_000) / 100
        low = high
    return int(units.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def first_breaks(feed: Path, plans: dict[str, Plan]) -> set[tuple[str, str, str, str]]:
    """{(plan_id, employee_id, rule, first pay_date)} for every rule broken."""
    groups: dict[tuple[str, str, int], list[dict]] = defaultdict(list)
    with feed.open() as handle:
        for row in csv.DictReader(handle):
            groups[(row["plan_id"], row["employee_id"], int(row["pay_date"][:4]))].append(row)
    found = set()
    for (plan_id, employee, year), rows in groups.items():
        plan = plans[plan_id]
        rows.sort(key=lambda r: r["pay_date"])
        g402, cu, cu6063, c415, a17, roth_wages = (x * 100 if x else x for x in LIMITS[year])
        age = year - int(rows[0]["birth_date"][:4])
        fica = max(cents(r["prior_year_fica_wages"]) for r in rows)
        other = max(cents(r["other_plan_deferrals"]) for r in rows)
        roth_applies = roth_wages is not None and fica > roth_wages
        catch = 0
        if age >= 50 and plan.catch_up.offered and not (roth_applies and not plan.contributions.roth):
            catch = cu6063 if (60 <= age <= 63 and plan.catch_up.age_60_63 and cu6063) else cu
        limit_415 = min(c415, min(sum(cents(r["compensation"]) for r in rows), a17))
        ytd = defaultdict(int)
        prev_catch = 0
        for n, r in enumerate(rows, start=1):
            comp, pre, roth, at = (cents(r[k]) for k in ("compensation", "pretax", "roth", "after_tax"))
            match, ne = cents(r["employer_match"]), cents(r["employer_nonelective"])
            plan_pay = min(comp, max(0, a17 - ytd["comp"]))
            ytd["comp"] += comp
            ytd["plan_pay"] += plan_pay
            ytd["def"] += pre + roth
            ytd["pre"] += pre
            ytd["roth"] += roth
            ytd["at"] += at
            ytd["match"] += match
            ytd["ne"] += ne
            catch_ytd = min(max(ytd["def"] + other - g402, 0), catch, ytd["def"])
            step = catch_ytd - prev_catch
            prev_catch = catch_ytd
            ytd["pretax_catch"] += min(pre, max(step - roth, 0))
            matched = 0
            if plan.match:
                matched = sum(v for s, v in (("pretax", pre), ("roth", roth), ("after_tax", at)) if s in plan.match.sources)
                matched = max(matched - (0 if plan.match.match_catch_up else step), 0)
            ytd["matched"] += matched
            ytd["pp_match"] += match_formula(plan_pay, matched, plan)
            low = high = ytd["pp_match"]
            if plan.match and plan.match.basis == "annual":
                annual = match_formula(ytd["plan_pay"], ytd["matched"], plan)
                low, high = min(low, annual), max(high, annual)
            if plan.match and plan.match.annual_cap is not None:
                low, high = min(low, plan.match.annual_cap), min(high, plan.match.annual_cap)
            expected = min(max(ytd["match"], low), high)
            additions = ytd["def"] - catch_ytd + ytd["at"] + ytd["match"] + ytd["ne"]
            hce = HCE.get(year - 1)
            checks = {
                "402g-deferral-limit": ytd["def"] + other > g402 + catch,
                "415c-annual-additions": additions > limit_415,
                "after-tax-not-permitted": not plan.contributions.after_tax and ytd["at"] > 0,
                "roth-not-permitted": not plan.contributions.roth and ytd["roth"] > 0,
                "pretax-not-permitted": not plan.contributions.pretax and ytd["pre"] > 0,
                "catch-up-not-permitted": age >= 50 and not plan.catch_up.offered and ytd["def"] + other > g402,
                "roth-catch-up-required": roth_applies and ytd["pretax_catch"] > 0,
                "roth-catch-up-without-roth-program": (roth_applies and age >= 50 and plan.catch_up.offered
                                                       and not plan.contributions.roth and ytd["def"] + other > g402),
                "deferral-rate-above-plan-max": (plan.contributions.max_deferral_percent is not None and pre + roth
                                                 > pct(comp, Decimal(plan.contributions.max_deferral_percent) / 10_000)),
                "after-tax-rate-above-plan-max": (plan.contributions.max_after_tax_percent is not None and at
                                                  > pct(comp, Decimal(plan.contributions.max_after_tax_percent) / 10_000)),
                "contributions-exceed-pay": pre + roth + at > comp,
                "match-formula-mismatch": abs(ytd["match"] - expected) > n,
                "after-tax-acp-risk": hce is not None and fica > hce * 100 and ytd["at"] > 0,
            }
            for rule, broken in checks.items():
                if broken and not any(f[:3] == (plan_id, employee, rule) and f[4] == year for f in found):
                    found.add((plan_id, employee, rule, r["pay_date"], year))
    return {f[:4] for f in found}
