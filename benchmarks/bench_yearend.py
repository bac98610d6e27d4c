"""Benchmark `plancheck yearend`: a synthetic census of N employees, seconds, rows/s and peak memory.

Generates benchmarks/data/census-<N>.csv (seeded, vectorized) if missing, then runs the whole
command (read, validate, facts, engine, events to /dev/null, rejects) in a fresh process.
Not a test: it prints figures to compare by hand.

    python benchmarks/bench_yearend.py                    # 1,000,000 employees
    python benchmarks/bench_yearend.py --employees 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"
PLANS = ("acme-mega-backdoor", "bayside-safe-harbor", "cedar-tiered-match", "delta-annual-true-up",
         "evergreen-roth-only", "monthly-mega-backdoor")

_RUN = r"""
import json, resource, sys, time
from pathlib import Path
from typer.testing import CliRunner
from plancheck.cli import app
root, census = Path(sys.argv[1]), sys.argv[2]
start = time.perf_counter()
result = CliRunner().invoke(app, ["yearend", census, "--plans", str(root / "plans"), "--year", "2026",
                                  "--out", "/dev/null", "--rejects", "/dev/null"])
wall = time.perf_counter() - start
print(json.dumps({"wall": wall, "exit": result.exit_code, "stderr": result.output.strip()[-300:],
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _dollars(cents: np.ndarray) -> np.ndarray:
    return np.char.add(np.char.add((cents // 100).astype(str), "."), np.char.zfill((cents % 100).astype(str), 2))


def _dates(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype(str)


def census_for(employees: int, seed: int = 9) -> Path:
    """A census of `employees` rows over the bundled plans: ~8% HCEs, after-tax savers, owners, officers."""
    path = DATA / f"census-{employees}.csv"
    if path.exists():
        return path
    DATA.mkdir(exist_ok=True)
    rng = np.random.default_rng(seed)
    n = employees
    plan = np.array(PLANS)[rng.integers(0, len(PLANS), n)]
    pay = (np.exp(rng.normal(11.1, 0.55, n)) * 100).astype(np.int64)
    prior = (pay * rng.uniform(0.9, 1.05, n)).astype(np.int64)
    birth = rng.integers(np.datetime64("1960-01-01").astype(int), np.datetime64("2004-12-31").astype(int), n)
    hire = np.maximum(birth + 18 * 366, rng.integers(np.datetime64("2000-01-01").astype(int),
                                                     np.datetime64("2026-12-01").astype(int), n))
    term = np.where(rng.random(n) < 0.05, rng.integers(np.datetime64("2026-01-01").astype(int),
                                                       np.datetime64("2026-12-31").astype(int), n), -1)
    term = np.where(term >= hire, term, -1)
    high = prior > 16_000_000
    rate = np.where(high, rng.integers(8, 16, n), np.where(rng.random(n) < 0.2, 0, rng.integers(1, 9, n)))
    pretax = np.minimum(pay * rate // 100, 2_450_000)
    roth = np.where(rng.random(n) < 0.3, pretax // 3, 0)
    pretax -= roth
    mega = np.isin(plan, ["acme-mega-backdoor", "monthly-mega-backdoor"])
    after_tax = np.where(mega & (rng.random(n) < np.where(high, 0.5, 0.05)), np.minimum(pay // 10, 3_000_000), 0)
    match = (pretax + roth) // 2
    owner = np.where(rng.random(n) < 0.002, rng.integers(1, 30, n), 0)
    officer = rng.random(n) < 0.01
    balance = (pay * rng.uniform(0, 3, n)).astype(np.int64)
    ids = np.char.add("E", np.char.zfill(np.arange(n).astype(str), 8))
    empty = np.full(n, "", dtype=object)
    columns = {
        "plan_id": plan, "employee_id": ids, "birth_date": _dates(birth), "hire_date": _dates(hire),
        "termination_date": np.where(term >= 0, _dates(np.maximum(term, 0)), ""), "compensation": _dollars(pay),
        "prior_year_compensation": _dollars(prior), "ownership_percent": np.where(owner > 0, owner.astype(str), ""),
        "prior_year_ownership_percent": np.where(owner > 0, owner.astype(str), ""), "related_to": empty,
        "officer": np.where(officer, "true", "false"), "pretax": _dollars(pretax), "roth": _dollars(roth),
        "after_tax": _dollars(after_tax), "employer_match": _dollars(match), "employer_nonelective": empty,
        "account_balance": _dollars(balance),
    }
    with path.open("w") as handle:
        handle.write(",".join(columns) + "\n")
        step = 200_000
        for start in range(0, n, step):
            block = [np.asarray(c[start:start + step]).astype(str) for c in columns.values()]
            handle.write("\n".join(",".join(row) for row in zip(*block)) + "\n")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--employees", type=int, nargs="+", default=[1_000_000])
    args = parser.parse_args()
    root = HERE.parent
    print(f"{'employees':>10} {'seconds':>8} {'rows/s':>10} {'peak MB':>8}")
    for employees in args.employees:
        path = census_for(employees)
        out = subprocess.run([sys.executable, "-c", _RUN, str(root), str(path)], capture_output=True, text=True,
                             check=True)
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        if figures["exit"] not in (0, 1):
            raise SystemExit(f"yearend failed: {figures['stderr']}")
        print(f"{employees:>10,} {figures['wall']:>8.2f} {int(employees / figures['wall']):>10,} "
              f"{figures['peak_mb']:>8.0f}")


if __name__ == "__main__":
    main()
