"""The year-end census: one row per employee per plan for a plan year, as validated arrays.

A census is CSV (with a header row) or Parquet. Every column is read as text so that a bad
value rejects its row, not the file; text becomes integer cents, dates (days since 1970-01-01)
and ownership in millionths of one (5% is 50,000) with the batch's own parsers. Each bad row is
a `Reject` with its line, every reason, and its values as read, and the counts reconcile:
`rows_read = rows_checked + rows_rejected`. The file is read by the payroll feed's reader
(documents/feed/reader.py), so a quoted field may hold a newline (the record keeps its first
line's number) and a record with a bad byte, an unbalanced quote or the wrong number of fields
is one rejected row; for Parquet, `line` is the 1-based row number.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from plancheck.documents.census_year import census_year
from plancheck.documents.feed.parse import EMPTY_TEXT, ZERO_TEXT, parse_dates, parse_money
from plancheck.documents.feed.reader import LINE, Layout, open_feed
from plancheck.documents.feed.records import RAW_CHARS, Reject
from plancheck.documents.feed.source import Source
from plancheck.errors import shown
from plancheck.memory import release_memory
from plancheck.money import MAX_DOLLARS_TEXT

#: Optional top-heavy columns: distributions added back to balances (416(g)(3)) and former key employees
#: (416(g)(4)(B)).
TOP_HEAVY_COLUMNS = ("distributions_1yr", "distributions_5yr", "former_key_employee")
#: Census columns: names are the interface (README, "Year-end testing").
CENSUS_COLUMNS = ("plan_id", "employee_id", "birth_date", "hire_date", "termination_date", "compensation",
                  "prior_year_compensation", "ownership_percent", "prior_year_ownership_percent", "related_to",
                  "officer", "pretax", "roth", "after_tax", "employer_match", "employer_nonelective",
                  "account_balance", "other_plan_deferrals", "prior_year_fica_wages", "forfeitures",
                  *TOP_HEAVY_COLUMNS, "plan_year")
#: Columns the header must have; the others may be left out (read as empty).
REQUIRED_COLUMNS = ("plan_id", "employee_id", "birth_date", "hire_date", "compensation")
#: Contribution totals of the year (or year to date for a preview); empty is zero.
CONTRIBUTIONS = ("pretax", "roth", "after_tax", "employer_match", "employer_nonelective")
#: Optional money columns; empty is zero (no prior-year pay from this employer, no balance).
OPTIONAL_MONEY = ("prior_year_compensation", *CONTRIBUTIONS, "account_balance", "other_plan_deferrals", "forfeitures",
                  "distributions_1yr", "distributions_5yr")
#: Mid-year preview only: each employee's current elections, percent of pay per pay period.
#: Empty means "continue at the year-to-date rate".
ELECTION_COLUMNS = ("election_pretax_percent", "election_roth_percent", "election_after_tax_percent")
#: The census as the feed reader reads it: every column but the required ones may be left out.
CENSUS = Layout("census", (*CENSUS_COLUMNS, *ELECTION_COLUMNS),
                tuple(c for c in (*CENSUS_COLUMNS, *ELECTION_COLUMNS) if c not in REQUIRED_COLUMNS))
#: No termination date.
NO_DATE = np.iinfo(np.int64).max

_PERCENT_RE = r"^\d{1,3}(\.\d{1,4})?$"
_PERCENT_SCALE = np.array([10_000, 1_000, 100, 10, 1], dtype=np.int64)
_TRUE = ("true", "yes", "y", "1")
_FALSE = ("false", "no", "n", "0", "")


@dataclass
class Census:
    """Accepted census rows as numpy columns (row i of every array is one employee in one plan)."""

    source: str
    year: int
    line: np.ndarray
    plan_ids: list[str]            # plan code -> plan_id
    plan: np.ndarray               # plan code of each row
    employee_id: np.ndarray        # object array of text, kept as written
    birth: np.ndarray              # days since 1970-01-01
    hire: np.ndarray
    termination: np.ndarray        # NO_DATE when still employed
    compensation: np.ndarray       # cents, the year's 414(s) pay (before 401(a)(17))
    prior_year_compensation: np.ndarray
    ownership: np.ndarray          # millionths of one, direct ownership only
    prior_year_ownership: np.ndarray
    related: np.ndarray            # row index of the family member whose ownership is attributed, -1 none
    officer: np.ndarray            # bool
    former_key: np.ndarray         # bool: a key employee in a year before the determination year (416(g)(4)(B))
    money: dict[str, np.ndarray]   # CONTRIBUTIONS and account_balance, cents
    elections: dict[str, np.ndarray]  # ELECTION_COLUMNS in millionths of one, -1 where empty
    rows_read: int
    rejects: list[Reject] = field(default_factory=list)
    extra_columns: list[str] = field(default_factory=list)
    #: Prior-year FICA wages (W-2 box 3) from the employer, cents; empty is unknown, not zero (Roth catch-up).
    prior_year_fica_wages: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fica_known: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=bool))

    @property
    def rows(self) -> int:
        return len(self.line)

    @property
    def rows_checked(self) -> int:
        return self.rows

    @property
    def rows_rejected(self) -> int:
        return len(self.rejects)

    def replace_contributions(self, totals: dict[str, np.ndarray]) -> None:
        """Take the contribution totals from elsewhere (a payroll feed), aligned with the rows."""
        for column in CONTRIBUTIONS:
            self.money[column] = totals[column]


def _days(day: dt.date) -> int:
    return (day - dt.date(1970, 1, 1)).days


def parse_percent(column: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(millionths of one, ok, empty) for a text column of percentages 0-100 with up to four decimals."""
    text = pc.utf8_trim_whitespace(column)
    empty = pc.equal(text, EMPTY_TEXT).to_numpy(zero_copy_only=False)
    shaped = pc.match_substring_regex(text, _PERCENT_RE)
    clean = pc.if_else(shaped, text, ZERO_TEXT)
    dot = pc.find_substring(clean, ".").to_numpy(zero_copy_only=False)
    length = pc.binary_length(clean).to_numpy(zero_copy_only=False)
    digits = pc.cast(pc.replace_substring(clean, ".", ""), pa.int64()).to_numpy()
    decimals = np.where(dot < 0, 0, length - dot - 1)
    ppm = digits * _PERCENT_SCALE[np.clip(decimals, 0, 4)]
    ok = shaped.to_numpy(zero_copy_only=False) & (ppm <= 1_000_000)
    return np.where(ok, ppm, 0), ok | empty, empty


