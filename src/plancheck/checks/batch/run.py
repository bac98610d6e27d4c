"""The nightly batch: spill the feed into partitions, check them in parallel, merge in order.

Output is deterministic: the partition count depends only on the feed, each partition's
findings are sorted by (plan_id, employee_id, year, pay_date, rule), and the main process
merges the sorted files, so any number of workers writes byte-identical findings.

Every temporary file of a run (spilled partitions, per-partition findings and rejects) lives
in one run directory, `plancheck-run-*` under the system temporary directory, which is removed
however the run ends; on an exception, Ctrl-C or SIGTERM the workers are stopped first.

The batch writes nothing itself: findings and rejected rows stream to a `BatchSink` the caller
gives (sinks.batch writes them as JSON lines and a rejects CSV), and the summary is returned.
"""

from __future__ import annotations

import hashlib
import heapq
import multiprocessing
import resource
import shutil
import signal
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
import pyarrow as pa

from plancheck.checks.batch.check import (
    PHASES,
    Checker,
    PartitionResult,
    PhaseClock,
    check_partition,
    keep_freed_memory,
)
from plancheck.checks.batch.partition import partition_count, spill
from plancheck.checks.ruleset import load_rules
from plancheck.documents.feed.reader import COLUMNS, FeedRange, open_feed
from plancheck.documents.feed.records import RAW_CHARS, Reject
from plancheck.documents.plan import Plan, load_plans
from plancheck.findings import severity_counts

_CHECKER: Checker | None = None


class BatchSink(Protocol):
    """Where a batch's results go, in order, while it runs."""

    def begin(self, run_id: str, ruleset_revision: str) -> None:
        """The run is identified; every event after this belongs to it."""

    def event(self, event: dict[str, Any]) -> None:
        """One event: `feed_columns_ignored`, then each finding in (plan, employee, year, pay date, rule) order."""

    def rejects(self, header: list[str], rows: Iterator[list[Any]]) -> int:
        """Every rejected row in line order; return how many were written."""


def _build_checker(rules_dir: str, plans: list[Plan]) -> None:
    """Build the rules, plans and engine once per process."""
    global _CHECKER
    keep_freed_memory()
    rulebook, limits = load_rules(Path(rules_dir))
    _CHECKER = Checker(rulebook, limits, plans)


