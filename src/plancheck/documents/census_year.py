"""The plan year a census is for, read from the census itself, and a census that mixes plan years refused.

The year is, in this order: the `plan_year` column where the census gives one (every row that fills it
must give the same year); else the year of the latest hire_date or termination_date, when the dates
pin it: nobody is hired after the plan year, so that year is the earliest the census can be for, and
it is the year itself when it is the last year rules/limits covers (no later year can be tested),
when someone with pay or contributions left in it (they worked in the plan year and left in it), or
when someone hired in it has pay and no prior-year pay (hired in the plan year itself). Any
other census cannot tell (a census of long-serving employees with no hire in the year would otherwise
be tested against an old year): --year is then required, as it is for a census with no dates at all.
A census spans years, and is refused, when its plan_year values differ, or when someone who left
before the plan year has contributions in it (that row is a row of an earlier year). --year given on
the command line wins over the dates, but not over a plan_year column that differs.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from plancheck.documents.feed.parse import EMPTY_TEXT, parse_dates, parse_money
from plancheck.errors import InputError, Problem, shown

_YEAR_RE = r"^\d{4}$"


def census_year(source: str, text: dict[str, pa.Array], lines: np.ndarray, given: int | None,
                contributions: tuple[str, ...], last_year: int | None = None) -> int:
    """The census's plan year (see the module docstring); an InputError of one line when it cannot tell or spans."""
    stated = _stated(source, text["plan_year"], lines)
    if stated is not None and given is not None and stated[0] != given:
        raise InputError(Problem(source, "plan_year", f"the year given with --year ({given})",
                                 got=f"{stated[0]} (line {stated[1]})"))
    _days, left_ok, left = parse_dates(text["termination_date"])
    year = given if given is not None else stated[0] if stated is not None else \
        _from_dates(source, text, contributions, left_ok, left, last_year)
    _one_year(source, text, lines, year, contributions, left_ok, left)
    return year


def _stated(source: str, column: pa.Array, lines: np.ndarray) -> tuple[int, int] | None:
    """(year, first line stating it) from the plan_year column, or None when no row fills it."""
    trimmed = pc.utf8_trim_whitespace(column)
    filled = pc.not_equal(trimmed, EMPTY_TEXT).to_numpy(zero_copy_only=False)
    if not filled.any():
        return None
    shaped = pc.match_substring_regex(trimmed, _YEAR_RE).to_numpy(zero_copy_only=False)
    bad = np.flatnonzero(filled & ~shaped)
    if len(bad):
        raise InputError(Problem(source, "plan_year", "a year like 2026 (or nothing)",
                                 got=f"{shown(trimmed[int(bad[0])].as_py())} (line {int(lines[bad[0]])})"))
    values = np.where(filled, pc.cast(pc.if_else(pc.match_substring_regex(trimmed, _YEAR_RE), trimmed, "0"),
                                      pa.int64()).to_numpy(zero_copy_only=False), 0)
    years = np.unique(values[filled])
    first = int(np.flatnonzero(filled)[0])
    if len(years) > 1:
        other = int(np.flatnonzero(filled & (values != values[first]))[0])
        raise InputError(Problem(source, "plan_year", "one plan year per census (test each year's census on its own)",
                                 got=f"{values[first]} (line {int(lines[first])}) and {values[other]} "
                                     f"(line {int(lines[other])})"))
    return int(years[0]), int(lines[first])


def _positive(text: dict[str, pa.Array], columns: tuple[str, ...], rows: np.ndarray) -> np.ndarray:
    """Which of `rows` have an amount above zero in any of the columns (parsed for those rows only)."""
    found = np.zeros(len(rows), dtype=bool)
    if not len(rows):
        return found
    taken = pa.array(rows)
    for column in columns:
        cents, ok, _ = parse_money(text[column].take(taken), True)
        found |= ok & (cents > 0)
    return found


def _from_dates(source: str, text: dict[str, pa.Array], contributions: tuple[str, ...], left_ok: np.ndarray,
                left: np.ndarray, last_year: int | None) -> int:
    _days, hire_ok, hired = parse_dates(text["hire_date"])
    latest = max(int(hired[hire_ok].max()) if hire_ok.any() else 0, int(left[left_ok].max()) if left_ok.any() else 0)
    if not latest:
        raise InputError(Problem(source, "hire_date", "a census whose dates tell its plan year (no row has a valid "
                                 "hire_date or termination_date): give the year with --year"))
    if latest == last_year:
        return latest
    leavers = np.flatnonzero(left_ok & (left == latest))  # paid or contributing in the plan year, left in it
    hires = np.flatnonzero(hire_ok & (hired == latest))   # paid in it, nothing the year before: hired in it
    worked = _positive(text, ("compensation", *contributions), leavers)
    paid = _positive(text, ("compensation",), hires)
    paid_before = _positive(text, ("prior_year_compensation",), hires)
    if worked.any() or (paid & ~paid_before).any():
        return latest
    raise InputError(Problem(source, "plan_year", f"a census that states its plan year: its latest hire or "
                             f"termination date is in {latest}, so it is for {latest} or a later year; give the year "
                             "with --year (or a plan_year column)"))


def _one_year(source: str, text: dict[str, pa.Array], lines: np.ndarray, year: int, contributions: tuple[str, ...],
              left_ok: np.ndarray, left: np.ndarray) -> None:
    """Refuse a census with a row of someone gone before the plan year who has contributions in it."""
    before = np.flatnonzero(left_ok & (left < year))
    earlier = before[_positive(text, contributions, before)]
    if len(earlier):
        row = int(earlier[0])
        raise InputError(Problem(source, "termination_date", f"one plan year per census: someone who left before "
                                 f"{year} has no contributions in it (their balance alone counts, 416(g)(4)(E))",
                                 got=f"left {text['termination_date'][row].as_py().strip()} with contributions "
                                     f"(line {int(lines[row])}; {len(earlier)} such row(s))"))
