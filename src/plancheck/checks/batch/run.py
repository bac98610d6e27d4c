"""The nightly batch: spill the feed into partitions, check them in parallel, merge in order.

Output is deterministic: the partition count depends only on the feed, each partition's
findings are sorted by (plan_id, employee_id, year, pay_date, rule), and the main process
merges the sorted files, so any number of workers writes byte-identical findings.

Both phases hand their tasks (tasks.py) to an `Executor`, the one seam between the pipeline and
where it runs (plancheck.execution): in this process (one worker), in a local process pool
(`local_executor`), or on a Dask cluster (execution/cluster.py). Each builds the checker once per
worker process (tasks.CheckerSetup) and gives the tasks a `RunDir` they all see.

Every temporary file of a run (spilled partitions, per-partition findings and rejects) lives
in one run directory (execution/rundir.py), which is removed however the run ends; on an
exception, Ctrl-C or SIGTERM the workers are stopped first.

The batch writes nothing itself: findings and rejected rows stream to a `BatchSink` the caller
gives (sinks.batch writes them as JSON lines and a rejects CSV), and the summary is returned.
"""

from __future__ import annotations

import hashlib
import heapq
import resource
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Protocol

import orjson

from plancheck.checks.batch.check import PHASES, PartitionResult, PhaseClock
from plancheck.checks.batch.tasks import CheckerSetup, check_task, spill_task
from plancheck.checks.ruleset import load_rules
from plancheck.documents.feed.reader import COLUMNS, Feed, open_feed, renumber
from plancheck.documents.feed.records import RAW_CHARS, Reject
from plancheck.documents.feed.source import Source
from plancheck.documents.plan import Plan, load_plans
from plancheck.execution.executor import Executor, ExecutorFactory
from plancheck.execution.local import local_executor
from plancheck.execution.partition import partition_count, spill
from plancheck.execution.process import allow_open_files
from plancheck.findings import severity_counts


class BatchSink(Protocol):
    """Where a batch's results go, in order, while it runs."""

    def begin(self, run_id: str, ruleset_revision: str) -> None:
        """The run is identified; every event after this belongs to it."""

    def event(self, event: dict[str, Any]) -> None:
        """One event: `feed_columns_ignored` (and `batch_cluster`) before the findings."""

    def finding_json(self, event: bytes) -> None:
        """Each finding in (plan, employee, year, pay date, rule) order, as the worker serialized it: one JSON
        object (orjson), without the run's bound fields; a sink that only writes it need not parse it."""

    def rejects(self, header: list[str], rows: Iterator[list[Any]]) -> int:
        """Every rejected row in line order; return how many were written."""


@dataclass
class BatchOutcome:
    summary: dict[str, Any]
    errors: int
    #: The (plan, year) pairs of the rows checked (the run history's coverage).
    covered: list[tuple[str, int]] = field(default_factory=list)


def _lines(handle: BinaryIO) -> Iterator[list[Any]]:
    with handle:
        for line in handle:
            yield orjson.loads(line)


def _keyed(handle: BinaryIO) -> Iterator[tuple[list[Any], bytes]]:
    """A partition's findings file: (sort key, the finding's JSON) per line, only the short key parsed."""
    with handle:
        for line in handle:
            key, _tab, event = line.rstrip(b"\n").partition(b"\t")
            yield orjson.loads(key), event


def _run_id(feed: Feed, revision: str, plans: list[Plan]) -> str:
    """The run's id: the feed's name and the version it was opened at, the ruleset revision and the plans."""
    digest = hashlib.sha256(f"{feed.source.name}|{feed.version}|{revision}".encode())
    for plan in plans:
        digest.update(plan.model_dump_json().encode())
    return digest.hexdigest()[:16]


