"""An independent vectorized checker in polars: the yardstick plancheck's batch is timed against.

It shares no code with plancheck: it reads the plan YAML itself, keeps its own table of IRS
figures (docs/design/domain.md) and decides five of the period rules as their pages under
docs/reference/rules/period/ state them,
for a clean feed (no bad rows, one plan per employer):

    402g-deferral-limit         deferrals this year > 402(g) + the catch-up the plan lets the participant use
    contributions-exceed-pay    pretax + Roth + after-tax of a pay date > its pay
    after-tax-not-permitted     after-tax money in a plan without after-tax
    roth-not-permitted          Roth money in a plan without Roth
    after-tax-rate-above-plan-max  after-tax of a pay date > the plan's % of that pay (rounded half up)

Each rule is reported once per employee and year, at its first pay date, as plancheck does.

    python benchmarks/polars_reference.py FEED.csv [--plans plans]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import polars as pl
import yaml

# year: (402(g), catch-up, 60-63 catch-up or None, Roth catch-up wage threshold or None), in cents
FIGURES = {2023: (2_250_000, 750_000, None, None), 2024: (2_300_000, 750_000, None, None),
           2025: (2_350_000, 750_000, 1_125_000, None), 2026: (2_450_000, 800_000, 1_125_000, 15_000_000)}
RULES = ("402g-deferral-limit", "contributions-exceed-pay", "after-tax-not-permitted", "roth-not-permitted",
         "after-tax-rate-above-plan-max")
MONEY = ("compensation", "pretax", "roth", "after_tax", "prior_year_fica_wages")


def _plans(folder: Path) -> pl.DataFrame:
    rows = []
    for path in sorted(folder.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text())
        contributions, catch_up = doc.get("contributions", {}), doc.get("catch_up", {})
        rows.append({"plan_id": doc["plan_id"], "allows_roth": bool(contributions.get("roth", False)),
                     "allows_after_tax": bool(contributions.get("after_tax", False)),
                     "max_after_tax_ppm": int(round(float(contributions.get("max_after_tax_percent", -1)) * 10_000))
                     if contributions.get("max_after_tax_percent") is not None else -1,
                     "catch_up_offered": bool(catch_up.get("offered", False)),
                     "catch_up_60_63": bool(catch_up.get("offered", False) and catch_up.get("age_60_63", False))})
    return pl.DataFrame(rows)


def _cents(column: str) -> pl.Expr:
    """Dollars as text to integer cents through polars' exact decimal type (no floats); empty is zero."""
    text = pl.col(column).replace("", None)
    return (text.cast(pl.Decimal(18, 2)) * 100).cast(pl.Int64).fill_null(0).alias(column)


def check(feed: Path, plans_dir: Path) -> set[tuple[str, str, str, str]]:
    """{(plan_id, employee_id, rule, first pay_date)} for the five rules."""
    figures = pl.DataFrame([{"year": y, "limit_402g": f[0], "catch_up": f[1], "catch_up_60_63_amount": f[2] or 0,
                             "has_60_63": f[2] is not None, "roth_wages": f[3] or 0, "has_roth_rule": f[3] is not None}
                            for y, f in FIGURES.items()])
    rows = (pl.scan_csv(feed, infer_schema=False)
            .with_columns([(pl.col("prior_year_fica_wages").fill_null("") != "").alias("fica_known")])
            .with_columns([_cents(c) for c in MONEY]
                          + [
                             pl.col("pay_date").str.slice(0, 4).cast(pl.Int64).alias("year"),
                             pl.col("birth_date").str.slice(0, 4).cast(pl.Int64).alias("birth_year")])
            .join(_plans(plans_dir).lazy(), on="plan_id")
            .join(figures.lazy(), on="year")
            .sort(["plan_id", "employee_id", "year", "pay_date"]))
    group = ["plan_id", "employee_id", "year"]
    age = pl.col("year") - pl.col("birth_year")
    band = pl.col("has_60_63") & pl.col("catch_up_60_63") & (age >= 60) & (age <= 63)
    roth_rule = pl.col("has_roth_rule") & pl.col("fica_known") & (pl.col("prior_year_fica_wages") > pl.col("roth_wages"))
    usable = (pl.when((age >= 50) & pl.col("catch_up_offered") & ~(roth_rule & ~pl.col("allows_roth")))
              .then(pl.when(band).then(pl.col("catch_up_60_63_amount")).otherwise(pl.col("catch_up"))).otherwise(0))
    rates = ((pl.col("compensation") * pl.col("max_after_tax_ppm") + 500_000) // 1_000_000)
    conditions = {
        "402g-deferral-limit": (pl.col("pretax") + pl.col("roth")).cum_sum().over(group, order_by="pay_date") > pl.col("limit_402g") + usable,
        "contributions-exceed-pay": pl.col("pretax") + pl.col("roth") + pl.col("after_tax") > pl.col("compensation"),
        "after-tax-not-permitted": ~pl.col("allows_after_tax") & (pl.col("after_tax").cum_sum().over(group, order_by="pay_date") > 0),
        "roth-not-permitted": ~pl.col("allows_roth") & (pl.col("roth").cum_sum().over(group, order_by="pay_date") > 0),
        "after-tax-rate-above-plan-max": (pl.col("max_after_tax_ppm") >= 0) & (pl.col("after_tax") > rates),
    }
    flagged = rows.with_columns([condition.alias(rule) for rule, condition in conditions.items()])
    firsts = [flagged.filter(pl.col(rule)).group_by(group).agg(pl.col("pay_date").min()).with_columns(pl.lit(rule).alias("rule"))
              for rule in conditions]
    found = pl.concat(firsts).select(["plan_id", "employee_id", "rule", "pay_date"]).collect()
    return set(found.iter_rows())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("feed", type=Path)
    parser.add_argument("--plans", type=Path, default=Path(__file__).resolve().parents[1] / "plans")
    args = parser.parse_args()
    started = time.perf_counter()
    found = check(args.feed, args.plans)
    print(f"{len(found):,} findings in {time.perf_counter() - started:.2f} s")


if __name__ == "__main__":
    main()
