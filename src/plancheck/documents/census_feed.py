"""Contribution totals of a plan year taken from a payroll feed instead of the census columns.

The feed is read as the batch reads it (documents/feed/reader.py, parse.py): text columns, a reject
with line and reason for each bad row, `rows_read = rows_checked + rows_rejected`. A row whose
plan and employee have no census row is rejected and counted (`rows_unmatched`); rows paid in
another year are read and counted but add nothing. `rows_used` are the rows whose money is in the
totals: a feed none of whose rows is used is an InputError (no_feed_row_used), never a test of
nothing. Employer money counts in the year of its pay date.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from plancheck.documents.census import CONTRIBUTIONS, Census
from plancheck.documents.feed.parse import parse_dates, parse_money
from plancheck.documents.feed.reader import COLUMNS, LINE, open_feed
from plancheck.documents.feed.records import RAW_CHARS
from plancheck.documents.feed.source import Source
from plancheck.errors import InputError, Problem, shorten, shown
from plancheck.money import MAX_DOLLARS_TEXT

_SEPARATOR = "\x1f"


def _keys(plan: pa.Array, employee: pa.Array) -> pa.Array:
    return pc.binary_join_element_wise(pc.utf8_trim_whitespace(plan), pc.utf8_trim_whitespace(employee), _SEPARATOR)


def no_feed_row_used(feed: str, year: int, read: int, rejected: int, unmatched: int, outside: int,
                     first_reason: str | None, first_line: int | None) -> InputError:
    """A feed that gives the census nothing: one line with the counts and the first reject's reason."""
    return InputError(Problem(feed, "rows", f"no row used: {read} read, {rejected} rejected ({unmatched} matching no "
                              f"census row), {outside} paid outside {year}; the tests need rows paid in {year} that "
                              "match the census", got=f"line {first_line}: {first_reason}" if first_reason else None))


def contributions_from_feed(feed_path: Source | Path | str,
                            census: Census) -> tuple[dict[str, Any], list[str], list[list[Any]]]:
    """Replace the census's contribution totals with the feed's sums for the census year.

    Returns the feed's counts and its rejects file (header and rows in line order) for a sink to write.
    """
    feed = open_feed(feed_path)
    census_keys = pa.array([f"{census.plan_ids[p]}{_SEPARATOR}{e}" for p, e in zip(census.plan.tolist(),
                                                                                   census.employee_id.tolist())])
    totals = {c: np.zeros(census.rows, dtype=np.int64) for c in CONTRIBUTIONS}
    elsewhere = census.money["other_plan_deferrals"].copy()  # the feed's other_plan_deferrals, where larger
    fica = np.zeros(census.rows, dtype=np.int64)  # the feed's prior_year_fica_wages, where it gives them
    fica_given = np.zeros(census.rows, dtype=bool)
    rejects: list[list[Any]] = []
    rows_read = rows_outside = rows_unmatched = rows_used = 0
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
        rows_unmatched += int((index < 0).sum())
        flag(index < 0, lambda r: f"no census row for plan {shown(value('plan_id', r))} and employee "
                                  f"{shown(value('employee_id', r))}")
        days, ok, year = parse_dates(column["pay_date"])
        flag(~ok, lambda r: f"pay_date: expected a date YYYY-MM-DD, got {shown(value('pay_date', r))}")
        cents = {}
        for name in CONTRIBUTIONS:
            cents[name], ok, too_big = parse_money(column[name], False)
            flag(~ok & ~too_big, lambda r, c=name: f"{c}: expected dollars with at most two decimals (zero or "
                                                   f"more), got {shown(value(c, r))}")
            flag(too_big, lambda r, c=name: f"{c}: expected at most {MAX_DOLLARS_TEXT}, got {shown(value(c, r))}")
        other, ok, too_big = parse_money(column["other_plan_deferrals"], True)
        flag(~ok & ~too_big, lambda r: f"other_plan_deferrals: expected dollars with at most two decimals (zero or "
                                       f"more), got {shown(value('other_plan_deferrals', r))}")
        flag(too_big, lambda r: f"other_plan_deferrals: expected at most {MAX_DOLLARS_TEXT}, got "
                                f"{shown(value('other_plan_deferrals', r))}")
        wages, ok, too_big = parse_money(column["prior_year_fica_wages"], True)
        flag(~ok & ~too_big, lambda r: f"prior_year_fica_wages: expected dollars with at most two decimals (zero or "
                                       f"more) or nothing, got {shown(value('prior_year_fica_wages', r))}")
        flag(too_big, lambda r: f"prior_year_fica_wages: expected at most {MAX_DOLLARS_TEXT}, got "
                                f"{shown(value('prior_year_fica_wages', r))}")
        given = pc.fill_null(pc.not_equal(pc.utf8_trim_whitespace(column["prior_year_fica_wages"]), ""), False).to_numpy(
            zero_copy_only=False)
        bad = np.zeros(n, dtype=bool)
        bad[list(problems)] = True
        in_year = year == census.year
        use = ~bad & in_year
        rows_outside += int((~bad & ~in_year).sum())
        rows_used += int(use.sum())
        for name in CONTRIBUTIONS:
            np.add.at(totals[name], index[use], cents[name][use])
        np.maximum.at(elsewhere, index[use], other[use])
        np.maximum.at(fica, index[use & given], wages[use & given])
        fica_given[index[use & given]] = True
        lines = batch.column(LINE).to_numpy()
        for row in sorted(problems):
            rejects.append([int(lines[row]), shorten("; ".join(problems[row]), 1000),
                            *(shorten(value(c, row), RAW_CHARS) for c in COLUMNS), ""])
    for bad in feed.bad_rows:
        rows_read += 1
        rejects.append([bad.line, bad.reason, *(bad.values or [""] * len(COLUMNS)), bad.raw])
    rejects.sort(key=lambda item: item[0])
    if not rows_used:
        raise no_feed_row_used(str(feed.source), census.year, rows_read, len(rejects), rows_unmatched, rows_outside,
                               rejects[0][1] if rejects else None, rejects[0][0] if rejects else None)
    census.replace_contributions(totals)
    census.money["other_plan_deferrals"] = elsewhere
    if len(census.prior_year_fica_wages) == census.rows:  # the feed's figure where it has one (empty is unknown)
        census.prior_year_fica_wages = np.where(fica_given, fica, census.prior_year_fica_wages)
        census.fica_known = census.fica_known | fica_given
    checked = rows_read - len(rejects)
    summary = {"feed": str(feed.source), "rows_read": rows_read, "rows_checked": checked, "rows_rejected": len(rejects),
               "rows_outside_year": rows_outside, "rows_unmatched": rows_unmatched, "rows_used": rows_used}
    return summary, ["line", "reason", *COLUMNS, "raw"], rejects
