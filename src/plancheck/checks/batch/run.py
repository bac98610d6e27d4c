"""The nightly batch: spill the feed into partitions, check them in parallel, merge in order.

Output is deterministic: the partition count depends only on the feed, each partition's
findings are sorted by (plan_id, employee_id, year, pay_date, rule), and the main process
merges the sorted files, so any number of workers writes byte-identical findings.

Both phases hand their tasks to an `Executor`, the one seam between the pipeline and where it
runs: in this process (one worker), in a local process pool (`local_executor`), or on a Dask
cluster (checks/batch/cluster.py). Each builds the checker once per worker process and gives
the tasks a `RunDir` they all see.

Every temporary file of a run (spilled partitions, per-partition findings and rejects) lives
in one run directory, `plancheck-run-*` under the system temporary directory (or the cluster's
work directory), which is removed however the run ends; on an exception, Ctrl-C or SIGTERM the
workers are stopped first.

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
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, BinaryIO, Protocol

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
from plancheck.documents.feed.reader import COLUMNS, Feed, FeedRange, open_feed, renumber
from plancheck.documents.feed.records import RAW_CHARS, Reject
from plancheck.documents.feed.source import Source
from plancheck.documents.plan import Plan, load_plans
from plancheck.findings import severity_counts

_CHECKER: Checker | None = None


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
                 employers: dict[str, str], version: str) -> tuple[dict[int, Path], int, list[Reject], int | None]:
    """Phase 1 task: read one range of the feed (CSV bytes or Parquet row groups) and split its rows into
    partition pieces; also the line just past the range as it numbered them (reader.renumber). The feed
    must still be the `version` the run opened, before and after the range is read."""
    feed = open_feed(feed_path)
    feed.unchanged(version)  # the version this process opened is the run's
    feed.threads, feed.keep_types = False, True
    paths, rows = spill(feed.range_batches(span), Path(directory), partitions, tag, employers=employers)
    feed.unchanged()  # and the file is still that version now
    return paths, rows, feed.bad_rows, feed.next_line


def _ready() -> None:
    """A task that does nothing: submitting it starts a worker, which builds its checker."""


def _check(pieces: list[str], out_dir: str, name: str, shifts: list[int] | None = None) -> PartitionResult:
    """Phase 2 task: check one partition (its pieces' line numbers shifted to the file's, reader.renumber)."""
    assert _CHECKER is not None, "worker not initialised"
    return check_partition(_CHECKER, [Path(p) for p in pieces], Path(out_dir), name, shifts)


@dataclass
class RunDir:
    """Where a run's spill pieces and per-partition outputs live: a directory every worker process sees.

    A cluster may run a task twice (its worker was lost): with `per_attempt` each attempt names
    its files apart, so a late first attempt can never overwrite what the run goes on with.
    Subclasses keep the files elsewhere (an fsspec URL: cluster.py) and stage them per task.
    """

    path: str
    per_attempt: bool = False

    def attempt(self) -> str:
        """A suffix for the names of one task attempt's files."""
        return f"-{uuid.uuid4().hex[:8]}" if self.per_attempt else ""

    @contextmanager
    def writable(self) -> Iterator[str]:
        """A local directory a task writes its files into; `keep` each one."""
        yield self.path

    def keep(self, local: str) -> str:
        """A file a task wrote into `writable()`, as the run will name it."""
        return local

    @contextmanager
    def readable(self, paths: list[str]) -> Iterator[list[str]]:
        """The run's files as local paths, for one task."""
        yield paths

    def open(self, path: str) -> BinaryIO:
        return open(path, "rb")

    def remove(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _spill_task(run_dir: RunDir, feed_path: str, span: FeedRange, partitions: int, tag: str,
                employers: dict[str, str], version: str) -> tuple[dict[int, str], int, list[Reject], int | None]:
    """Phase 1 as a task: `_spill_range` into the run directory."""
    with run_dir.writable() as directory:
        paths, rows, bad_rows, next_line = _spill_range(feed_path, span, directory, partitions,
                                                        tag + run_dir.attempt(), employers, version)
        return {k: run_dir.keep(str(path)) for k, path in paths.items()}, rows, bad_rows, next_line


def _check_task(run_dir: RunDir, pieces: list[str], name: str, shifts: list[int] | None = None) -> PartitionResult:
    """Phase 2 as a task: `_check` one partition's pieces into the run directory."""
    with run_dir.readable(pieces) as local, run_dir.writable() as out_dir:
        result = _check(local, out_dir, name + run_dir.attempt(), shifts)
        result.findings_path = run_dir.keep(result.findings_path)
        result.rejects_path = run_dir.keep(result.rejects_path)
        return result


class Executor(Protocol):
    """Where a run's tasks run. The pipeline below is one path whichever it is."""

    #: Tasks that run at once (a feed is read in about 4x as many ranges).
    workers: int
    #: The tasks run where this process's files may not be seen (a cluster): even one range is a task.
    remote: bool
    run_dir: RunDir
    #: Where the run went, for the `batch_cluster` event and the summary (empty when local).
    info: dict[str, Any]

    def map(self, fn: Callable[..., Any], jobs: list[tuple]) -> Iterator[tuple[int, Any]]:
        """Run fn(*job) for each job; yield (job index, result) as each finishes. A task's exception is raised."""


#: Makes the executor of a run: (rules dir, plans, partitions) -> a context that yields it and cleans up.
ExecutorFactory = Callable[[Path, list[Plan], int], AbstractContextManager[Executor]]


@dataclass
class _Inline:
    """One worker: tasks run in this process, one after another."""

    run_dir: RunDir
    workers: int = 1
    remote: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def map(self, fn: Callable[..., Any], jobs: list[tuple]) -> Iterator[tuple[int, Any]]:
        for index, job in enumerate(jobs):
            yield index, fn(*job)


@dataclass
class _Pool:
    """A local process pool whose workers built the checker in their initializer."""

    pool: ProcessPoolExecutor
    workers: int
    run_dir: RunDir
    remote: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    def map(self, fn: Callable[..., Any], jobs: list[tuple]) -> Iterator[tuple[int, Any]]:
        futures = {self.pool.submit(fn, *job): index for index, job in enumerate(jobs)}
        for future in as_completed(futures):
            yield futures[future], future.result()


def local_executor(workers: int) -> ExecutorFactory:
    """This machine: `workers` processes (no more than there are partitions), in this process when one."""

    @contextmanager
    def make(rules_dir: Path, plans: list[Plan], partitions: int) -> Iterator[Executor]:
        count = max(1, min(workers, partitions))  # a pool costs a second to start: not for a small feed
        run_dir = RunDir(tempfile.mkdtemp(prefix="plancheck-run-"))
        try:
            if count <= 1:
                _build_checker(str(rules_dir), plans)
                yield _Inline(run_dir)
            else:
                with _executor(count, rules_dir, plans) as pool:
                    yield _Pool(pool, count, run_dir)
        finally:
            run_dir.remove()

    return make


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
    with (executor or local_executor(workers))(rules_dir, plans, partitions) as tasks:
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


def allow_open_files(count: int) -> None:
    """A spill task holds a file open per partition, and so does the merge (up to MAX_PARTITIONS, 1,024): raise
    the soft limit on open files toward the hard one where it is lower (1,024 is a common default)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < count:
        wanted = count if hard == resource.RLIM_INFINITY else min(count, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


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
    for index, (paths, rows, bad, next_line) in tasks.map(_spill_task, jobs):
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
    for index, result in tasks.map(_check_task, jobs):
        done[index] = result
        if on_partition:
            on_partition(result.rows_read)
    return [done[index] for index in sorted(done)]


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


def _reject_rows(results: list[PartitionResult], read: list[Reject],
                 lines: Callable[[str], Iterator[list[Any]]]) -> Iterator[list[Any]]:
    """Every rejected row in line order, from every stage (reader, parser, conflict check), as rejects-file cells."""
    partitions = ((Reject.from_json(item) for item in lines(r.rejects_path)) for r in results)
    for reject in heapq.merge(read, *partitions, key=lambda reject: reject.line):
        yield reject.cells(len(COLUMNS), REJECT_VALUE_CHARS)
