"""An independent, row-by-row implementation of the period rules, for differential tests.

Written plainly from docs/design/domain.md and the conventions of docs/rules-as-data.md, sharing no code with
plancheck's vectorized facts: its own limit table, Decimal rounding, Python loops over one
person's year at one employer in (pay date, plan) order.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path

from helpers.irs_figures import FIGURES, HCE_414Q
from plancheck.documents.plan import Plan

EMPLOYER_SCOPE = {"402g-deferral-limit", "402g-individual-limit", "415c-annual-additions", "roth-catch-up-required",
                  "roth-catch-up-wages-unknown"}


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


def _entries(feed: Path, plans: dict[str, Plan]) -> dict[tuple[str, str, int], list[dict]]:
    """Rows by (employer, employee, year); employer money of another limitation year moves to that year."""
    people: dict[tuple[str, str, int], list[dict]] = defaultdict(list)
    with feed.open() as handle:
        for row in csv.DictReader(handle):
            plan = plans[row["plan_id"]]
            employer = plan.employer or plan.plan_id
            pay_year = int(row["pay_date"][:4])
            year = int(row.get("limitation_year") or pay_year)
            money = {k: cents(row[k]) for k in ("compensation", "pretax", "roth", "after_tax", "employer_match",
                                               "employer_nonelective")}
            base = {"plan_id": row["plan_id"], "pay_date": row["pay_date"], "birth": row["birth_date"],
                    "fica": row["prior_year_fica_wages"], "other": cents(row["other_plan_deferrals"])}
            if year == pay_year:
                people[(employer, row["employee_id"], pay_year)].append({**base, **money})
                continue
            own = {k: money[k] for k in ("compensation", "pretax", "roth", "after_tax")}
            if any(own.values()):
                people[(employer, row["employee_id"], pay_year)].append(
                    {**base, **own, "employer_match": 0, "employer_nonelective": 0})
            people[(employer, row["employee_id"], year)].append(
                {**base, "fica": "", "other": 0, "compensation": 0, "pretax": 0, "roth": 0, "after_tax": 0,
                 "employer_match": money["employer_match"], "employer_nonelective": money["employer_nonelective"]})
    return people


def first_breaks(feed: Path, plans: dict[str, Plan]) -> set[tuple[str, str, str, str]]:
    """{(plan_id, employee_id, rule, first pay_date)} for every rule broken."""
    found: dict[tuple, tuple[str, str]] = {}
    for (employer, employee, year), entries in _entries(feed, plans).items():
        entries.sort(key=lambda e: (e["pay_date"], e["plan_id"]))
        figures = FIGURES[year]
        g402, cu, cu6063, c415, a17, roth_wages = (x * 100 if x else x for x in (
            figures.deferral_402g, figures.catch_up, figures.catch_up_60_63, figures.annual_additions_415c,
            figures.compensation_401a17, figures.roth_catch_up_wages))
        age = year - int(entries[0]["birth"][:4])
        by_plan = defaultdict(list)
        for e in entries:
            by_plan[e["plan_id"]].append(e)
        pay = max(sum(e["compensation"] for e in es) for es in by_plan.values())
        limit_415 = min(c415, min(pay, a17)) if pay else c415
        known = [e["fica"] for e in entries if e["fica"] != ""]
        fica = max((cents(f) for f in known), default=0)
        other = max(e["other"] for e in entries)
        roth_applies = bool(known) and roth_wages is not None and fica > roth_wages
        band = 60 <= age <= 63 and cu6063 is not None
        individual = (cu6063 if band else cu) if age >= 50 else 0
        hce = HCE_414Q.get(year - 1)
        emp = defaultdict(int)           # this employer, every plan, so far
        mine = defaultdict(lambda: defaultdict(int))  # per plan, so far
        count = defaultdict(int)
        for e in entries:
            plan = plans[e["plan_id"]]
            p = mine[e["plan_id"]]
            count[e["plan_id"]] += 1
            n = count[e["plan_id"]]
            cl = 0
            if age >= 50 and plan.catch_up.offered and not (roth_applies and not plan.contributions.roth):
                cl = cu6063 if (band and plan.catch_up.age_60_63) else cu
            comp, pre, roth, at = (e[k] for k in ("compensation", "pretax", "roth", "after_tax"))
            match, ne = e["employer_match"], e["employer_nonelective"]
            deferral_cap = comp
            if plan.contributions.max_deferral_percent is not None:
                deferral_cap = pct(comp, Decimal(plan.contributions.max_deferral_percent) / 10_000)
                p["above_cap"] += max(pre + roth - deferral_cap, 0)
            if n == 1:  # catch-up already made in the employer's other plans before this plan's first entry
                p["match_catch"] = min(cl, emp["def"], max(0, emp["def"] - g402))
            plan_pay = min(comp, max(0, a17 - p["comp"]))
            for key, value in (("comp", comp), ("plan_pay", plan_pay), ("def", pre + roth), ("pre", pre),
                               ("roth", roth), ("at", at), ("match", match), ("ne", ne)):
                p[key] += value
                emp[key] += value
            # Catch-up: deferrals above the first applicable limit, up to what this plan lets the participant use.
            match_catch = min(cl, emp["def"], max(0, emp["def"] - g402, p["above_cap"]))
            step = min(max(match_catch - p["match_catch"], 0), pre + roth)
            p["match_catch"] = match_catch
            catch = min(cl, emp["def"], max(0, emp["def"] - g402, emp["def"] + emp["match"] + emp["ne"] - limit_415,
                                            p["above_cap"]))
            pretax_catch = max(catch - emp["roth"], 0)
            matched = 0
            if plan.match:
                matched = sum(v for s, v in (("pretax", pre), ("roth", roth), ("after_tax", at)) if s in plan.match.sources)
                matched = max(matched - (0 if plan.match.match_catch_up else step), 0)
            p["matched"] += matched
            p["pp_match"] += match_formula(plan_pay, matched, plan)
            low = high = p["pp_match"]
            annual = None
            if plan.match and plan.match.basis == "annual":
                annual = match_formula(p["plan_pay"], p["matched"], plan)
                low, high = min(low, annual), max(high, annual)
            if plan.match and plan.match.annual_cap is not None:
                low, high = min(low, plan.match.annual_cap), min(high, plan.match.annual_cap)
                annual = None if annual is None else min(annual, plan.match.annual_cap)
            expected = min(max(p["match"], low), high)
            additions = emp["def"] - catch + emp["at"] + emp["match"] + emp["ne"]
            checks = {
                "402g-deferral-limit": emp["def"] > g402 + cl,
                "402g-individual-limit": other > 0 and emp["def"] + other > g402 + individual,
                "415c-annual-additions": additions > limit_415,
                "after-tax-not-permitted": not plan.contributions.after_tax and p["at"] > 0,
                "roth-not-permitted": not plan.contributions.roth and p["roth"] > 0,
                "pretax-not-permitted": not plan.contributions.pretax and p["pre"] > 0,
                "catch-up-not-permitted": age >= 50 and not plan.catch_up.offered and emp["def"] > g402,
                "roth-catch-up-required": roth_applies and pretax_catch > 0,
                "roth-catch-up-wages-unknown": roth_wages is not None and not known and pretax_catch > 0,
                "roth-catch-up-without-roth-program": (roth_applies and age >= 50 and plan.catch_up.offered
                                                       and not plan.contributions.roth and emp["def"] > g402),
                "deferral-rate-above-plan-max": (plan.contributions.max_deferral_percent is not None
                                                 and pre + roth > deferral_cap and p["above_cap"] > catch),
                "after-tax-rate-above-plan-max": (plan.contributions.max_after_tax_percent is not None and at
                                                  > pct(comp, Decimal(plan.contributions.max_after_tax_percent) / 10_000)),
                "contributions-exceed-pay": pre + roth + at > comp,
                "match-formula-mismatch": abs(p["match"] - expected) > n,
                "match-true-up-owed": (annual is not None and by_plan[e["plan_id"]][-1] is e
                                       and annual - p["match"] > n),
                "after-tax-acp-risk": bool(known) and hce is not None and fica > hce * 100 and p["at"] > 0,
            }
            for rule, broken in checks.items():
                if not broken:
                    continue
                key = (employer, employee, year, rule) if rule in EMPLOYER_SCOPE else (e["plan_id"], employee, year, rule)
                found.setdefault(key, (e["plan_id"], e["pay_date"]))
    return {(plan_id, key[1], key[3], pay_date) for key, (plan_id, pay_date) in found.items()}
