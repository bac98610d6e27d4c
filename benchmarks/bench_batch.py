"""Benchmark `plancheck batch`: rows per second, peak memory and where the time goes, against a polars yardstick.

Generates shuffled synthetic feeds (benchmarks/generate_feed.py) if missing, then runs the
batch in a fresh process per measurement and reads peak resident memory of the main process
and of the largest worker from getrusage. In the same run it times an independent polars
checker of five of the rules (benchmarks/polars_reference.py) on the same feed, checks that
both find the same (plan, employee, rule, first pay date) for those rules, and prints the
ratio. Not a test: it prints figures to compare by hand.

    python benchmarks/bench_batch.py                      # 2.6 M rows, 1 and 2 workers, with the reference
    python benchmarks/bench_batch.py --employees 20000 100000 --workers 2 --no-reference
    python benchmarks/bench_batch.py --dense --workers 2       # a bad night: about one finding per employee
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

_RUN = r"""
import json, resource, sys, time
from pathlib import Path
from plancheck.sinks import events
from plancheck.checks.batch.run import run_batch
from plancheck.sinks.batch import BatchFiles
root, feed, workers, out = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
sink = open(out, "wb")
events.configure(sink)
start = time.perf_counter()
with open("/dev/null", "wb") as rejects:
    outcome = run_batch(feed, root / "plans", root / "rules", workers, BatchFiles(rejects), "/dev/null")
sink.close()
wall = time.perf_counter() - start
print(json.dumps({"wall": wall, "summary": outcome.summary,
                  "main_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_peak_mb": outcome.summary["peak_memory_mb"]["largest_worker"]}))
"""

_REFERENCE = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
start = time.perf_counter()
import polars_reference
found = polars_reference.check(Path(sys.argv[2]), Path(sys.argv[3]))
print(json.dumps({"wall": time.perf_counter() - start, "found": sorted(found)}))
"""


def feed_for(employees: int, dense: bool = False) -> Path:
    """The benchmark feed: 5% of employees with a problem, or with `dense` 90% (a bad night: about one finding per
    employee, e.g. 100,228 findings for 100,000 employees)."""
    path = DATA / (f"dense-{employees}.csv" if dense else f"feed-{employees}.csv")
    if not path.exists():
        DATA.mkdir(exist_ok=True)
        subprocess.run([sys.executable, str(HERE / "generate_feed.py"), "--employees", str(employees),
                        "--plan", "acme-mega-backdoor", "--violations", "0.9" if dense else "0.05", "--shuffle",
                        "--out", str(path)], check=True)
    return path


def run_plancheck(feed: Path, workers: int, out: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", _RUN, str(HERE.parent), str(feed), str(workers), str(out)],
                            check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def run_reference(feed: Path) -> dict:
    result = subprocess.run([sys.executable, "-c", _REFERENCE, str(HERE), str(feed), str(HERE.parent / "plans")],
                            check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def agreement(findings: Path, reference: dict, rules: tuple[str, ...]) -> str:
    with findings.open() as handle:
        mine = {(e["plan_id"], e["employee_id"], e["rule"], e["pay_date"])
                for e in map(json.loads, handle) if e.get("rule") in rules}
    theirs = {tuple(item) for item in reference["found"]}
    return "same" if mine == theirs else f"DIFFER ({len(mine - theirs)} only plancheck, {len(theirs - mine)} only polars)"


def print_profile(summary: dict) -> None:
    phases = summary.get("phases")
    if not phases:
        return
    wall, work = phases["wall"], phases["partition_work"]
    print("    wall seconds: " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in wall.items()))
    print("    partition work (all workers): " + ", ".join(f"{name} {seconds:.2f}" for name, seconds in work.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--employees", type=int, nargs="+", default=[100_000],
                        help="employees per feed (26 biweekly rows each)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--no-reference", action="store_true", help="skip the polars yardstick")
    parser.add_argument("--dense", action="store_true",
                        help="a feed where most employees have a finding (90%% given a problem) instead of 5%%")
    args = parser.parse_args()
    if not args.no_reference:
        sys.path.insert(0, str(HERE))
        from polars_reference import RULES
    print(f"{'rows':>10} {'workers':>7} {'seconds':>8} {'rows/s':>10} {'main MB':>8} {'worker MB':>9} {'findings':>9}")
    with tempfile.TemporaryDirectory() as tmp:
        for employees in args.employees:
            feed = feed_for(employees, args.dense)
            reference = None if args.no_reference else run_reference(feed)
            for workers in args.workers:
                out = Path(tmp) / f"findings-{employees}-{workers}.jsonl"
                result = run_plancheck(feed, workers, out)
                summary = result["summary"]
                print(f"{summary['rows_read']:>10,} {workers:>7} {result['wall']:>8.2f} "
                      f"{int(summary['rows_read'] / result['wall']):>10,} {result['main_peak_mb']:>8.0f} "
                      f"{result['worker_peak_mb']:>9.0f} {summary['findings']:>9,}")
                print_profile(summary)
                if reference is not None:
                    print(f"    polars reference (5 rules): {reference['wall']:.2f} s; plancheck (all rules) / "
                          f"polars = {result['wall'] / reference['wall']:.2f}; findings for those rules: "
                          f"{agreement(out, reference, RULES)}")


if __name__ == "__main__":
    main()