def _init_worker(rules_dir: str, plans: list[Plan]) -> None:
    """Pool initializer: one Arrow thread per worker (the workers already use every core), then the checker.

    Workers ignore Ctrl-C: the main process decides, and stops them (a worker interrupted on its
    own would print a traceback).
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    pa.set_cpu_count(1)
    _build_checker(rules_dir, plans)


def _spill_range(feed_path: str, span: FeedRange, directory: str, partitions: int, tag: str,
                 employers: dict[str, str]) -> tuple[dict[int, Path], int, list[Reject]]:
    """Phase 1 task: read one byte range of the feed and split its rows into partition pieces."""
    feed = open_feed(Path(feed_path))
    feed.threads = False
    paths, rows = spill(feed.csv_batches(span), Path(directory), partitions, tag, employers=employers)
    return paths, rows, feed.bad_rows


def _ready() -> None:
    """A task that does nothing: submitting it starts a worker, which builds its checker."""


def _check(pieces: list[str], out_dir: str, name: str) -> PartitionResult:
    """Phase 2 task: check one partition."""
    assert _CHECKER is not None, "worker not initialised"
    return check_partition(_CHECKER, [Path(p) for p in pieces], Path(out_dir), name)


@dataclass
class BatchOutcome:
    summary: dict[str, Any]
    errors: int


def _lines(path: str) -> Iterator[list[Any]]:
    with open(path, "rb") as handle:
        for line in handle:
            yield orjson.loads(line)


def _run_id(feed: Path, revision: str, plans: list[Plan]) -> str:
    stat = feed.stat()
    digest = hashlib.sha256(f"{feed.name}|{stat.st_size}|{stat.st_mtime_ns}|{revision}".encode())
    for plan in plans:
        digest.update(plan.model_dump_json().encode())
    return digest.hexdigest()[:16]


def run_batch(feed_path: Path, plans_dir: Path, rules_dir: Path, workers: int, sink: BatchSink,
              rejects_file: str, on_read: Callable[[int], None] | None = None,
              on_partition: Callable[[int], None] | None = None,
              on_start: Callable[[int], None] | None = None) -> BatchOutcome:
    """Check a feed: findings and rejected rows go to `sink`, the summary comes back.

    `rejects_file` is what the summary names as the rejects file. InputError on unreadable input.
    """
    started = time.perf_counter()
    rulebook, limits = load_rules(rules_dir)
    plans = [plan for plan, _ in load_plans(plans_dir).values()]
    feed = open_feed(feed_path)
    run_id = _run_id(feed_path, rulebook.revision, plans)
    sink.begin(run_id, rulebook.revision)
    if feed.extra_columns:
        sink.event({"event": "feed_columns_ignored", "feed": str(feed_path), "columns": feed.extra_columns})
    partitions = partition_count(feed)
    workers = max(1, min(workers, partitions))  # a pool costs a second to start: not for a small feed
    run_dir = tempfile.mkdtemp(prefix="plancheck-run-")
    try:
        with _executor(workers, rules_dir, plans) as pool:
            employers = {p.plan_id: p.employer_id for p in plans if p.employer_id != p.plan_id}
            clock = PhaseClock(RUN_PHASES, since=started)
            clock.lap("start")
            pieces, rows_read, bad_rows = _spill_phase(feed, pool, run_dir, partitions, on_read, employers)
            clock.lap("read_and_spill")
            if on_start:
                on_start(len(pieces))
            results = _check_phase(pieces, pool, run_dir, rules_dir, plans, on_partition)
            clock.lap("check")
            for _key, event in heapq.merge(*(_lines(r.findings_path) for r in results), key=lambda item: item[0]):
                sink.event(event)
            rows_read += len(bad_rows)
            rejected = sink.rejects(rejects_header(), _reject_rows(results, sorted(bad_rows, key=lambda bad: bad.line)))
            clock.lap("merge_and_write")
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    by_rule: Counter[str] = Counter()
    for result in results:
        by_rule.update(result.findings_by_rule)
    by_severity = severity_counts(rulebook.by_id[rule_id].severity for rule_id in by_rule.elements())
    checked = sum(r.rows_checked for r in results)
    if rows_read != checked + rejected or rows_read != sum(r.rows_read for r in results) + len(bad_rows):
        raise RuntimeError(f"counts do not reconcile: read {rows_read}, checked {checked}, rejected {rejected}")
    seconds = time.perf_counter() - started
    summary = {
        "event": "batch_summary",
        "feed": str(feed_path),
        "rows_read": rows_read,
        "rows_checked": checked,
        "rows_rejected": rejected,
        "employees": sum(r.employees for r in results),
        "plans": len({p for r in results for p in r.plans}),
        "years": sorted({y for r in results for y in r.years}),
        "findings": sum(by_rule.values()),
        "findings_by_rule": dict(sorted(by_rule.items())),
        "findings_by_severity": by_severity,
        "rejects_file": rejects_file,
        "partitions": len(results),
        "workers": workers,
        "peak_memory_mb": {"main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                           "largest_worker": max((r.peak_memory_mb for r in results), default=0)},
        "seconds": round(seconds, 3),
        "phases": _profile(clock.seconds, results),
        "rows_per_second": int(rows_read / seconds) if seconds > 0 else 0,
    }
    return BatchOutcome(summary=summary, errors=by_severity["error"])


#: The phases of a whole run (the batch summary's `phases.wall`).
RUN_PHASES = ("start", "read_and_spill", "check", "merge_and_write")


def _profile(wall: dict[str, float], results: list[PartitionResult]) -> dict[str, Any]:
    """Where the time went: wall seconds of each phase of the run, and the partitions' work summed over workers."""
    work = {phase: round(sum(r.phases.get(phase, 0.0) for r in results), 3) for phase in PHASES}
    return {"wall": {phase: round(seconds, 3) for phase, seconds in wall.items()}, "partition_work": work}


