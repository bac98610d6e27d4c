"""The batch job: a payroll feed checked, one finding per employee, year and rule, at the first pay date it broke."""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plancheck.extras import require_extra
from plancheck.jobs.result import Common, JobResult


@dataclass
class Batch:
    """`plancheck batch`: the feed (a path or a URL) and how to run it."""

    common: Common
    feed: str
    rejects: Path | str | None = None
    workers: int | None = None
    #: A Dask scheduler address, or local:N.
    cluster: str | None = None
    work_dir: str | None = None
    #: Progress on stderr: a context with read, start_checking and checked callbacks, or None.
    progress: Any = None


def batch(params: Batch) -> int:
    """Check the feed through the runner (the batch writes its findings and rejects as it goes); the exit status."""
    from plancheck.documents.feed.source import Source
    from plancheck.documents.plan import load_plans
    from plancheck.jobs import runner
    common = params.common
    source = Source.of(params.feed)
    rejects_path = params.rejects if params.rejects is not None else Path(f"{source.stem}.rejects.csv")
    runner.prepare({"--out": common.out, "--rejects": rejects_path, "--html": common.html, "--xlsx": common.xlsx},
                   [source.location], common.rules_dir, common.plans_dir)
    executor = _cluster(params.cluster, params.work_dir, source) if params.cluster is not None else None
    plan_ids = sorted(load_plans(common.plans_dir))

    def work(rejects_stream, recorder) -> JobResult:
        return _run(params, source, rejects_path, executor, rejects_stream, recorder)

    return runner.stream(common, "batch", plan_ids, [source], rejects_path, work)


def _run(params: Batch, source, rejects_path, executor, rejects_stream, recorder) -> JobResult:
    from plancheck.checks.batch.run import run_batch
    from plancheck.sinks.batch import BatchFiles
    common, progress = params.common, params.progress
    sink = BatchFiles(rejects_stream)
    if recorder:
        from plancheck.history.recording import RecordingBatchSink
        sink = RecordingBatchSink(sink, recorder)
    with progress or contextlib.nullcontext():
        outcome = run_batch(
            source, common.plans_dir, common.rules_dir, params.workers or os.cpu_count() or 1, sink,
            str(rejects_path),
            on_read=progress.read if progress else None,
            on_start=progress.start_checking if progress else None,
            on_partition=progress.checked if progress else None,
            executor=executor)
    missing = outcome.summary["years_without_limits"]

    def after(summary: dict[str, Any]) -> None:
        from plancheck.sinks.text import batch_summary
        batch_summary(summary)
        if missing:  # the outputs are written; still, a night whose rows could not be checked is no pass
            rows = sum(missing.values())
            hint = limits_hint(common.rules_dir, [int(y) for y in missing])
            sys.stderr.write(f"error: {source}: {rows:,} row(s) of {', '.join(missing)} not checked: {hint}; "
                             f"they are in {rejects_path}\n")

    return JobResult("batch", None, [], [], outcome.summary, covered=outcome.covered, errors=bool(outcome.errors),
                     unchecked=bool(missing), after=after)


def limits_hint(rules_dir: Path, years: list[int]) -> str:
    """What to add for years rules/limits does not cover, in the words every command uses."""
    from plancheck.rulebook.limits import load_limits
    limits = load_limits(rules_dir / "limits")
    return "; ".join(limits.missing_year(year) for year in years)


def _cluster(address: str, work_dir: str | None, feed):
    """The batch's executor on the Dask cluster at `address` (exit 2 naming the extra where it is not installed)."""
    require_extra("dask", "distributed", feature="--cluster")
    from plancheck.execution.cluster import cluster_executor, stderr_line

    def connected(info: dict) -> None:
        sys.stderr.write(stderr_line(info))

    return cluster_executor(address, work_dir, shared=(feed.for_workers(),), on_connect=connected)