def run_batch(feed_path: Source | Path | str, plans_dir: Path, rules_dir: Path, workers: int, sink: BatchSink,
              rejects_file: str, on_read: Callable[[int], None] | None = None,
              on_partition: Callable[[int], None] | None = None,
              on_start: Callable[[int], None] | None = None,
              executor: ExecutorFactory | None = None) -> BatchOutcome:
    """Check a feed: findings and rejected rows go to `sink`, the summary comes back.

    `rejects_file` is what the summary names as the rejects file. The tasks run on `executor`
    (default: `local_executor(workers)`). InputError on unreadable input.
    """
    started = time.perf_counter()
    rulebook, limits = load_rules(rules_dir)
    plans = [plan for plan, _ in load_plans(plans_dir).values()]
    feed = open_feed(feed_path)
    feed.keep_types = True  # a Parquet feed's decimals and dates go to the partitions as they are (parse.py)
    run_id = _run_id(feed, rulebook.revision, plans)
    sink.begin(run_id, rulebook.revision)
    if feed.extra_columns:
        sink.event({"event": "feed_columns_ignored", "feed": str(feed.source), "columns": feed.extra_columns})
    partitions = partition_count(feed)
    allow_open_files(partitions + 64)  # before any worker starts: they inherit it
    with (executor or local_executor(workers))(CheckerSetup(str(rules_dir), plans), partitions) as tasks:
        if tasks.info:
            sink.event({"event": "batch_cluster", **tasks.info})
        employers = {p.plan_id: p.employer_id for p in plans if p.employer_id != p.plan_id}
        clock = PhaseClock(RUN_PHASES, since=started)
        clock.lap("start")
        pieces, shifts, rows_read, bad_rows = _spill_phase(feed, tasks, partitions, on_read, employers)
        feed.unchanged()  # a file replaced (or still growing) while it was read is not one feed
        clock.lap("read_and_spill")
        if on_start:
            on_start(len(pieces))
        results = _check_phase(pieces, shifts, tasks, on_partition)
        clock.lap("check")
        lines = lambda path: _lines(tasks.run_dir.open(path))  # noqa: E731
        # Findings were serialized by the workers: merged by their keys and handed on as they are, not re-parsed.
        for _key, event in heapq.merge(*(_keyed(tasks.run_dir.open(r.findings_path)) for r in results),
                                       key=lambda item: item[0]):
            sink.finding_json(event)
        rows_read += len(bad_rows)
        rejected = sink.rejects(rejects_header(),
                                _reject_rows(results, sorted(bad_rows, key=lambda bad: bad.line), lines))
        clock.lap("merge_and_write")
        workers, info = tasks.workers, tasks.info
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
        "feed": str(feed.source),
        "rows_read": rows_read,
        "rows_checked": checked,
        "rows_rejected": rejected,
        "employees": sum(r.employees for r in results),
        "plans": len({p for r in results for p in r.plans}),
        "years": sorted({y for r in results for y in r.years}),
        "years_without_limits": _years_without_limits(results),
        "findings": sum(by_rule.values()),
        "findings_by_rule": dict(sorted(by_rule.items())),
        "findings_by_severity": by_severity,
        "rejects_file": rejects_file,
        "partitions": len(results),
        "workers": workers,
        **({"cluster": info} if info else {}),
        "peak_memory_mb": {"main": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024,
                           "largest_worker": max((r.peak_memory_mb for r in results), default=0)},
        "seconds": round(seconds, 3),
        "phases": _profile(clock.seconds, results),
        "rows_per_second": int(rows_read / seconds) if seconds > 0 else 0,
    }
    covered = sorted({pair for r in results for pair in r.plan_years})
    return BatchOutcome(summary=summary, errors=by_severity["error"], covered=covered)


def _years_without_limits(results: list[PartitionResult]) -> dict[str, int]:
    """Rows rejected per year that rules/limits does not cover ({"2027": rows}): such a run is exit 2."""
    years: Counter[int] = Counter()
    for result in results:
        years.update(result.years_without_limits)
    return {str(year): years[year] for year in sorted(years)}


#: The phases of a whole run (the batch summary's `phases.wall`).
RUN_PHASES = ("start", "read_and_spill", "check", "merge_and_write")


