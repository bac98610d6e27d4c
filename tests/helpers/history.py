"""Run-history test helpers shared by the history and report tests: the sample feed, a recorded batch, and feeds
made from it less some employees."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from helpers import ROOT, plancheck

FEED = ROOT / "samples" / "payroll-2026.csv"


def events_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def findings_of(events: list[dict]) -> list[dict]:
    return [e for e in events if e["event"] in ("violation", "warning", "notice")]


def rows_where(rows_of: Path, column: str, keep, to: Path) -> Path:
    """The feed's rows whose `column` passes `keep` (rows too short to have it are kept)."""
    with rows_of.open(newline="") as source, to.open("w", newline="") as target:
        reader = csv.reader(source)
        writer = csv.writer(target, lineterminator="\n")
        header = next(reader)
        writer.writerow(header)
        where = header.index(column)
        writer.writerows(row for row in reader if len(row) <= where or keep(row[where]))
    return to


def without(rows_of: Path, employees: set[str], to: Path) -> Path:
    """The feed less every row of `employees`."""
    return rows_where(rows_of, "employee_id", lambda employee: employee not in employees, to)


def batch(feed: Path, tmp_path: Path, db: str | None, name: str) -> tuple[int, list[dict]]:
    args = ["batch", feed, "--out", tmp_path / f"{name}.jsonl", "--rejects", tmp_path / f"{name}.rejects.csv",
            "--workers", "1"]
    result = plancheck(*args, *(["--db", db] if db else []))
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, events_of(tmp_path / f"{name}.jsonl")