def read_census(path: Path | Source, plan_ids: list[str], year: int | None, *, preview: bool = False,
                last_year: int | None = None) -> Census:
    """Read and validate a census for a plan year (None: the census's own, census_year.py); bad rows become
    rejects, a bad file (or one of several plan years) an InputError."""
    source = str(path)
    census = open_feed(path, CENSUS)  # the batch's reader: quotes, bad bytes and huge records are rejected rows
    table = pa.Table.from_batches(list(census.batches()) or [census._empty_batch()])
    known = set(CENSUS_COLUMNS) | (set(ELECTION_COLUMNS) if preview else set())
    extra = [c for c in census.header if c not in known]
    lines = table.column(LINE).to_numpy() if table.num_rows else np.zeros(0, dtype=np.int64)
    text = {}
    for column in (*CENSUS_COLUMNS, *ELECTION_COLUMNS):  # each column's batches freed once it is one array
        text[column] = table.column(column).combine_chunks()
        table = table.drop_columns([column])
    del table
    release_memory()  # the batches' pages, before parsing allocates
    year = census_year(source, text, lines, year, CONTRIBUTIONS, last_year)  # `last_year`: rules/limits' last
    unsplit = [Reject(bad.line, bad.reason, bad.values[:len(CENSUS_COLUMNS)] if bad.values else None, bad.raw)
               for bad in census.bad_rows]
    validated = _validate(source, year, text, lines, unsplit, plan_ids, extra, preview)
    release_memory()  # the text and the parsing's intermediates, back to the system before the tests run
    return validated