def _profile(wall: dict[str, float], results: list[PartitionResult]) -> dict[str, Any]:
    """Where the time went: wall seconds of each phase of the run, and the partitions' work summed over workers."""
    work = {phase: round(sum(r.phases.get(phase, 0.0) for r in results), 3) for phase in PHASES}
    return {"wall": {phase: round(seconds, 3) for phase, seconds in wall.items()}, "partition_work": work}


def _spill_phase(feed, tasks: Executor, partitions: int, on_read: Callable[[int], None] | None,
                 employers: dict[str, str]) -> tuple[dict[int, list[str]], dict[int, list[int]], int, list[Reject]]:
    """Phase 1: split the feed into partition pieces, by ranges in parallel (CSV bytes, Parquet row groups).

    Rows go to partitions by employer and employee, so the plans of one employer are checked together.
    A partition's pieces are listed in range order, whatever order the tasks finish in, each with
    what its line numbers need added to be the file's (ranges cut without reading what precedes
    them number their lines provisionally: reader.renumber); rejected records are renumbered here.
    """
    spans = feed.ranges(tasks.workers * 4 if tasks.workers > 1 else 1)
    if len(spans) <= 1 and not tasks.remote:
        paths, rows_read = spill(feed.batches(), Path(tasks.run_dir.path), partitions, "0000", on_read, employers)
        return {k: [str(p)] for k, p in paths.items()}, {k: [0] for k in paths}, rows_read, feed.bad_rows
    feed_path = feed.source.for_workers()
    jobs = [(tasks.run_dir, feed_path, span, partitions, f"{i:04d}", employers, feed.version)
            for i, span in enumerate(spans)]
    done: dict[int, tuple[dict[int, str], int, list[Reject], int | None]] = {}
    for index, (paths, rows, bad, next_line) in tasks.map(spill_task, jobs):
        done[index] = paths, rows, bad, next_line
        if on_read:
            on_read(rows + len(bad))
    shifts = renumber(spans, [done[index][3] for index in range(len(spans))])
    pieces: dict[int, list[str]] = {}
    piece_shifts: dict[int, list[int]] = {}
    bad_rows: list[Reject] = []
    rows_read = 0
    for index in sorted(done):
        paths, rows, bad, _ = done[index]
        rows_read += rows
        shift = shifts[index]
        bad_rows.extend(replace(reject, line=reject.line + shift) for reject in bad)
        for k, path in paths.items():
            pieces.setdefault(k, []).append(path)
            piece_shifts.setdefault(k, []).append(shift)
    return pieces, piece_shifts, rows_read, bad_rows


def _check_phase(pieces: dict[int, list[str]], shifts: dict[int, list[int]], tasks: Executor,
                 on_partition: Callable[[int], None] | None) -> list[PartitionResult]:
    """Phase 2: check each partition as a task; the results in partition order."""
    jobs = [(tasks.run_dir, pieces[k], f"part-{k:04d}", shifts[k]) for k in sorted(pieces)]
    done: dict[int, PartitionResult] = {}
    for index, result in tasks.map(check_task, jobs):
        done[index] = result
        if on_partition:
            on_partition(result.rows_read)
    return [done[index] for index in sorted(done)]


#: Longest value a rejects file shows of a column.
REJECT_VALUE_CHARS = RAW_CHARS


def rejects_header() -> list[str]:
    """line, reason, the feed's own columns, and `raw` for records that could not be split into fields."""
    return ["line", "reason", *COLUMNS, "raw"]


def _reject_rows(results: list[PartitionResult], read: list[Reject],
                 lines: Callable[[str], Iterator[list[Any]]]) -> Iterator[list[Any]]:
    """Every rejected row in line order, from every stage (reader, parser, conflict check), as rejects-file cells."""
    partitions = ((Reject.from_json(item) for item in lines(r.rejects_path)) for r in results)
    for reject in heapq.merge(read, *partitions, key=lambda reject: reject.line):
        yield reject.cells(len(COLUMNS), REJECT_VALUE_CHARS)
