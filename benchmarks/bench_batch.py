"""Benchmark `plancheck batch`: rows per second and peak memory, at one or more feed sizes.

Generates shuffled synthetic feeds (benchmarks/generate_feed.py) if missing, then runs the
batch in a fresh process per measurement and reads peak resident memory of the main process
and of the largest worker from getrusage. Not a test: it prints figures to compare by hand.

    python benchmarks/bench_batch.py                      # 2.6 M rows, 1 and 2 workers
    python benchmarks/bench_batch.py --employees 20000 100000 --workers 2
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATA = HERE / "data"

_RUN = r"""
import json, resource, sys, time, io
from pathlib import Path
from plancheck.sinks import events
from plancheck.checks.batch.run import run_batch
from plancheck.sinks.batch import BatchFiles
root = Path(sys.argv[1]); feed = Path(sys.argv[2]); workers = int(sys.argv[3])
sink = open("/dev/null", "wb")
events.configure(sink)
start = time.perf_counter()
with open("/dev/null", "wb") as rejects:
    outcome = run_batch(feed, root / "plans", root / "rules", workers, BatchFiles(rejects), "/dev/null")
wall = time.perf_counter() - start
print(json.dumps({"wall": wall, "summary": outcome.summary,
                  "main_peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "worker_peak_mb": outcome.summary["peak_memory_mb"]["largest_worker"]}))
"""


def feed_for(employees: int) -> Path:
    path = DATA / f"feed-{employees}.csv"
    if not path.exists():
        subprocess.run([sys.executable, str(HERE / "generate_feed.py"), "--employees", str(employees),
                        "--plan", "acme-mega-backdoor", "--violations", "0.05", "--shuffle", "--out", str(path)],
                       check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--employees", type=int, nargs="+", default=[100_000],
                        help="employees per feed (26 biweekly rows each)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    print(f"{'rows':>10} {'workers':>7} {'seconds':>8} {'rows/s':>10} {'main MB':>8} {'worker MB':>9} {'findings':>9}")
    for employees in args.employees:
        feed = feed_for(employees)
        for workers in args.workers:
            out = subprocess.run([sys.executable, "-c", _RUN, str(HERE.parent), str(feed), str(workers)],
                                 check=True, capture_output=True, text=True)
            result = json.loads(out.stdout.strip().splitlines()[-1])
            summary = result["summary"]
            print(f"{summary['rows_read']:>10,} {workers:>7} {result['wall']:>8.2f} "
                  f"{int(summary['rows_read'] / result['wall']):>10,} {result['main_peak_mb']:>8.0f} "
                  f"{result['worker_peak_mb']:>9.0f} {summary['findings']:>9,}")


if __name__ == "__main__":
    main()