def _validate(source: str, year: int, text: dict[str, pa.Array], lines: np.ndarray,
              unsplit: list[Reject], plan_ids: list[str], extra: list[str], preview: bool) -> Census:
    n = len(lines)
    problems: dict[int, list[str]] = {}
    as_read: dict[str, list[str]] = {}

    def value(column: str, row: int) -> str:
        if column not in as_read:
            as_read[column] = text[column].to_pylist()
        return as_read[column][row]

    def flag(bad: np.ndarray, reason) -> None:
        for row in np.flatnonzero(bad).tolist():
            problems.setdefault(row, []).append(reason(row))

    plan_index = {p: i for i, p in enumerate(plan_ids)}
    plans = pc.dictionary_encode(pc.utf8_trim_whitespace(text["plan_id"]))
    codes = np.array([plan_index.get(p, -1) for p in plans.dictionary.to_pylist()], dtype=np.int64)
    plan = codes[plans.indices.to_numpy(zero_copy_only=False)] if n else np.zeros(0, np.int64)
    flag(plan < 0, lambda r: f"plan_id: unknown plan {shown(value('plan_id', r))} (no such plan in the plans directory)")
    employee = pc.utf8_trim_whitespace(text["employee_id"])
    employee_np = np.asarray(employee.to_numpy(zero_copy_only=False), dtype=object)
    flag(pc.equal(employee, EMPTY_TEXT).to_numpy(zero_copy_only=False), lambda r: "employee_id: required, got an empty value")
    # Worked out before the columns are parsed (so its sorting needs no room beside them), flagged in its turn below.
    first, related, unknown = _first_rows_and_relations(plan, employee, pc.utf8_trim_whitespace(text["related_to"]))
    del employee

    dates, date_ok = {}, {}
    for column in ("birth_date", "hire_date", "termination_date"):
        dates[column], ok, _year = parse_dates(text[column])
        blank = pc.equal(text[column], EMPTY_TEXT).to_numpy(zero_copy_only=False)
        if column == "termination_date":
            ok = ok | blank
            dates[column] = np.where(blank, NO_DATE, dates[column])
        date_ok[column] = ok
        flag(~ok, lambda r, c=column: f"{c}: expected a date YYYY-MM-DD{' or nothing' if c == 'termination_date' else ''}"
                                      f", got {shown(value(c, r))}")
    money, money_ok = {}, {}
    for column in ("compensation", *OPTIONAL_MONEY, "prior_year_fica_wages"):
        money[column], ok, too_big = parse_money(text[column], column != "compensation")
        money_ok[column] = ok
        flag(~ok & ~too_big, lambda r, c=column: f"{c}: expected dollars with at most two decimals (zero or more), "
                                                 f"got {shown(value(c, r))}")
        flag(too_big, lambda r, c=column: f"{c}: expected at most {MAX_DOLLARS_TEXT}, got {shown(value(c, r))}")
    ownership = {}
    for column in ("ownership_percent", "prior_year_ownership_percent"):
        ownership[column], ok, _ = parse_percent(text[column])
        flag(~ok, lambda r, c=column: f"{c}: expected a percentage from 0 to 100 with at most four decimals, "
                                      f"got {shown(value(c, r))}")
    elections = {}
    for column in ELECTION_COLUMNS:
        ppm, ok, blank = parse_percent(text[column])
        elections[column] = np.where(blank, -1, ppm)
        if preview:
            flag(~ok, lambda r, c=column: f"{c}: expected a percentage from 0 to 100 or nothing, got {shown(value(c, r))}")
    officer_text = pc.utf8_lower(pc.utf8_trim_whitespace(text["officer"]))
    officer = pc.is_in(officer_text, pa.array(_TRUE)).to_numpy(zero_copy_only=False)
    officer_ok = officer | pc.is_in(officer_text, pa.array(_FALSE)).to_numpy(zero_copy_only=False)
    flag(~officer_ok, lambda r: f"officer: expected true or false, got {shown(value('officer', r))}")
    former_key, former_ok = _flag_column(text["former_key_employee"])
    flag(~former_ok, lambda r: f"former_key_employee: expected true or false, got "
                               f"{shown(value('former_key_employee', r))}")

    birth, hire, term = dates["birth_date"], dates["hire_date"], dates["termination_date"]
    end = _days(dt.date(year, 12, 31))
    both = date_ok["birth_date"] & date_ok["hire_date"]
    flag(both & (birth >= hire), lambda r: "hire_date: must be after birth_date")
    flag(date_ok["birth_date"] & (birth < _days(dt.date(year - 120, 1, 1))), lambda r: "birth_date: gives an age over 120")
    flag(date_ok["hire_date"] & (hire > end), lambda r: f"hire_date: after the {year} plan year")
    # Someone who left in the prior year still has the balance the top-heavy test counts (416(g)(4)(E)).
    flag(date_ok["termination_date"] & (term < _days(dt.date(year - 1, 1, 1))),
         lambda r: f"termination_date: before {year - 1}; no service in the year ending on the determination date, "
                   "so the balance is not counted (IRC 416(g)(4)(E)) and the row belongs to no test")
    flag(date_ok["hire_date"] & date_ok["termination_date"] & (term < hire),
         lambda r: "termination_date: before hire_date")
    paid = sum(money[c] for c in CONTRIBUTIONS)
    flag(money_ok["compensation"] & (paid > 0) & (money["compensation"] == 0),
         lambda r: "compensation: zero, but contributions were made (a ratio needs pay)")

    duplicate = first != np.arange(n)
    flag(duplicate, lambda r: f"employee_id: duplicate of line {int(lines[first[r]])} in the same plan")
    flag(unknown, lambda r: f"related_to: no employee {shown(value('related_to', r).strip())} in plan "
                            f"{shown(value('plan_id', r))} of this census")
    flag(related == np.arange(n), lambda r: "related_to: names the employee's own row")
    related = np.where(related == np.arange(n), -1, related)
    # A family member whose own row is rejected cannot lend ownership: reject the dependant too.
    while True:
        dependants = [r for r in np.flatnonzero(related >= 0).tolist() if related[r] in problems and r not in problems]
        if not dependants:
            break
        for row in dependants:
            problems[row] = [f"related_to: the row of {shown(value('related_to', row).strip())} was rejected"]

    bad_rows = np.array(sorted(problems), dtype=np.int64)
    keep = np.ones(n, dtype=bool)
    keep[bad_rows] = False
    new_index = np.cumsum(keep) - 1
    related_kept = np.where(related[keep] >= 0, new_index[np.maximum(related[keep], 0)], -1)
    rejects = list(unsplit)
    rejects += [Reject(int(lines[r]), "; ".join(problems[r]), tuple(value(c, r) for c in CENSUS_COLUMNS))
                for r in bad_rows.tolist()]
    rejects.sort(key=lambda reject: reject.line)
    fica_known = pc.not_equal(pc.utf8_trim_whitespace(text["prior_year_fica_wages"]), EMPTY_TEXT).to_numpy(
        zero_copy_only=False) if n else np.zeros(0, dtype=bool)
    # The text is done with: free it before the kept rows are taken.
    text.clear()
    as_read.clear()
    kept = (lambda values: values) if len(bad_rows) == 0 else (lambda values: values[keep])
    return Census(
        source=source, year=year, line=kept(lines), plan_ids=list(plan_ids), plan=kept(plan),
        employee_id=kept(employee_np), birth=kept(birth), hire=kept(hire), termination=kept(term),
        compensation=kept(money["compensation"]), prior_year_compensation=kept(money["prior_year_compensation"]),
        ownership=kept(ownership["ownership_percent"]),
        prior_year_ownership=kept(ownership["prior_year_ownership_percent"]),
        related=related_kept, officer=kept(officer), former_key=kept(former_key),
        money={c: kept(money[c]) for c in OPTIONAL_MONEY if c != "prior_year_compensation"},
        elections={c: kept(v) for c, v in elections.items()},
        rows_read=n + len(unsplit), rejects=rejects, extra_columns=extra,
        prior_year_fica_wages=kept(money["prior_year_fica_wages"]), fica_known=kept(fica_known),
    )


