"""Text columns of a feed partition to exact integers, with a reason for every rejected row.

Money becomes integer cents without floats: the digits are validated, the decimal point is
dropped and the value scaled by its number of decimals. Dates are parsed and formatted back so
that a date like 2024-02-30 (which strptime would roll over to March 1) is refused. Each column
is parsed once per distinct value (pay dates, birth dates and per-employee amounts repeat a lot).

A Parquet feed's decimal and date columns arrive as they are (reader.Feed.keep_types): a
decimal's unscaled integer is its cents at scale 2 (other scales are rescaled exactly, or the
value refused), a date32 is already days since 1970. They are held to the same rules with the
same reasons as text; a null reads as an empty cell.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from plancheck.documents.feed.reader import COLUMNS, LINE, MONEY, OPTIONAL_VALUES, as_text, kept_type
from plancheck.documents.feed.records import Reject
from plancheck.errors import shown
from plancheck.money import MAX_CENTS, MAX_DOLLARS_TEXT

_MONEY_RE = r"^\d+(\.\d{1,2})?$"
#: Digits before the decimal point of the largest amount (MAX_CENTS: $99,999,999.99).
_MAX_WHOLE_DIGITS = len(str(MAX_CENTS // 100))
_DATE_RE = r"^\d{4}-\d{2}-\d{2}$"
_SCALE = np.array([100, 10, 1], dtype=np.int64)
#: Arrow scalars made once. A Python literal given to a compute function is converted on every
#: call, and pyarrow's conversion tries to import dateutil each time (a search of sys.path when it
#: is not installed): about a tenth of a partition's parse.
EMPTY_TEXT, ZERO_TEXT, EPOCH_TEXT = pa.scalar(""), pa.scalar("0"), pa.scalar("1970-01-01")
_NO_POSITION, _MAX_WHOLE = pa.scalar(0, pa.int32()), pa.scalar(_MAX_WHOLE_DIGITS, pa.int32())


class YearsCovered(Protocol):
    """The years the law's figures cover (rulebook.limits.LimitTable), which a row's years must fall in."""

    first_year: int
    last_year: int

    def missing_year(self, year: int) -> str:
        """What to add for a year the figures do not cover."""


@dataclass
class Parsed:
    """Accepted rows of a partition as numpy columns."""

    line: np.ndarray
    plan_index: np.ndarray
    plan_ids: list[str]
    employee: np.ndarray        # int codes into employee_ids
    employee_ids: list[str]
    birth_day: np.ndarray       # days since 1970-01-01
    pay_day: np.ndarray
    year: np.ndarray
    money: dict[str, np.ndarray]
    fica_known: np.ndarray                          # prior_year_fica_wages given (empty is unknown, not zero)
    limitation_year: np.ndarray                     # 415 limitation year of the row's employer money
    source_row: np.ndarray                          # row of each accepted row in the partition table
    raw: Callable[[int], tuple[str, ...]]           # a partition row's values as read, for rejects
    #: Rejected rows per year that rules/limits does not cover (pay date's or limitation year's).
    years_without_limits: dict[int, int] = field(default_factory=dict)


def _distinct(column: pa.Array) -> tuple[pa.Array, np.ndarray]:
    encoded = pc.dictionary_encode(column)
    return encoded.dictionary, encoded.indices.to_numpy(zero_copy_only=False)


def parse_money(column: pa.Array, optional: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cents, ok, too_big) for a text column of dollar amounts; empty is zero where optional.

    `too_big` marks well-formed amounts above MAX_CENTS, found by their number of digits
    (leading zeros aside) before any digit is converted, so no value can overflow int64.
    """
    values, index = _distinct(column)
    shaped = pc.match_substring_regex(values, _MONEY_RE)
    if optional:
        shaped = pc.or_(shaped, pc.equal(values, EMPTY_TEXT))
    trimmed = pc.utf8_ltrim(values, characters="0")
    dot = pc.find_substring(trimmed, ".")
    whole_digits = pc.if_else(pc.less(dot, _NO_POSITION), pc.utf8_length(trimmed), dot)
    too_big = pc.and_(shaped, pc.greater(whole_digits, _MAX_WHOLE))
    ok = pc.and_(shaped, pc.invert(too_big))
    clean = pc.if_else(ok, trimmed, ZERO_TEXT)
    clean = pc.if_else(pc.equal(clean, EMPTY_TEXT), ZERO_TEXT, clean)
    dot = pc.find_substring(clean, ".").to_numpy(zero_copy_only=False)
    length = pc.binary_length(clean).to_numpy(zero_copy_only=False)
    digits = pc.cast(pc.replace_substring(clean, ".", ""), pa.int64()).to_numpy()
    decimals = np.where(dot < 0, 0, length - dot - 1)
    cents = digits * _SCALE[np.clip(decimals, 0, 2)]
    return (cents[index], shaped.to_numpy(zero_copy_only=False)[index],
            too_big.to_numpy(zero_copy_only=False)[index])