def _spill_phase(feed, pool: ProcessPoolExecutor | None, run_dir: str, partitions: int,
                 on_read: Callable[[int], None] | None,
                 employers: dict[str, str]) -> tuple[dict[int, list[str]], int, list[Reject]]:
    """Phase 1: split the feed into partition pieces, by byte ranges in parallel for CSV.

    Rows go to partitions by employer and employee, so the plans of one employer are checked together.
    """
    spans = feed.ranges(_workers_of(pool) * 4) if pool is not None else []
    if len(spans) <= 1:
        paths, rows_read = spill(feed.batches(), Path(run_dir), partitions, "0000", on_read, employers)
        return {k: [str(p)] for k, p in paths.items()}, rows_read, feed.bad_rows
    pieces: dict[int, list[str]] = {}
    bad_rows: list[Reject] = []
    rows_read = 0
    futures = [pool.submit(_spill_range, str(feed.path), span, run_dir, partitions, f"{i:04d}", employers)
               for i, span in enumerate(spans)]
    for future in futures:
        paths, rows, bad = future.result()
        rows_read += rows
        bad_rows.extend(bad)
        for k, path in paths.items():
            pieces.setdefault(k, []).append(str(path))
        if on_read:
            on_read(rows + len(bad))
    return pieces, rows_read, bad_rows


def _check_phase(pieces: dict[int, list[str]], pool: ProcessPoolExecutor | None, run_dir: str, rules_dir: Path,
                 plans: list[Plan], on_partition: Callable[[int], None] | None) -> list[PartitionResult]:
    """Phase 2: check each partition (in the pool when there is one), in partition order."""
    jobs = [(pieces[k], run_dir, f"part-{k:04d}") for k in sorted(pieces)]
    if pool is None:
        _build_checker(str(rules_dir), plans)
        outcomes: Iterator[PartitionResult] = (_check(*job) for job in jobs)
    else:
        outcomes = (future.result() for future in [pool.submit(_check, *job) for job in jobs])
    results = []
    for result in outcomes:
        results.append(result)
        if on_partition:
            on_partition(result.rows_read)
    return results


def _workers_of(pool: ProcessPoolExecutor) -> int:
    return pool._max_workers  # noqa: SLF001 - the count the pool was built with


@contextmanager
def _executor(workers: int, rules_dir: Path, plans: list[Plan]) -> Iterator[ProcessPoolExecutor | None]:
    """A process pool whose workers each build the engine once; None when one worker is asked for.

    If the run fails or is interrupted, the workers are stopped at once rather than left to
    finish their partitions.
    """
    if workers <= 1:
        yield None
        return
    context = multiprocessing.get_context("forkserver")
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                               initargs=(str(rules_dir), plans))
    for _ in range(workers):  # start every worker now: they build their engines while the feed is cut into ranges
        pool.submit(_ready)
    try:
        yield pool
    except BaseException:
        _stop(pool)
        raise
    pool.shutdown(wait=True)


def _stop(pool: ProcessPoolExecutor) -> None:
    """Cancel what is queued, terminate the worker processes (kill any that linger), and wait for them."""
    processes = list((pool._processes or {}).values())  # noqa: SLF001 - the executor offers no kill
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=2)
        if process.is_alive():
            process.kill()
            process.join(timeout=2)
    pool.shutdown(wait=True, cancel_futures=True)


#: Longest value a rejects file shows of a column.
REJECT_VALUE_CHARS = RAW_CHARS


def rejects_header() -> list[str]:
    """line, reason, the feed's own columns, and `raw` for records that could not be split into fields."""
    return ["line", "reason", *COLUMNS, "raw"]


def _reject_rows(results: list[PartitionResult], read: list[Reject]) -> Iterator[list[Any]]:
    """Every rejected row in line order, from every stage (reader, parser, conflict check), as rejects-file cells."""
    partitions = ((Reject.from_json(item) for item in _lines(r.rejects_path)) for r in results)
    for reject in heapq.merge(read, *partitions, key=lambda reject: reject.line):
        yield reject.cells(len(COLUMNS), REJECT_VALUE_CHARS)
