"""Helpers for hostile-input tests: run the real command line in-process, build feeds, hash inputs."""

from __future__ import annotations

import csv
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from helpers import ROOT
from plancheck.cli import run
from plancheck.documents.feed.reader import COLUMNS

GOOD = ["acme-mega-backdoor", "E1", "1980-05-05", "2024-01-05", "5000.00", "500.00", "0.00", "0.00", "150.00", "0", "",
        "", ""]
assert len(GOOD) == len(COLUMNS), "one value per feed column"


def row(**changes: str) -> list[str]:
    values = list(GOOD)
    for key, value in changes.items():
        values[COLUMNS.index(key)] = value
    return values


def good_rows(count: int, employee: str = "E1") -> list[bytes]:
    """`count` valid, distinct CSV lines (one employee, biweekly 2024 pay dates)."""
    import datetime as dt
    first = dt.date(2024, 1, 5)
    return [",".join(row(employee_id=employee, pay_date=(first + dt.timedelta(days=14 * k)).isoformat())).encode()
            for k in range(count)]


def feed_bytes(lines: list[bytes], header: list[str] = list(COLUMNS)) -> bytes:
    return b"\n".join([",".join(header).encode(), *lines]) + b"\n"


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@dataclass
class Result:
    status: int
    stderr: str
    events: list[dict]
    rejects: list[dict]

    @property
    def summary(self) -> dict:
        return next(e for e in self.events if e["event"] == "batch_summary")

    def reasons(self) -> dict[int, str]:
        return {int(r["line"]): r["reason"] for r in self.rejects}


def cli(capsys, *args: str) -> tuple[int, str]:
    """The plancheck command line, in this process: exit status and stderr."""
    capsys.readouterr()
    status = run([str(a) for a in args])
    return status, capsys.readouterr().err


def batch(capsys, tmp_path: Path, data: bytes, *extra: str, name: str = "feed.csv") -> Result:
    """Write `data` as a feed and run `plancheck batch` on it with one worker."""
    feed = tmp_path / name
    feed.write_bytes(data)
    out, rejects = tmp_path / "out.jsonl", tmp_path / "rejects.csv"
    for stale in (out, rejects):
        stale.unlink(missing_ok=True)
    status, err = cli(capsys, "batch", feed, "--plans", ROOT / "plans", "--out", out, "--rejects", rejects,
                      "--workers", "1", *extra)
    events = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    rows = list(csv.DictReader(rejects.open(newline="", encoding="utf-8"))) if rejects.exists() else []
    return Result(status, err, events, rows)
