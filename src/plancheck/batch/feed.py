"""Reading payroll feeds (CSV or Parquet) as streams of string columns.

Every interface column is read as text so that a bad value rejects its row, not the file;
conversion to cents and dates happens per partition in parse.py. CSV line numbers assume one
record per line (no newlines inside quoted fields); for Parquet the number is the 1-based row.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import InputError, Problem

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
_CHUNK = 16 << 20


@dataclass(frozen=True)
class FeedRange:
    """Records between two byte offsets of a CSV; `first_line` is the line number at `start`."""

    start: int
    stop: int
    first_line: int


@dataclass
class Feed:
    """An open feed: its format, extra columns, and an iterator of string batches with line numbers."""

    path: Path
    format: str
    extra_columns: list[str]
    size_bytes: int
    estimated_rows: int | None
    header: list[str]
    data_start: int = 0
    #: Let Arrow parse with threads (off in worker processes, which already use every core).
    threads: bool = True
    #: Records that could not be split into fields: (line, reason, text), filled while reading.
    bad_rows: list[tuple[int, str, str]] = field(default_factory=list)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Batches of the interface columns as strings, plus LINE (int64)."""
        if self.format == "parquet":
            yield from self._parquet_batches()
        else:
            yield from self.csv_batches(FeedRange(self.data_start, self.size_bytes, 2))

    def ranges(self, pieces: int) -> list["FeedRange"]:
        """Split a CSV's records into about `pieces` byte ranges, cut at newlines, each with its first line."""
        if self.format != "csv" or pieces <= 1:
            return [FeedRange(self.data_start, self.size_bytes, 2)]
        step = max((self.size_bytes - self.data_start) // pieces, 1)
        cuts = [self.data_start]
        with self.path.open("rb") as handle:
            for k in range(1, pieces):
                handle.seek(max(self.data_start + k * step, cuts[-1]))
                handle.readline()
                position = handle.tell()
                if position >= self.size_bytes:
                    break
                if position > cuts[-1]:
                    cuts.append(position)
            cuts.append(self.size_bytes)
            ranges, line = [], 2
            handle.seek(self.data_start)
            for begin, stop in zip(cuts, cuts[1:]):
                ranges.append(FeedRange(begin, stop, line))
                remaining = stop - begin
                while remaining:
                    block = handle.read(min(_CHUNK, remaining))
                    remaining -= len(block)
                    line += block.count(b"\n")
        return ranges

    @property
    def present(self) -> list[str]:
        """The interface columns this feed's header has (optional ones may be missing)."""
        return [c for c in COLUMNS if c in self.header]

    def _with_line_array(self, batch: pa.RecordBatch, lines: pa.Array) -> pa.RecordBatch:
        """The interface columns in COLUMNS order (a missing optional column as empty text) plus LINE."""
        empty = pa.array([""] * batch.num_rows, type=pa.string())
        columns = [batch.column(c) if c in batch.schema.names else empty for c in COLUMNS]
        return pa.RecordBatch.from_arrays(columns + [lines], names=[*COLUMNS, LINE])

    def csv_batches(self, span: "FeedRange") -> Iterator[pa.RecordBatch]:
        """Parse a byte range of the CSV a chunk at a time (cut at a newline), so memory stays bounded.

        pyarrow's streaming reader reads ahead without limit when parsing is fast; parsing
        explicit chunks keeps one chunk in memory and gives exact line numbers. A record with
        the wrong number of fields becomes a reject (self.bad_rows) instead of stopping the run.
        """
        convert = pacsv.ConvertOptions(column_types={c: pa.string() for c in self.present}, include_columns=self.present,
                                       strings_can_be_null=False, quoted_strings_can_be_null=False)
        read = pacsv.ReadOptions(column_names=self.header, use_threads=self.threads)
        with self.path.open("rb") as handle:
            handle.seek(span.start)
            remaining = span.stop - span.start
            line = span.first_line
            carry = b""
            while True:
                block = handle.read(min(_CHUNK, remaining))
                remaining -= len(block)
                data = carry + block if carry else block
                if block:
                    cut = data.rfind(b"\n") + 1
                    if cut == 0:  # one record longer than a chunk: keep reading
                        carry = data
                        continue
                    data, carry = data[:cut], data[cut:]
                elif data and not data.endswith(b"\n"):
                    data += b"\n"  # last record without a final newline
                if not data:
                    break
                invalid: list[str] = []

                def skip(row, invalid=invalid) -> str:
                    invalid.append(row.text)
                    return "skip"

                count = data.count(b"\n")
                try:
                    table = pacsv.read_csv(pa.py_buffer(data), read_options=read, convert_options=convert,
                                           parse_options=pacsv.ParseOptions(invalid_row_handler=skip))
                except pa.ArrowInvalid as exc:
                    raise InputError(Problem(str(self.path), "", f"unreadable CSV between lines {line} and "
                                             f"{line + count - 1}: {exc}")) from None
                lines = self._line_numbers(data, line, count, invalid, table.num_rows)
                if table.num_rows:
                    yield self._with_line_array(table.combine_chunks().to_batches()[0], lines)
                line += count
                if not block:
                    break

    def _line_numbers(self, data: bytes, first_line: int, count: int, invalid: list[str], rows: int) -> pa.Array:
        """Line number of each parsed record of a chunk; skipped records go to bad_rows with theirs."""
        if not invalid and rows == count:
            return pa.array(np.arange(first_line, first_line + count, dtype=np.int64))
        texts = data.decode("utf-8", errors="replace").split("\n")[:count]
        pending = Counter(text.rstrip("\r") for text in invalid)
        numbers = []
        for offset, text in enumerate(texts):
            text = text.rstrip("\r")
            if pending[text] > 0:
                pending[text] -= 1
                fields = len(next(csv.reader([text]), []))
                self.bad_rows.append((first_line + offset, f"expected {len(self.header)} fields, got {fields}", text))
            elif text.strip():
                numbers.append(first_line + offset)
        return pa.array(numbers, type=pa.int64())

    def _parquet_batches(self) -> Iterator[pa.RecordBatch]:
        parquet = pq.ParquetFile(self.path)
        row = 1
        for batch in parquet.iter_batches(batch_size=500_000, columns=self.present):
            strings = pa.RecordBatch.from_arrays(
                [_as_text(batch.column(c)) for c in self.present], names=self.present)
            yield self._with_line_array(strings, pa.array(np.arange(row, row + batch.num_rows, dtype=np.int64)))
            row += batch.num_rows


def _as_text(column: pa.Array) -> pa.Array:
    """A Parquet column as text the same way a CSV cell would read; nulls become empty."""
    if pa.types.is_date(column.type) or pa.types.is_timestamp(column.type):
        column = column.cast(pa.date32())
    text = column.cast(pa.string())
    return text.fill_null("")


def open_feed(path: Path) -> Feed:
    """Open a feed and check its header; a missing column or unreadable file is an InputError."""
    source = str(path)
    if not path.is_file():
        raise InputError(Problem(source, "", "feed file not found"))
    size = path.stat().st_size
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            schema = pq.read_schema(path)
            header = list(schema.names)
            rows = pq.ParquetFile(path).metadata.num_rows
            fmt = "parquet"
        else:
            with path.open("rb") as handle:
                first_line = handle.readline()
            header = next(csv.reader([first_line.decode("utf-8-sig")]), [])
            rows, fmt = None, "csv"
    except (pa.ArrowInvalid, OSError, UnicodeDecodeError) as exc:
        raise InputError(Problem(source, "", f"unreadable feed: {exc}")) from None
    required = [c for c in COLUMNS if c not in OPTIONAL_COLUMNS]
    missing = [c for c in required if c not in header]
    if missing:
        raise InputError(Problem(source, "header", f"missing column(s) {', '.join(missing)}; "
                                                   f"a feed needs {', '.join(required)}", 1 if fmt == "csv" else None))
    extra = [c for c in header if c not in COLUMNS]
    return Feed(path=path, format=fmt, extra_columns=extra, size_bytes=size, estimated_rows=rows, header=header,
                data_start=len(first_line) if fmt == "csv" else 0)
