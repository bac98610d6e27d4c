"""Random small payroll feeds for tests: any plans, years 2023-2026, violations, shuffled rows."""

from __future__ import annotations

import csv
import random
from pathlib import Path

from plancheck.documents.plan import Plan
from plancheck.facts.schedule import pay_dates

COLUMNS = ["plan_id", "employee_id", "birth_date", "pay_date", "compensation", "pretax", "roth", "after_tax",
           "employer_match", "employer_nonelective", "prior_year_fica_wages", "other_plan_deferrals"]
#: The optional column, written by random_feed(variety=True).
LIMITATION_YEAR = "limitation_year"


def money(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def random_feed(path: Path, plans: dict[str, Plan], seed: int, employees: int = 40,
                high_earners_2026: bool = False, variety: bool = False) -> list[dict]:
    """Write a shuffled feed; `high_earners_2026` makes every employee a 50+ high earner in 2026.

    `variety` adds what real feeds hold besides: employees in a second plan of the same employer
    (same employee_id), prior-year wages left empty (unknown), and employer deposits made after
    year end for the year before (the limitation_year column).
    """
    rng = random.Random(seed)
    rows = []
    by_employer: dict[str, list[Plan]] = {}
    for plan in sorted(plans.values(), key=lambda p: p.plan_id):
        by_employer.setdefault(plan.employer_id, []).append(plan)
    jobs = []
    for e in range(employees):
        plan = rng.choice(sorted(plans.values(), key=lambda p: p.plan_id))
        jobs.append((e, plan))
        sisters = [p for p in by_employer[plan.employer_id] if p is not plan]
        if variety and sisters and rng.random() < 0.5:
            jobs.append((e, rng.choice(sisters)))
    people: dict[int, tuple] = {}
    for e, plan in jobs:
        if e not in people:
            year = 2026 if high_earners_2026 else rng.choice([2023, 2024, 2025, 2026])
            age = rng.choice([50, 55, 61, 63]) if high_earners_2026 else rng.choice([30, 45, 49, 50, 55, 59, 60, 61, 63, 64, 66])
            fica = rng.choice([0, 90_000_00, 149_999_99, 150_000_01, 155_000_01, 300_000_00])
            if high_earners_2026:
                fica = rng.choice([150_000_00, 150_000_01, 400_000_00])
            fica_text = "" if variety and rng.random() < 0.25 else money(fica)
            other = rng.choice(["", "", "", "5000.00", "20000.00"])
            people[e] = (year, f"{year - age}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", fica_text, other)
        year, birth, fica_text, other = people[e]
        pay = rng.choice([1500_00, 4000_00, 9000_00, 16000_00, 40000_00]) // (4 if plan.payroll.frequency == "weekly" else 1)
        dates = pay_dates(plan.payroll, year)
        dates = dates[rng.randint(0, len(dates) // 3):]
        defer = rng.choice([20, 30, 40]) if high_earners_2026 else rng.choice([0, 3, 6, 10, 20, 40, 80])
        roth_share = rng.choice([0, 50, 100])
        after = rng.choice([0, 0, 5, 20, 60])
        for d in dates:
            comp = pay + rng.choice([0, 0, 0, 1234_56])
            total = comp * defer // 100
            roth = total * roth_share // 100
            pretax = total - roth
            after_tax = comp * after // 100
            match = 0
            if plan.match:
                match = min(total, comp * 6 // 100) // 2 + rng.choice([0, 0, 0, 0, 1, 2500])
            nonelective = comp * 3 // 100 if plan.nonelective else 0
            rows.append({"plan_id": plan.plan_id, "employee_id": f"E{seed}-{e:03d}", "birth_date": birth,
                         "pay_date": d.isoformat(), "compensation": money(comp), "pretax": money(pretax),
                         "roth": money(roth), "after_tax": money(after_tax), "employer_match": money(match),
                         "employer_nonelective": money(nonelective), "prior_year_fica_wages": fica_text,
                         "other_plan_deferrals": other})
        if variety and year < 2026 and rng.random() < 0.4:  # a deposit for this year, made in March of the next
            rows.append({**rows[-1], "pay_date": f"{year + 1}-03-{rng.randint(1, 28):02d}", "compensation": "0.00",
                         "pretax": "0.00", "roth": "0.00", "after_tax": "0.00", "employer_match": "0.00",
                         "employer_nonelective": money(rng.choice([1000_00, 5000_00, 30000_00])),
                         LIMITATION_YEAR: str(year)})
    rng.shuffle(rows)
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS + [LIMITATION_YEAR] if variety else COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return rows


def feed_with_bad_rows(path: Path, plans: dict[str, Plan], seed: int, employees: int = 120,
                       parquet_row_group: int | None = None) -> Path:
    """A random feed with bad rows spread through it, as CSV, or as Parquet of `parquet_row_group` rows a group.

    The bad rows: a date that does not exist, an unknown plan, a duplicate pay date, a value
    over 256 characters, a birth date that conflicts with the employee's first row; the CSV
    also gets a record with too few fields (Parquet cannot hold one).
    """
    rows = random_feed(path.with_suffix(".tmp.csv"), plans, seed, employees=employees)
    path.with_suffix(".tmp.csv").unlink()
    rng = random.Random(seed)
    bad = [{**rows[0], "pay_date": "2024-02-30"}, {**rows[1], "plan_id": "no-such-plan"}, dict(rows[2]),
           {**rows[3], "employee_id": "X" * 300}, {**rows[4], "birth_date": "1950-01-01"}]
    for row in bad:
        rows.insert(rng.randrange(len(rows) + 1), row)
    if parquet_row_group is not None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.table({c: pa.array([r[c] for r in rows], type=pa.string()) for c in COLUMNS})
        pq.write_table(table, path, row_group_size=parquet_row_group)
        return path
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()
        for i, row in enumerate(rows):
            writer.writerow(row)
            if i == len(rows) // 2:
                handle.write("acme-mega-backdoor,E9,1980-01-01\n")
    return path