def money_cents(column: pa.Array, optional: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`parse_money` for a text column, or the same figures from a decimal column without text."""
    if pa.types.is_decimal128(column.type):
        return _decimal_cents(column, optional)
    return parse_money(column, optional)


def _decimal_cents(column: pa.Array, optional: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cents, ok, too_big) of a decimal128 column: its unscaled 128-bit integers rescaled to cents exactly.

    ok as for text: zero or more with at most two decimals (a value of scale 3 with a last digit
    of 0 is whole cents), a null only where the column is optional; too_big above MAX_CENTS.
    """
    n, scale = len(column), column.type.scale
    valid = column.is_valid().to_numpy(zero_copy_only=False)
    _validity, data = column.buffers()
    words = np.frombuffer(data, dtype="<i8", count=2 * (column.offset + n))[2 * column.offset:].reshape(n, 2)
    low, high = words[:, 0], words[:, 1]
    fits = high == (low >> 63)  # the 128-bit value is an int64
    negative = high < 0
    if scale <= 2:
        factor = 10 ** (2 - scale)
        whole = np.ones(n, dtype=bool)
        big = ~fits | (low > MAX_CENTS // factor)
        cents = np.where(big | negative, 0, low) * factor
    else:
        factor = 10 ** (scale - 2)
        whole = ~fits | (low % factor == 0)
        big = ~fits | (low // factor > MAX_CENTS)
        cents = np.where(big | negative, 0, low // factor)
    shaped = np.where(valid, ~negative & whole, optional)
    too_big = valid & shaped & big
    return np.where(valid & shaped & ~too_big, cents, 0), shaped, too_big


def date_days(column: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """`parse_dates` for a text column, or the same figures from a date32 column without text."""
    if not pa.types.is_date32(column.type):
        return parse_dates(column)
    ok = column.is_valid().to_numpy(zero_copy_only=False)
    days = np.where(ok, pc.cast(column, pa.int32()).fill_null(0).to_numpy(zero_copy_only=False), 0).astype(np.int64)
    return days, ok, np.where(ok, years_of(days), 1970)


def parse_dates(column: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(days since epoch, ok, year) for a text column of ISO dates; impossible dates are not ok (day and year 0).

    The digits of each distinct YYYY-MM-DD are read straight from Arrow's buffer (every shaped
    value is ten ASCII bytes), and the day is checked against its month's length, so 2024-02-30
    is refused where strptime would roll it over to March 1.
    """
    values, index = _distinct(column)
    shaped = pc.match_substring_regex(values, _DATE_RE)
    fixed = pc.if_else(shaped, values, EPOCH_TEXT)
    _validity, offsets, data = fixed.buffers()
    start = int(np.frombuffer(offsets, dtype=np.int32, count=1, offset=fixed.offset * 4)[0])
    digits = np.frombuffer(data, dtype=np.uint8)[start:start + 10 * len(fixed)].reshape(-1, 10).astype(np.int64) - 48
    year = digits[:, 0] * 1000 + digits[:, 1] * 100 + digits[:, 2] * 10 + digits[:, 3]
    month, day = digits[:, 5] * 10 + digits[:, 6], digits[:, 8] * 10 + digits[:, 9]
    first_of_month = ((year - 1970) * 12 + np.clip(month, 1, 12) - 1).astype("datetime64[M]").astype("datetime64[D]")
    month_days = (first_of_month.astype("datetime64[M]") + 1).astype("datetime64[D]") - first_of_month
    ok = (shaped.to_numpy(zero_copy_only=False) & (year >= 1) & (month >= 1) & (month <= 12) & (day >= 1)
          & (day <= month_days.astype(np.int64)))
    days = np.where(ok, first_of_month.astype(np.int64) + day - 1, 0)
    return days[index], ok[index], np.where(ok, year, 1970)[index]


def years_of(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970


def _limitation_years(column: pa.Array, pay_year: np.ndarray, pay_ok: np.ndarray, flag, value) -> np.ndarray:
    """The 415 limitation year of each row: empty is the pay date's year; else that year or the one before.

    Employer money deposited after year end for the previous year counts in the limitation year
    it is allocated for (Treas. Reg. 1.415(c)-1(b)(6)); a later or earlier year is refused.
    """
    values, index = _distinct(column)
    shaped = pc.match_substring_regex(values, r"^\d{4}$")
    numbers = pc.cast(pc.if_else(shaped, values, ZERO_TEXT), pa.int64()).to_numpy()[index]
    ok = shaped.to_numpy(zero_copy_only=False)[index]
    blank = pc.equal(values, EMPTY_TEXT).to_numpy(zero_copy_only=False)[index]
    flag(~blank & ~ok, lambda r: f"limitation_year: expected a year like 2025 or nothing, got {shown(value('limitation_year', r))}")
    flag(ok & pay_ok & ((numbers > pay_year) | (numbers < pay_year - 1)),
         lambda r: f"limitation_year: must be the pay date's year ({int(pay_year[r])}) or the year before "
                   f"(employer money deposited after year end, Treas. Reg. 1.415(c)-1(b)(6)), "
                   f"got {shown(value('limitation_year', r))}")
    return np.where(ok, numbers, pay_year)


def parse_partition(table: pa.Table, plan_index: dict[str, int], limits: YearsCovered) -> tuple[Parsed, list[Reject]]:
    """Validate and convert every row; rows with any problem become rejects with all their reasons."""
    n = table.num_rows
    problems: dict[int, list[str]] = {}

    def flag(bad: np.ndarray, reason) -> None:
        for row in np.flatnonzero(bad).tolist():
            problems.setdefault(row, []).append(reason(row))

    text = {c: table.column(c).combine_chunks() for c in COLUMNS}
    as_read: dict[str, list[str]] = {}

    def value(column: str, row: int) -> str:
        if column not in as_read:
            as_read[column] = as_text(text[column]).to_pylist()
        return as_read[column][row]

    plans, plan_codes = _distinct(text["plan_id"])
    plan_names = plans.to_pylist()
    known = np.array([plan_index.get(p, -1) for p in plan_names], dtype=np.int64)
    plan_idx = known[plan_codes] if n else np.zeros(0, dtype=np.int64)
    flag(plan_idx < 0, lambda r: f"plan_id: unknown plan {shown(value('plan_id', r))} (no such plan in the plans directory)")
    employees, employee_codes = _distinct(text["employee_id"])
    employee_ids = employees.to_pylist()
    empty_employee = np.array([e.strip() == "" for e in employee_ids], dtype=bool)
    flag(empty_employee[employee_codes] if n else np.zeros(0, bool), lambda r: "employee_id: required, got an empty value")

    dates, date_ok, years = {}, {}, {}
    for column in ("birth_date", "pay_date"):
        dates[column], date_ok[column], years[column] = date_days(text[column])
        flag(~date_ok[column], lambda r, c=column: f"{c}: expected a date YYYY-MM-DD, got {shown(value(c, r))}")
    money = {}
    for column in MONEY:
        cents, ok, too_big = money_cents(text[column], column in OPTIONAL_VALUES)
        money[column] = cents
        flag(~ok, lambda r, c=column: f"{c}: expected dollars with at most two decimals (zero or more), "
                                      f"got {shown(value(c, r))}")
        flag(too_big, lambda r, c=column: f"{c}: expected at most {MAX_DOLLARS_TEXT}, got {shown(value(c, r))}")
    year = years["pay_date"]
    covered = (year >= limits.first_year) & (year <= limits.last_year)
    uncovered = date_ok["pay_date"] & ~covered
    flag(uncovered, lambda r: f"pay_date: {limits.missing_year(int(year[r]))}")
    fica = text["prior_year_fica_wages"]
    fica_known = (fica.is_valid() if kept_type(fica.type) else pc.not_equal(fica, EMPTY_TEXT)).to_numpy(
        zero_copy_only=False) if n else np.zeros(0, dtype=bool)
    limitation_year = _limitation_years(text["limitation_year"], year, date_ok["pay_date"], flag, value)
    limitation_uncovered = date_ok["pay_date"] & covered & ((limitation_year < limits.first_year)
                                                             | (limitation_year > limits.last_year))
    flag(limitation_uncovered, lambda r: f"limitation_year: {limits.missing_year(int(limitation_year[r]))}")
    years_without_limits = Counter(year[uncovered].tolist()) + Counter(limitation_year[limitation_uncovered].tolist())
    birth_year = years["birth_date"]
    both = date_ok["birth_date"] & date_ok["pay_date"]
    flag(both & (dates["birth_date"] >= dates["pay_date"]), lambda r: "birth_date: must be before pay_date")
    flag(both & (year - birth_year > 120), lambda r: "birth_date: gives an age over 120")

    lines = table.column(LINE).to_numpy()
    bad_rows = np.array(sorted(problems), dtype=np.int64)
    keep = np.ones(n, dtype=bool)
    keep[bad_rows] = False
    def raw_row(row: int) -> tuple[str, ...]:
        return tuple(value(c, row) for c in COLUMNS)

    rejects = [Reject(int(lines[r]), "; ".join(problems[r]), raw_row(r)) for r in bad_rows.tolist()]
    parsed = Parsed(
        line=lines[keep], plan_index=plan_idx[keep], plan_ids=plan_names, employee=employee_codes[keep],
        employee_ids=employee_ids, birth_day=dates["birth_date"][keep], pay_day=dates["pay_date"][keep],
        year=year[keep], money={k: v[keep] for k, v in money.items()},
        fica_known=fica_known[keep], limitation_year=limitation_year[keep],
        source_row=np.flatnonzero(keep), raw=raw_row,
        years_without_limits={int(y): n for y, n in years_without_limits.items()},
    )
    return parsed, rejects
