"""Contribution totals of a plan year taken from a payroll feed instead of the census columns.

The feed is read as the batch reads it (batch/feed.py, batch/parse.py): text columns, a reject
with line and reason for each bad row, `rows_read = rows_checked + rows_rejected`. A row whose
plan and employee have no census row is rejected; rows paid in another year are read and
counted but add nothing. Employer money counts in the year of its pay date.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..batch.feed import COLUMNS, LINE, open_feed
from ..batch.parse import parse_dates, parse_money, years_of
from ..errors import InputError, Problem
from .census import CONTRIBUTIONS, Census

_SEPARATOR = "\x1f"


def _keys(plan: pa.Array, employee: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(pc.utf8_trim_whitespace(plan), pc.utf8_trim_whitespace(employee), _SEPARATOR)


def contributions_from_feed(feed_path: Path, census: Census, rejects_path: Path) -> dict[str, Any]:
    """Replace the census's contribution totals with the feed's sums for the census year; write feed rejects."""
    feed = open_feed(feed_path)
    census_keys = pa.array([f"{census.plan_ids[p]}{_SEPARATOR}{e}" for p, e in zip(census.plan.tolist(),
                                                                                   census.employee_id.tolist())])
    totals = {c: np.zeros(census.rows, dtype=np.int64) for c in CONTRIBUTIONS}
    rejects: list[list[Any]] = []
    rows_read = rows_outside = 0
    for batch in feed.batches():
        n = batch.num_rows
        rows_read += n
        column = {name: batch.column(name) for name in COLUMNS}
        problems: dict[int, list[str]] = {}

        def flag(bad: np.ndarray, reason) -> None:
            for row in np.flatnonzero(bad).tolist():
                problems.setdefault(row, []).append(reason(row))

        texts: dict[str, list[str]] = {}

        def value(name: str, row: int) -> str:
            if name not in texts:
                texts[name] = column[name].to_pylist()
            return texts[name][row]

        index = pc.fill_null(pc.index_in(_keys(column["plan_id"], column["employee_id"]), value_set=census_keys), -1)
        index = index.to_numpy(zero_copy_only=False).astype(np.int64)
        flag(index < 0, lambda r: f"no census row for plan {value('plan_id', r)!r} and employee "
                                  f"{value('employee_id', r)!r}")
        days, ok = parse_dates(column["pay_date"])
        flag(~ok, lambda r: f"pay_date: expected a date YYYY-MM-DD, got {value('pay_date', r)!r}")
        cents = {}
        for name in CONTRIBUTIONS:
            cents[name], ok = parse_money(column[name], False)
            flag(~ok, lambda r, c=name: f"{c}: expected dollars with at most two decimals (zero or more), "
                                        f"got {value(c, r)!r}")
        bad = np.zeros(n, dtype=bool)
        bad[list(problems)] = True
        in_year = years_of(days) == census.year
        use = ~bad & in_year
        rows_outside += int((~bad & ~in_year).sum())
        for name in CONTRIBUTIONS:
            np.add.at(totals[name], index[use], cents[name][use])
        lines = batch.column(LINE).to_numpy()
        for row in sorted(problems):
            rejects.append([int(lines[row]), "; ".join(problems[row]), *(value(c, row) for c in COLUMNS)])
    for line, reason, text in feed.bad_rows:
        rows_read += 1
        rejects.append([line, reason, text, *[""] * (len(COLUMNS) - 1)])
    rejects.sort(key=lambda item: item[0])
    _write(rejects_path, rejects)
    census.replace_contributions(totals)
    checked = rows_read - len(rejects)
    return {"feed": str(feed_path), "rows_read": rows_read, "rows_checked": checked, "rows_rejected": len(rejects),
            "rows_outside_year": rows_outside, "rejects_file": str(rejects_path)}


def _write(path: Path, rows: list[list[Any]]) -> None:
    try:
        handle = path.open("w", newline="", encoding="utf-8")
    except OSError as exc:
        raise InputError(Problem(str(path), "", f"cannot write the rejects file: {exc.strerror}")) from None
    with handle:
        writer = csv.writer(handle)
        writer.writerow(["line", "reason", *COLUMNS])
        writer.writerows(rows)
