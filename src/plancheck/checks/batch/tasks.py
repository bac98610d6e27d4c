"""The batch's two tasks as the execution layer runs them, and the checker each worker builds once.

Phase 1 (`spill_task`) reads one range of the feed and spills its rows into partition pieces;
phase 2 (`check_task`) checks one partition (check.py). Both run wherever the run's executor
puts them (plancheck.execution) and read the worker's `Checker`, which `CheckerSetup` builds
once per worker process: from the rules directory on this machine, or (`portable()`, for a
cluster) from a copy of the rules' files carried to the worker.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from plancheck.checks.batch.check import Checker, PartitionResult, check_partition
from plancheck.checks.ruleset import load_rules
from plancheck.documents.feed.reader import FeedRange, open_feed
from plancheck.documents.feed.records import Reject
from plancheck.documents.folders import is_editor_artefact
from plancheck.documents.plan import Plan
from plancheck.execution import worker
from plancheck.execution.partition import spill
from plancheck.execution.rundir import RunDir
from plancheck.safe_open import write_new


@dataclass
class CheckerSetup:
    """Builds a worker's checker from the rules directory and the plans (a WorkerSetup)."""

    rules_dir: str
    plans: list[Plan]

    def __call__(self) -> Checker:
        rulebook, limits = load_rules(Path(self.rules_dir))
        return Checker(rulebook, limits, self.plans)

    def portable(self) -> CheckerFiles:
        rules_dir = Path(self.rules_dir)
        return CheckerFiles(rules_files(rules_dir), self.plans, load_rules(rules_dir)[0].revision)


def rules_files(rules_dir: Path) -> dict[str, bytes]:
    """The rules' files by path under the rules directory (editors' leftovers aside)."""
    return {str(path.relative_to(rules_dir)): path.read_bytes() for path in sorted(rules_dir.rglob("*"))
            if path.is_file() and not any(is_editor_artefact(part) for part in path.relative_to(rules_dir).parts)}


@dataclass
class CheckerFiles:
    """Builds a worker's checker from the rules' files it carries, which must hash to the client's revision."""

    rules: dict[str, bytes]
    plans: list[Plan]
    revision: str

    def __call__(self) -> Checker:
        # The rules are loaded from a copy of the client's files, removed at once: a worker that is
        # killed never runs teardown, and nothing reads the files after loading.
        folder = tempfile.mkdtemp(prefix="plancheck-rules-")
        try:
            for name, data in self.rules.items():
                path = Path(folder) / name
                path.parent.mkdir(parents=True, exist_ok=True)
                write_new(path, data)
            rulebook, limits = load_rules(Path(folder))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        if rulebook.revision != self.revision:
            raise RuntimeError(f"rules revision {rulebook.revision} on the worker, {self.revision} on the client")
        return Checker(rulebook, limits, self.plans)

    def portable(self) -> CheckerFiles:
        return self


def _spill_range(feed_path: str, span: FeedRange, directory: str, partitions: int, tag: str,
                 employers: dict[str, str], version: str) -> tuple[dict[int, Path], int, list[Reject], int | None]:
    """Read one range of the feed (CSV bytes or Parquet row groups) and split its rows into partition pieces;
    also the line just past the range as it numbered them (reader.renumber). The feed must still be the
    `version` the run opened, before and after the range is read."""
    feed = open_feed(feed_path)
    feed.unchanged(version)  # the version this process opened is the run's
    feed.threads, feed.keep_types = False, True
    paths, rows = spill(feed.range_batches(span), Path(directory), partitions, tag, employers=employers)
    feed.unchanged()  # and the file is still that version now
    return paths, rows, feed.bad_rows, feed.next_line


def spill_task(run_dir: RunDir, feed_path: str, span: FeedRange, partitions: int, tag: str,
               employers: dict[str, str], version: str) -> tuple[dict[int, str], int, list[Reject], int | None]:
    """Phase 1 task: `_spill_range` into the run directory."""
    with run_dir.writable() as directory:
        paths, rows, bad_rows, next_line = _spill_range(feed_path, span, directory, partitions,
                                                        tag + run_dir.attempt(), employers, version)
        return {k: run_dir.keep(str(path)) for k, path in paths.items()}, rows, bad_rows, next_line


def check_task(run_dir: RunDir, pieces: list[str], name: str, shifts: list[int] | None = None) -> PartitionResult:
    """Phase 2 task: check one partition's pieces (their line numbers shifted to the file's, reader.renumber)
    with the worker's checker, into the run directory."""
    with run_dir.readable(pieces) as local, run_dir.writable() as out_dir:
        result = check_partition(worker.state(), [Path(p) for p in local], Path(out_dir),
                                 name + run_dir.attempt(), shifts)
        result.findings_path = run_dir.keep(result.findings_path)
        result.rejects_path = run_dir.keep(result.rejects_path)
        return result
