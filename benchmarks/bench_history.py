"""Benchmark the run history: recording 100,000 findings into SQLite, and what recording adds to a batch.

1. Record N synthetic findings (default 100,000) into a fresh SQLite file (or, with
   `--postgresql URL`, into that empty PostgreSQL database too) through the same `HistoryRun`
   the command line uses (classification by plan and year, chunked executemany, resolutions), three
   nights: the first (all new), the second (all recurring), the third (a tenth resolved).
2. Run a batch over a generated feed (benchmarks/generate_feed.py, about one finding per
   employee) in a fresh process, without and with recording (the batch's `RecordingBatchSink`
   around `BatchFiles`, two nights), and print the time spent in the history itself (opening it,
   classifying and writing the findings, waiting for the feed's hash at the end), and, as a check,
   how much longer the phase that merges and writes the findings took than without history:
   whole-batch times on this shared machine vary by more than either from one run to the next.
Peak memory is the process's maximum resident set. Not a test: it prints figures.

    python benchmarks/bench_history.py
    python benchmarks/bench_history.py --findings 100000 --employees 100000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent

_RECORD = r"""
import json, resource, sys, time
from plancheck.history.recording import HistoryRun, scope_of
from plancheck.history.store import Store
db, n = sys.argv[1], int(sys.argv[2])
store = Store(db).ready()
scope = scope_of("batch", ["acme-mega-backdoor"], None)
def finding(i):
    return {"event": "violation", "rule": "402g-deferral-limit", "severity": "error", "title": "Deferrals above 402(g)",
            "plan_id": "acme-mega-backdoor", "employee_id": f"E{i:07d}", "year": 2026, "period": 20,
            "pay_date": "2026-10-16", "line": i + 2, "limit": "24500.00", "amount": "25000.00", "excess": "500.00",
            "citation": "IRC 402(g)(1)(A); IRC 401(a)(30)", "message": "Deferrals of $25,000.00 exceed ...",
            "ytd": {"compensation": "150000.00", "deferrals": "25000.00", "annual_additions": "30000.00"}}
nights = []
for night in range(3):
    start = time.perf_counter()
    run = HistoryRun(store, "batch", scope, []).start("bench")
    for i in range(n - n // 10 if night == 2 else n):
        run.finding(finding(i))
    counts = run.close([("acme-mega-backdoor", 2026)])
    run.finish({"event": "batch_summary", **counts}, 1)
    nights.append({"seconds": time.perf_counter() - start, "new": counts["new"], "recurring": counts["recurring"],
                   "resolved": counts["resolved"]})
print(json.dumps({"nights": nights, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""

_BATCH = r"""
import json, resource, sys, time
from pathlib import Path
from plancheck.sinks import events
from plancheck.checks.batch.run import run_batch
from plancheck.sinks.batch import BatchFiles
root, feed, db = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
events.configure(open("/dev/null", "wb"))
recording = 0.0  # seconds spent in the history itself: opening, classifying, writing, waiting for the feed's hash
start = time.perf_counter()
with open("/dev/null", "wb") as rejects:
    sink = BatchFiles(rejects)
    if db:
        from plancheck.history.recording import HistoryRun, InputHashes, RecordingBatchSink, scope_of
        from plancheck.history.store import Store
        t = time.perf_counter()
        history = HistoryRun(Store(db).ready(), "batch", scope_of("batch", ["acme-mega-backdoor"], None),
                             InputHashes([feed]))  # as the command line: hashed while the batch reads the feed
        recording += time.perf_counter() - t

        class Timed(RecordingBatchSink):
            def begin(self, run_id, revision):
                global recording
                t = time.perf_counter(); self.run.start(revision, run_key=run_id); recording += time.perf_counter() - t
                self.inner.begin(run_id, revision)

            def event(self, event):
                global recording
                t = time.perf_counter(); event = self.run.finding(event); recording += time.perf_counter() - t
                self.inner.event(event)

        sink = Timed(sink, history)
    outcome = run_batch(feed, root / "plans", root / "rules", 1, sink, "/dev/null")
    if db:
        t = time.perf_counter()
        outcome.summary.update(history.close(outcome.covered))
        history.finish(outcome.summary, 1)
        recording += time.perf_counter() - t
print(json.dumps({"wall": time.perf_counter() - start, "findings": outcome.summary["findings"], "recording": recording,
                  "merge": outcome.summary["phases"]["wall"]["merge_and_write"],
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _feed(employees: int, violations: float) -> Path:
    """A generated feed (kept under benchmarks/data/ for the next run)."""
    path = HERE / "data" / f"feed-{employees}-v{violations:g}.csv"
    if not path.exists():
        subprocess.run([sys.executable, str(HERE / "generate_feed.py"), "--employees", str(employees), "--plan",
                        "acme-mega-backdoor", "--violations", str(violations), "--shuffle", "--out", str(path)],
                       check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=100_000)
    parser.add_argument("--employees", type=int, default=100_000, help="employees of the batch feed (26 rows each)")
    parser.add_argument("--violations", type=float, default=1.0,
                        help="share of the feed's employees given a problem (1.0: about one finding per employee)")
    parser.add_argument("--postgresql", metavar="URL", help="also record the synthetic findings into this empty "
                        "PostgreSQL database")
    parser.add_argument("--skip-batch", action="store_true", help="only the synthetic findings")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, url in (("SQLite", str(Path(tmp) / "h.sqlite")), ("PostgreSQL", args.postgresql)):
            if not url:
                continue
            out = subprocess.run([sys.executable, "-c", _RECORD, url, str(args.findings)],
                                 check=True, capture_output=True, text=True)
            result = json.loads(out.stdout.splitlines()[-1])
            for night, figures in enumerate(result["nights"], start=1):
                print(f"record {args.findings:,} findings into {name}, night {night} ({figures['new']:,} new, "
                      f"{figures['recurring']:,} recurring, {figures['resolved']:,} resolved): "
                      f"{figures['seconds']:.2f} s")
            print(f"  peak memory {result['peak_mb']:.0f} MB")
        if args.skip_batch:
            return

        feed = _feed(args.employees, args.violations)
        db = str(Path(tmp) / "batch.sqlite")
        merge = None
        for label, url in (("without history", ""), ("with --db (SQLite), night 1", db),
                           ("with --db (SQLite), night 2", db)):
            out = subprocess.run([sys.executable, "-c", _BATCH, str(HERE.parent), str(feed), url],
                                 check=True, capture_output=True, text=True)
            r = json.loads(out.stdout.splitlines()[-1])
            if not url:
                merge = r["merge"]
            # The findings are recorded while the batch merges them: what the history adds to that phase
            # (its larger events included) checks the time measured in the history itself.
            spent = (f", of which recording {r['recording']:.2f} s; merging and writing the "
                     f"findings {r['merge']:.2f} s ({r['merge'] - merge:+.2f} s)" if url else
                     f", of which merging and writing the findings {r['merge']:.2f} s")
            print(f"batch {feed.name} {label}: {r['wall']:.2f} s{spent}, {r['findings']:,} findings, "
                  f"peak {r['peak_mb']:.0f} MB")


if __name__ == "__main__":
    main()
