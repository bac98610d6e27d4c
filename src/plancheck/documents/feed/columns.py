"""What every feed reader shares: the interface columns, a feed's ranges and layouts, and the
string batches both formats give (each row with its LINE, values too long refused as bad rows)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from plancheck.documents.feed.records import RAW_CHARS, Reject
from plancheck.errors import shorten

#: Feed columns: names are the interface (README).
COLUMNS = ("plan_id", "employee_id", "birth_date", "pay_date", "compensation", "pretax", "roth", "after_tax",
           "employer_match", "employer_nonelective", "prior_year_fica_wages", "other_plan_deferrals",
           "limitation_year")
#: Columns a feed may leave out of its header altogether (read as empty).
OPTIONAL_COLUMNS = ("limitation_year",)
#: Columns whose cells may be left empty: other_plan_deferrals reads as zero; prior_year_fica_wages as unknown.
OPTIONAL_VALUES = ("prior_year_fica_wages", "other_plan_deferrals")
MONEY = ("compensation", "pretax", "roth", "after_tax", "employer_match", "employer_nonelective",
         "prior_year_fica_wages", "other_plan_deferrals")
LINE = "__line"
#: Longest value of a feed column, in characters (ids; dates and amounts are far shorter).
MAX_VALUE_CHARS = 256
#: The first line number of a range whose true first line is not known until the ranges before it are read.
PROVISIONAL_LINE = 1


@dataclass(frozen=True)
class FeedRange:
    """Records between two byte offsets of a CSV, or the row groups start..stop-1 of a Parquet file;
    `first_line` is the line number at `start` (for Parquet the 1-based row of the range's first row).

    A CSV range cut without reading what precedes it (`Feed.ranges`) numbers its lines from
    PROVISIONAL_LINE instead: `renumber` gives each range the shift to its true numbers once the
    line counts of the ranges before it are known.
    """

    start: int
    stop: int
    first_line: int


@dataclass(frozen=True)
class Layout:
    """The interface columns of a kind of file (a feed, a census): all of them, in order, and those a
    header may leave out (read as empty)."""

    kind: str
    columns: tuple[str, ...]
    optional: tuple[str, ...] = ()

    @property
    def required(self) -> list[str]:
        return [c for c in self.columns if c not in self.optional]


#: A payroll feed's columns.
FEED = Layout("feed", COLUMNS, OPTIONAL_COLUMNS)


def kept_type(kind: pa.DataType) -> bool:
    """A Parquet column type the batch reads as it is (Feed.keep_types): exact decimals and dates."""
    return pa.types.is_decimal128(kind) or pa.types.is_date32(kind)


def as_text(column: pa.Array) -> pa.Array:
    """A Parquet column as text the same way a CSV cell would read; nulls become empty."""
    if pa.types.is_dictionary(column.type):
        column = column.cast(column.type.value_type)
    if pa.types.is_date(column.type) or pa.types.is_timestamp(column.type):
        column = column.cast(pa.date32())
    text = column.cast(pa.string())
    return text.fill_null("")


class Columns:
    """The string batches of a Feed (the fields `layout`, `header` and `bad_rows` are the Feed's)."""

    @property
    def present(self) -> list[str]:
        """The interface columns this feed's header has (optional ones may be missing)."""
        return [c for c in self.layout.columns if c in self.header]

    def _refuse_long_values(self, batch: pa.RecordBatch) -> pa.RecordBatch:
        """Rows with a column value over MAX_VALUE_CHARS become bad rows (ids that long would only be mistakes)."""
        lengths = {c: pc.utf8_length(batch.column(c)).to_numpy(zero_copy_only=False) for c in self.layout.columns
                   if not kept_type(batch.column(c).type)}  # a decimal or a date is never that long
        too_long = np.zeros(batch.num_rows, dtype=bool)
        for values in lengths.values():
            too_long |= values > MAX_VALUE_CHARS
        if not too_long.any():
            return batch
        lines = batch.column(LINE).to_numpy()
        for row in np.flatnonzero(too_long).tolist():
            column = next(c for c in lengths if lengths[c][row] > MAX_VALUE_CHARS)
            values = tuple(shorten(as_text(batch.column(c).slice(row, 1))[0].as_py(), RAW_CHARS)
                           for c in self.layout.columns)
            self.bad_rows.append(Reject(int(lines[row]), f"{column}: longer than {MAX_VALUE_CHARS} characters "
                                                            f"({int(lengths[column][row]):,})", values=values))
        return batch.filter(pa.array(~too_long))

    def _with_lines(self, batch: pa.RecordBatch, lines: pa.Array) -> pa.RecordBatch:
        """The layout's columns in order (a missing optional column as empty text) plus LINE."""
        empty = pa.array([""] * batch.num_rows, type=pa.string())
        names = list(self.layout.columns)
        columns = [batch.column(c) if c in batch.schema.names else empty for c in names]
        return pa.RecordBatch.from_arrays(columns + [lines], names=[*names, LINE])

    def _empty_batch(self) -> pa.RecordBatch:
        names = list(self.layout.columns)
        return pa.RecordBatch.from_arrays([pa.array([], type=pa.string()) for _ in names], names=names)