def _flag_column(column: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """(true, ok) for a text column of true/false (yes/no, y/n, 1/0; empty is false)."""
    text = pc.utf8_lower(pc.utf8_trim_whitespace(column))
    true = pc.is_in(text, pa.array(_TRUE)).to_numpy(zero_copy_only=False)
    return true, true | pc.is_in(text, pa.array(_FALSE)).to_numpy(zero_copy_only=False)


def _first_rows_and_relations(plan: np.ndarray, employee: pa.Array,
                              related_to: pa.Array) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For each row: the first row of its (plan, employee_id); the first row of its related_to in the same
    plan (-1 when empty); and whether a related_to given names no employee of the plan. Vectorized."""
    n = len(plan)
    encoded = pc.dictionary_encode(employee)
    width = len(encoded.dictionary) + 1
    key = np.maximum(plan, 0) * width + encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.ones(n, dtype=bool)
    starts[1:] = sorted_key[1:] != sorted_key[:-1]
    group_first = order[np.maximum.accumulate(np.where(starts, np.arange(n), 0))] if n else order
    first = np.empty(n, dtype=np.int64)
    first[order] = group_first
    given = pc.not_equal(related_to, EMPTY_TEXT).to_numpy(zero_copy_only=False)
    code = pc.fill_null(pc.index_in(related_to, value_set=encoded.dictionary), -1).to_numpy(zero_copy_only=False)
    wanted = np.maximum(plan, 0) * width + code
    position = np.clip(np.searchsorted(sorted_key, wanted), 0, max(n - 1, 0))
    found = given & (code >= 0) & (n > 0) & (sorted_key[position] == wanted) if n else given
    related = np.where(found, order[position] if n else -1, -1)
    return first, related, given & ~found


def reject_rows(rejects: list[Reject]) -> tuple[list[str], list[list[str]]]:
    """The rejects file of a census: header and rows (line, reason, the row's values as read, shortened)."""
    return ["line", "reason", *CENSUS_COLUMNS, "raw"], [r.cells(len(CENSUS_COLUMNS), RAW_CHARS) for r in rejects]
