"""Generate a synthetic payroll feed (CSV or Parquet) for benchmarks and samples.

Employees are spread over the plans given, paid on each plan's schedule for one year, with
deferrals stopped at their 402(g) + catch-up limit and after-tax money kept inside 415(c), so a
clean employee has no finding. A share of employees (--violations) then gets one injected
problem each, cycling through every kind the period rules check.

    python benchmarks/generate_feed.py --employees 100000 --plan acme-mega-backdoor --out benchmarks/data/feed.csv
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from plancheck.documents.plan import load_plans
from plancheck.facts.period import PeriodRows, build_period_facts
from plancheck.facts.plan_arrays import PlanArrays
from plancheck.facts.schedule import pay_dates
from plancheck.money import apply_rate, format_cents
from plancheck.rulebook.limits import load_limits

ROOT = Path(__file__).resolve().parents[1]
KINDS = ("match", "after_tax_plan", "roth_plan", "over_402g", "over_415c", "rate_max", "exceeds_pay",
         "pretax_catch_up", "after_tax_rate", "pretax_plan")


def _money_text(cents: np.ndarray) -> pa.Array:
    whole, frac = np.divmod(cents, 100)
    return pa.array([f"{w}.{f:02d}" for w, f in zip(whole.tolist(), frac.tolist())])


def generate(employees: int, year: int, plan_ids: list[str] | None, violations: float, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    plans_by_id = {pid: plan for pid, (plan, _) in load_plans(ROOT / "plans").items()}
    plans = [plans_by_id[p] for p in (plan_ids or sorted(plans_by_id))]
    arrays = PlanArrays.from_plans(plans)
    limits = load_limits(ROOT / "rules" / "limits")
    year_limits = limits.for_year(year)
    schedules = [np.array([np.datetime64(d) for d in pay_dates(p.payroll, year)]) for p in plans]

    plan_of = rng.integers(0, len(plans), employees)
    age = rng.integers(22, 68, employees)
    birth = np.array([np.datetime64(f"{year - a}-01-01") for a in age]) + rng.integers(0, 365, employees)
    salary = np.clip(rng.lognormal(np.log(85_000), 0.55, employees), 25_000, 600_000).astype(np.int64) * 100
    fica = (salary * rng.uniform(0.85, 1.05, employees)).astype(np.int64)
    other = np.where(rng.random(employees) < 0.04, rng.integers(1_000, 12_000, employees) * 100, 0)
    defer_pct = rng.integers(0, 16, employees) * 10_000
    roth_share = np.where(arrays.allows_roth[plan_of] == 1, rng.choice([0, 0, 25, 50, 100], employees), 0)
    roth_share = np.where(arrays.allows_pretax[plan_of] == 0, 100, roth_share)
    after_pct = np.where(arrays.allows_after_tax[plan_of] == 1, rng.choice([0, 0, 0, 5, 10, 15], employees), 0) * 10_000

    periods = np.array([len(schedules[p]) for p in plan_of])
    n = int(periods.sum())
    starts = np.concatenate([[0], np.cumsum(periods)[:-1]])
    gid = np.repeat(np.arange(employees), periods)
    ordinal = np.arange(n) - starts[gid]
    comp = salary[gid] // periods[gid] + np.where(ordinal == periods[gid] - 1, salary[gid] % periods[gid], 0)

    def ytd(x: np.ndarray) -> np.ndarray:
        total = np.cumsum(x)
        return total - (total - x)[starts][gid]

    def capped(x: np.ndarray, cap: np.ndarray) -> np.ndarray:
        running = np.minimum(ytd(x), cap[gid])
        return running - np.concatenate([[0], running[:-1]]) * (ordinal > 0)

    # Deferrals stop at 402(g) + the catch-up this employee may use (Roth catch-up rules respected).
    catch_up = np.where((age >= 50) & (arrays.catch_up_offered[plan_of] == 1), year_limits.catch_up, 0)
    high = (year_limits.roth_catch_up_wages is not None) & (fica > (year_limits.roth_catch_up_wages or 0))
    catch_up = np.where(high & (roth_share < 100), 0, catch_up)
    deferrals = capped(apply_rate(comp, defer_pct[gid]), np.maximum(year_limits.deferral_402g + catch_up - other, 0))
    roth = deferrals * roth_share[gid] // 100
    pretax = deferrals - roth
    rows = PeriodRows(group_start=starts, plan_index=plan_of, year=np.full(employees, year), age=age,
                      prior_year_fica_wages=fica, other_plan_deferrals=other, period=ordinal + 1,
                      amounts={"compensation": comp, "pretax": pretax, "roth": roth,
                               "after_tax": np.zeros(n, dtype=np.int64)})
    facts = build_period_facts(rows, arrays, limits)
    room = facts["annual_additions_limit"] - (facts["ytd_annual_additions"])[np.append(starts[1:], n) - 1][gid]
    after_tax = capped(apply_rate(comp, after_pct[gid]), np.maximum(room[starts], 0))
    match, nonelective = facts["employer_match"].copy(), facts["employer_nonelective"].copy()
    pay_day = np.concatenate([schedules[p] for p in plan_of])

    # Inject one problem into a share of employees, cycling through the kinds.
    chosen = np.flatnonzero(rng.random(employees) < violations)
    for i, e in enumerate(chosen.tolist()):
        kind = KINDS[i % len(KINDS)]
        p = plans[plan_of[e]]
        first, last = starts[e], starts[e] + periods[e] - 1
        mid = first + periods[e] // 2
        if kind == "match":
            match[mid] += 2_500
        elif kind == "after_tax_plan" and not p.contributions.after_tax:
            after_tax[mid] += 10_000
        elif kind == "roth_plan" and not p.contributions.roth:
            roth[mid] += 5_000
        elif kind == "pretax_plan" and not p.contributions.pretax:
            pretax[mid] += 5_000
        elif kind == "over_402g":
            other[e] = year_limits.deferral_402g
        elif kind == "over_415c" and p.contributions.after_tax:
            after_tax[first:last + 1] += year_limits.annual_additions_415c // periods[e]
        elif kind == "rate_max" and p.contributions.max_deferral_percent is not None:
            pretax[mid] = comp[mid] * 9 // 10 if p.contributions.pretax else 0
            roth[mid] = 0 if p.contributions.pretax else comp[mid] * 9 // 10
        elif kind == "exceeds_pay":
            after_tax[mid] = 0
            pretax[mid] = comp[mid] + 1_000 if p.contributions.pretax else 0
            roth[mid] = 0 if p.contributions.pretax else comp[mid] + 1_000
        elif kind == "pretax_catch_up" and p.contributions.pretax:
            age_e = 55
            birth[e] = np.datetime64(f"{year - age_e}-03-01")
            fica[e] = 250_000_00
            per = (year_limits.deferral_402g + year_limits.catch_up) // periods[e]
            pretax[first:last + 1] = per
            roth[first:last + 1] = 0
        elif kind == "after_tax_rate" and p.contributions.max_after_tax_percent is not None:
            after_tax[mid] = comp[mid] * 45 // 100

    return pa.table({
        "plan_id": pa.array([plans[i].plan_id for i in plan_of[gid].tolist()]),
        "employee_id": pa.array([f"E{e:07d}" for e in gid.tolist()]),
        "birth_date": pa.array(birth[gid].astype(str)),
        "pay_date": pa.array(pay_day.astype(str)),
        "compensation": _money_text(comp),
        "pretax": _money_text(pretax),
        "roth": _money_text(roth),
        "after_tax": _money_text(after_tax),
        "employer_match": _money_text(match),
        "employer_nonelective": _money_text(nonelective),
        "prior_year_fica_wages": _money_text(fica[gid]),
        "other_plan_deferrals": pa.array([format_cents(v) if v else "" for v in other[gid].tolist()]),
    })


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--employees", type=int, default=1000)
    parser.add_argument("--year", type=int, default=2026)
    parser.add_argument("--plan", action="append", dest="plans", help="plan id (repeat); default: all bundled plans")
    parser.add_argument("--violations", type=float, default=0.05, help="share of employees given one problem")
    parser.add_argument("--seed", type=int, default=20261123)
    parser.add_argument("--shuffle", action="store_true", help="write rows in random order")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    table = generate(args.employees, args.year, args.plans, args.violations, args.seed)
    if args.shuffle:
        table = table.take(np.random.default_rng(args.seed).permutation(table.num_rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    if args.out.suffix == ".parquet":
        pq.write_table(table, args.out)
    else:
        pacsv.write_csv(table, args.out, pacsv.WriteOptions(quoting_style="none"))
    print(f"wrote {table.num_rows:,} rows for {args.employees:,} employees to {args.out}")


if __name__ == "__main__":
    main()
