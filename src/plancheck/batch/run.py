"""The nightly batch: spill the feed into partitions, check them in parallel, merge in order.

Output is deterministic: the partition count depends only on the feed, each partition's
findings are sorted by (plan_id, employee_id, year, pay_date, rule), and the main process
merges the sorted files, so any number of workers writes byte-identical findings.
"""

from __future__ import annotations

import csv
import resource
import hashlib
import heapq
import multiprocessing
import tempfile
from contextlib import contextmanager
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from .. import events
from ..errors import InputError, Problem
from ..findings import severity_counts
from ..plan import Plan, load_plans
from ..resources import load_rules
from .check import Checker, PartitionResult, check_partition
from .feed import COLUMNS, FeedRange, open_feed
from .partition import partition_count, spill

_CHECKER: Checker | None = None


def _build_checker(rules_dir: str, plans: list[Plan], run_id: str) -> None:
    """Build the rules, plans and engine once per process."""
    global _CHECKER
    rulebook, limits = load_rules(Path(rules_dir))
    _CHECKER = Checker(rulebook, limits, plans, run_id)


def _init_worker(rules_dir: str, plans: list[Plan], run_id: str) -> None:
    """Pool initializer: one Arrow thread per worker (the workers already use every core), then the checker."""
    pa.set_cpu_count(1)
    _build_checker(rules_dir, plans, run_id)


def _spill_range(feed_path: str, span: FeedRange, directory: str, partitions: int, tag: str,
                 employers: dict[str, str]) -> tuple[dict[int, Path], int, list[tuple[int, str, str]]]:
    """Phase 1 task: read one byte range of the feed and split its rows into partition pieces."""
    feed = open_feed(Path(feed_path))
    feed.threads = False
    paths, rows = spill(feed.csv_batches(span), Path(directory), partitions, tag, employers=employers)
    return paths, rows, feed.bad_rows


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


def run_batch(feed_path: Path, plans_dir: Path, rules_dir: Path, rejects_path: Path, workers: int,
              on_read: Callable[[int], None] | None = None,
              on_partition: Callable[[int], None] | None = None,
              on_start: Callable[[int], None] | None = None) -> BatchOutcome:
    """Check a feed; emit findings and the summary as events; write rejects. InputError on unreadable input."""
    started = time.perf_counter()
    rulebook, limits = load_rules(rules_dir)
    plans = [plan for plan, _ in load_plans(plans_dir).values()]
    feed = open_feed(feed_path)
    run_id = _run_id(feed_path, rulebook.revision, plans)
    if feed.extra_columns:
        events.emit({"event": "feed_columns_ignored", "feed": str(feed_path), "columns": feed.extra_columns,
                     "run_id": run_id})
    partitions = partition_count(feed)
    # Plans of one employer are checked together: their rows share a partition.
    employers = {p.plan_id: p.employer_id for p in plans if p.employer_id != p.plan_id}
    workers = max(1, min(workers, partitions))  # a pool costs a second to start: not for a small feed
    with tempfile.TemporaryDirectory(prefix="plancheck-") as tmp, _executor(workers, rules_dir, plans, run_id) as pool:
        # Phase 1: split the feed into partitions, by byte ranges in parallel for CSV.
        spans = feed.ranges(workers * 4) if pool is not None else []
        pieces: dict[int, list[str]] = {}
        bad_rows: list[tuple[int, str, str]] = []
        rows_read = 0
        if len(spans) > 1:
            futures = [pool.submit(_spill_range, str(feed_path), span, tmp, partitions, f"{i:04d}", employers)
                       for i, span in enumerate(spans)]
            for future in futures:
                paths, rows, bad = future.result()
                rows_read += rows
                bad_rows.extend(bad)
                for k, path in paths.items():
                    pieces.setdefault(k, []).append(str(path))
                if on_read:
                    on_read(rows + len(bad))
        else:
            paths, rows_read = spill(feed.batches(), Path(tmp), partitions, "0000", on_read, employers)
            bad_rows = feed.bad_rows
            pieces = {k: [str(p)] for k, p in paths.items()}
        if on_start:
            on_start(len(pieces))
        # Phase 2: check each partition, then merge the sorted results.
        jobs = [(pieces[k], tmp, f"part-{k:04d}") for k in sorted(pieces)]
        results: list[PartitionResult] = []
        if pool is None:
            _build_checker(str(rules_dir), plans, run_id)
            outcomes = (_check(*job) for job in jobs)
        else:
            outcomes = (future.result() for future in [pool.submit(_check, *job) for job in jobs])
        for result in outcomes:
            results.append(result)
            if on_partition:
                on_partition(result.rows_read)
        for _key, event in heapq.merge(*(_lines(r.findings_path) for r in results), key=lambda item: item[0]):
            events.emit(event)
        rows_read += len(bad_rows)
        rejected = _write_rejects(rejects_path, results, sorted(bad_rows))
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
        "findings": sum(by_rule.values()),
        "findings_by_rule": dict(sorted(by_rule.items())),
        "findings_by_severity": by_severity,
        "rejects_file": str(rejects_path),
        "partitions": len(results),
        "workers": workers,
        "peak_memory_mb": {"main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                           "largest_worker": max((r.peak_memory_mb for r in results), default=0)},
        "seconds": round(seconds, 3),
        "rows_per_second": int(rows_read / seconds) if seconds > 0 else 0,
        "run_id": run_id,
        "ruleset_revision": rulebook.revision,
    }
    events.emit(summary)
    return BatchOutcome(summary=summary, errors=by_severity["error"])


@contextmanager
def _executor(workers: int, rules_dir: Path, plans: list[Plan], run_id: str) -> Iterator[ProcessPoolExecutor | None]:
    """A process pool whose workers each build the engine once; None when one worker is asked for."""
    if workers <= 1:
        yield None
        return
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_init_worker,
                             initargs=(str(rules_dir), plans, run_id)) as pool:
        yield pool


def _write_rejects(path: Path, results: list[PartitionResult], unsplit: list[tuple[int, str, str]]) -> int:
    """All rejected rows in line order: line, reason, the row's values as read (or its raw text)."""
    count = 0
    unsplit_rows = ([line, reason, [text] + [""] * (len(COLUMNS) - 1)] for line, reason, text in unsplit)
    try:
        handle = path.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise InputError(Problem(str(path), "", f"cannot write the rejects file: {exc.strerror}")) from None
    with handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "reason", *COLUMNS])
        streams = [unsplit_rows, *(_lines(r.rejects_path) for r in results)]
        for line, reason, values in heapq.merge(*streams, key=lambda item: item[0]):
            writer.writerow([line, reason, *values])
            count += 1
    return count
