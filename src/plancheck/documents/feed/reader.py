"""Reading payroll feeds (CSV or Parquet) as streams of string columns.

Every interface column is read as text so that a bad value rejects its row, not the file;
conversion to cents and dates happens per partition in parse.py. CSV records are split by
records.py (quoted fields may hold newlines; each record is numbered by its first line); a
record that cannot be read (wrong number of fields, bad UTF-8, malformed quoting, too long, a
value longer than MAX_VALUE_CHARS) becomes a Reject and the rest of the feed is read on.
Well-formed records without quotes are parsed by Arrow in bulk; the others one by one with
Python's csv module. For Parquet the line number is the 1-based row, and a feed is read in
ranges of whole row groups. A feed is a local file or a file on object storage (source.py).
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from plancheck.documents.feed import records
from plancheck.documents.feed.records import CHUNK, MAX_RECORD_BYTES, RAW_CHARS, Block, Reject, raw_text, read_blocks
from plancheck.documents.feed.source import Source
from plancheck.errors import InputError, Problem, shorten, shown
from plancheck.locations import is_store_error

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
_QUOTE, _CR, _NEWLINE = ord('"'), ord("\r"), ord("\n")
#: Smallest stretch Feed.ranges scans at a time (tests lower it to cut small feeds).
MIN_RANGE_CHUNK = 1 << 16
#: The first line number of a range whose true first line is not known until the ranges before it are read.
PROVISIONAL_LINE = 1
#: Tries to place one cut where no quote is near before it is given up (the cut is dropped).
CUT_TRIES = 4
#: Rows of one Parquet read batch: about a CSV block's (16 MB), so a spill task holds as much either way.
PARQUET_BATCH_ROWS = 131_072


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


@dataclass
class Feed:
    """An open feed (or any file of a Layout): its format, extra columns, and string batches with line numbers."""

    source: Source
    format: str
    extra_columns: list[str]
    size_bytes: int
    estimated_rows: int | None
    header: list[str]
    data_start: int = 0
    #: Let Arrow parse with threads (off in worker processes, which already use every core).
    threads: bool = True
    #: Records that could not be checked, filled while reading.
    bad_rows: list[Reject] = field(default_factory=list)
    #: Which columns are read (a payroll feed's unless told otherwise).
    layout: Layout = FEED
    #: After a CSV range is read: the line number just past it (its first line + the lines it holds).
    next_line: int | None = None
    #: What identifies the version of the file that was opened (size and mtime; for a URL size and ETag).
    version: str = ""
    #: Keep a Parquet file's decimal and date columns as they are (parse.py converts them without text)
    #: instead of rendering them as text; the batch asks for it, readers of text (the census) do not.
    keep_types: bool = False

    def unchanged(self, version: str | None = None) -> None:
        """An InputError if the file is no longer the version opened (or `version`, another process's opening of
        it): replaced or still being written while a run read it, so ranges read by different processes would
        not be one file. Without `version` the file is asked again for its own."""
        if version is None:
            expected, now = self.version, self.source.info().get("version")
        else:
            expected, now = version, self.version
        if now != expected:
            raise InputError(Problem(str(self.source), "", "the feed changed while it was being read (its size, "
                                     "modification time or ETag is not what it was when the run opened it); nothing "
                                     "was written: run again once the file is complete"))

    def batches(self) -> Iterator[pa.RecordBatch]:
        """Batches of the interface columns as strings, plus LINE (int64)."""
        if self.format == "parquet":
            yield from self._parquet_batches()
        else:
            yield from self.csv_batches(FeedRange(self.data_start, self.size_bytes, 2))

    def range_batches(self, span: FeedRange) -> Iterator[pa.RecordBatch]:
        """The batches of one of `ranges()`: a byte range of a CSV, or row groups of a Parquet file."""
        if self.format == "parquet":
            return self._parquet_batches(span)
        return self.csv_batches(span)

    def ranges(self, pieces: int) -> list[FeedRange]:
        """Split a CSV's records into about `pieces` byte ranges cut at record boundaries; a Parquet file into
        about `pieces` runs of whole row groups of about equal rows.

        A CSV is cut without reading it whole: a newline with no double quote in the MAX_RECORD_BYTES
        before it ends a record whatever came before (a quoted field, the only thing that spans a
        newline, is at most that long and opens with a quote), so each cut reads about a megabyte.
        Those ranges number their lines from PROVISIONAL_LINE (`renumber`). Where quotes are
        everywhere (a fully quoted feed), the cuts come from the record splitting a reader does
        (records.read_blocks) over the whole file, with exact line numbers.
        """
        if self.format == "parquet":
            return self._row_group_ranges(pieces)
        if pieces <= 1:
            return [FeedRange(self.data_start, self.size_bytes, 2)]
        with self.source.errors():
            quick = self._quick_ranges(pieces)
            return quick if quick is not None else self._scanned_ranges(pieces)

    def _quick_ranges(self, pieces: int) -> list[FeedRange] | None:
        """Cuts placed near equal steps where no quote is near (see `ranges`); None if fewer than half can be."""
        step = max((self.size_bytes - self.data_start) // pieces, 1)
        cuts = [self.data_start]
        with self.source.open() as handle:
            for k in range(1, pieces):
                cut = _quote_free_cut(handle, max(self.data_start + k * step, cuts[-1] + 1), self.data_start,
                                      self.size_bytes)
                if cut is not None and cut > cuts[-1] and cut < self.size_bytes:
                    cuts.append(cut)
        if len(cuts) < (pieces + 1) // 2:
            return None
        stops = cuts[1:] + [self.size_bytes]
        return [FeedRange(start, stop, 2 if start == self.data_start else PROVISIONAL_LINE)
                for start, stop in zip(cuts, stops)]

    def _scanned_ranges(self, pieces: int) -> list[FeedRange]:
        """Cuts from reading the whole CSV's record boundaries, each range with its exact first line."""
        step = max((self.size_bytes - self.data_start) // pieces, 1)
        cuts = [(self.data_start, 2)]
        with self.source.open() as handle:
            for block in read_blocks(handle, self.data_start, self.size_bytes, 2, chunk=min(CHUNK, max(step, MIN_RANGE_CHUNK)),
                                     boundaries_only=True):
                if cuts[-1][0] + step <= block.end < self.size_bytes:
                    cuts.append((block.end, block.next_line))
        stops = [start for start, _ in cuts[1:]] + [self.size_bytes]
        return [FeedRange(start, stop, line) for (start, line), stop in zip(cuts, stops)]

    def csv_batches(self, span: FeedRange) -> Iterator[pa.RecordBatch]:
        """Parse a byte range of the CSV a block of records at a time, so memory stays bounded.

        pyarrow's streaming reader reads ahead without limit when parsing is fast; parsing
        explicit blocks keeps one in memory and gives exact line numbers. Records that cannot
        be read go to self.bad_rows instead of stopping the run.
        """
        with self.source.errors(), self.source.open() as handle:
            for block in read_blocks(handle, span.start, span.stop, span.first_line):
                self.next_line = block.next_line
                self.bad_rows.extend(block.bad)
                if not len(block.lines):
                    continue
                batch = self._parse_block(block)
                if batch.num_rows and int((block.stops - block.starts).max()) > MAX_VALUE_CHARS:
                    batch = self._refuse_long_values(batch)
                if batch.num_rows:
                    yield batch

    # -- CSV records to columns ------------------------------------------------------------

    def _parse_block(self, block: Block) -> pa.RecordBatch:
        """The records of a block as string columns plus LINE; unreadable ones go to bad_rows."""
        plain = _plain_records(block)
        parts = []
        if plain.any():
            parsed = self._arrow_records(block, plain)
            if parsed is None:  # Arrow disagreed with the record split: read those one by one too
                plain[:] = False
            else:
                parts.append(parsed)
        if not plain.all():
            parts.append(self._python_records(block, ~plain))
        return parts[0] if len(parts) == 1 else pa.concat_batches(parts)

    @property
    def present(self) -> list[str]:
        """The interface columns this feed's header has (optional ones may be missing)."""
        return [c for c in self.layout.columns if c in self.header]

    def _arrow_records(self, block: Block, which: np.ndarray) -> pa.RecordBatch | None:
        """Plain records (no quotes, bare CRs or non-ASCII bytes) parsed by Arrow in one go.

        A record with the wrong number of fields is found by Arrow's invalid-row handler and
        matched back to its line by its text. None if Arrow's rows do not match the records.
        The fields are read as bytes and viewed as text: plain records are ASCII, so Arrow's
        UTF-8 validation (about a third of the parse) would find nothing.
        """
        data = block.data
        if which.all() and not block.bad:
            buffer = memoryview(data)[: int(block.stops[-1]) + 1]
        else:
            buffer = b"\n".join(data[a:b] for a, b in zip(block.starts[which].tolist(), block.stops[which].tolist()))
            buffer += b"\n"
        invalid: list[str] = []

        def skip(row, invalid=invalid) -> str:
            invalid.append(row.text)
            return "skip"

        convert = pacsv.ConvertOptions(column_types={c: pa.binary() for c in self.present}, include_columns=self.present,
                                       strings_can_be_null=False, quoted_strings_can_be_null=False)
        read = pacsv.ReadOptions(column_names=self.header, use_threads=self.threads, block_size=4 << 20)
        try:
            table = pacsv.read_csv(pa.py_buffer(buffer), read_options=read, convert_options=convert,
                                   parse_options=pacsv.ParseOptions(invalid_row_handler=skip))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            return None
        lines, refused = block.lines[which], []
        if invalid:
            lines, refused = self._drop_invalid(block, which, invalid)
        if len(lines) != table.num_rows:
            return None
        self.bad_rows.extend(refused)
        if not table.num_rows:
            return self._with_lines(self._empty_batch(), pa.array(lines, type=pa.int64()))
        batch = table.combine_chunks().to_batches()[0]
        batch = pa.RecordBatch.from_arrays([column.view(pa.string()) for column in batch.columns], names=batch.schema.names)
        return self._with_lines(batch, pa.array(lines, type=pa.int64()))

    def _drop_invalid(self, block: Block, which: np.ndarray, invalid: list[str]) -> tuple[np.ndarray, list[Reject]]:
        """Lines of the records Arrow accepted, and the ones it refused (matched by text) as bad rows."""
        pending = Counter(text.rstrip("\r") for text in invalid)
        kept, refused = [], []
        for k in np.flatnonzero(which).tolist():
            raw = block.data[int(block.starts[k]):int(block.stops[k])]
            text = raw.decode("utf-8", errors="replace").rstrip("\r")
            if pending[text] > 0:
                pending[text] -= 1
                try:
                    fields = next(csv.reader([text]), [])
                except csv.Error:
                    fields = []
                refused.append(self._wrong_count(int(block.lines[k]), fields))
            else:
                kept.append(int(block.lines[k]))
        return np.array(kept, dtype=np.int64), refused

    def _python_records(self, block: Block, which: np.ndarray) -> pa.RecordBatch:
        """Records with quotes, carriage returns or non-ASCII bytes, read one at a time by the csv module."""
        position = {name: index for index, name in enumerate(self.header)}
        columns: dict[str, list[str]] = {c: [] for c in self.layout.columns}
        lines: list[int] = []
        for k in np.flatnonzero(which).tolist():
            line = int(block.lines[k])
            raw = block.data[int(block.starts[k]):int(block.stops[k])]
            fields = self._fields(line, raw)
            if fields is None:
                continue
            if len(fields) != len(self.header):
                self.bad_rows.append(self._wrong_count(line, fields))
                continue
            for column in self.layout.columns:
                columns[column].append(fields[position[column]] if column in position else "")
            lines.append(line)
        names = list(self.layout.columns)
        arrays = [pa.array(columns[c], type=pa.string()) for c in names]
        return self._with_lines(pa.RecordBatch.from_arrays(arrays, names=names), pa.array(lines, type=pa.int64()))

    def _fields(self, line: int, raw: bytes) -> list[str] | None:
        """One record's fields; None (and a bad row) when it is not UTF-8 or not well-formed CSV."""
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            self.bad_rows.append(Reject(line, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} "
                                                 f"of the record); a {self.layout.kind} must be UTF-8", raw=raw_text(raw)))
            return None
        try:
            return next(csv.reader([text.removesuffix("\r")], strict=True), [])
        except csv.Error as exc:
            self.bad_rows.append(Reject(line, f"malformed CSV record: {exc}", raw=raw_text(raw)))
            return None

    def _wrong_count(self, line: int, fields: list[str]) -> Reject:
        """A record with the wrong number of fields, showing the feed's columns it has (by position) only."""
        position = {name: index for index, name in enumerate(self.header)}
        values = tuple(shorten(fields[position[c]], RAW_CHARS) if position.get(c, len(fields)) < len(fields) else ""
                       for c in self.layout.columns)
        return Reject(line, f"expected {len(self.header)} fields, got {len(fields)}", values=values)

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

    # -- Parquet ---------------------------------------------------------------------------

    def _row_groups(self) -> list[int]:
        """Rows of each row group."""
        try:
            with self.source.errors(), _parquet(self.source) as parquet:
                metadata = parquet.metadata
            return [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
        except (pa.ArrowException, OSError) as exc:
            raise InputError(Problem(str(self.source), "", f"unreadable Parquet: {shorten(str(exc), 200)}")) from None

    def _row_group_ranges(self, pieces: int) -> list[FeedRange]:
        """Consecutive row groups cut into about `pieces` ranges of about equal rows (a row group is never cut)."""
        sizes = self._row_groups()
        target = max(sum(sizes) / max(pieces, 1), 1)
        spans, start, first_row, rows = [], 0, 1, 0
        for group, size in enumerate(sizes):
            rows += size
            if rows >= target * (len(spans) + 1) and group + 1 < len(sizes):
                spans.append(FeedRange(start, group + 1, first_row))
                start, first_row = group + 1, rows + 1
        spans.append(FeedRange(start, len(sizes), first_row))
        return spans

    def _parquet_batches(self, span: FeedRange | None = None) -> Iterator[pa.RecordBatch]:
        """The rows of a Parquet file (or of a range of its row groups) as text columns plus LINE."""
        row = span.first_line if span else 1
        groups = list(range(span.start, span.stop)) if span else None
        try:
            with self.source.errors(), _parquet(self.source) as parquet:
                for batch in parquet.iter_batches(batch_size=PARQUET_BATCH_ROWS, columns=self.present,
                                                  row_groups=groups, use_threads=self.threads):
                    strings = pa.RecordBatch.from_arrays(
                        [column if self.keep_types and kept_type(column.type) else as_text(column)
                         for column in (batch.column(c) for c in self.present)], names=self.present)
                    lines = pa.array(np.arange(row, row + batch.num_rows, dtype=np.int64))
                    row += batch.num_rows
                    checked = self._refuse_long_values(self._with_lines(strings, lines))
                    if checked.num_rows:
                        yield checked
        except (pa.ArrowException, OSError) as exc:
            raise InputError(Problem(str(self.source), "", f"unreadable Parquet after row {row - 1}: "
                                                         f"{shorten(str(exc), 200)}")) from None


def renumber(spans: list[FeedRange], next_lines: list[int | None]) -> list[int]:
    """What to add to each range's line numbers to make them the file's, from the line just past each range
    as it numbered its own lines (Feed.next_line after reading it; None for Parquet, numbered exactly)."""
    shifts, true_first = [0], spans[0].first_line
    for before, span, past in zip(spans, spans[1:], next_lines):
        true_first = span.first_line if past is None else true_first + past - before.first_line
        shifts.append(true_first - span.first_line)
    return shifts


def _quote_free_cut(handle: BinaryIO, target: int, data_start: int, size: int) -> int | None:
    """The offset just after the first newline at or after `target` that has no double quote in the
    MAX_RECORD_BYTES bytes before it (so a record boundary, see Feed.ranges); after a quote, the
    search moves past it, up to CUT_TRIES times. None if there is none to be found so."""
    reach = records.MAX_RECORD_BYTES + 2
    for _ in range(CUT_TRIES):
        if target >= size:
            return None
        first = max(data_start, target - reach)
        handle.seek(first)
        window = handle.read(min(size, target + reach) - first)
        newline = window.find(b"\n", target - first)
        if newline < 0:
            return None  # a line longer than a record may be: try no further
        cut = first + newline + 1
        quote = window.rfind(b'"', max(0, cut - first - reach), newline)
        if quote < 0:
            return cut
        target = first + quote + reach
    return None


def _plain_records(block: Block) -> np.ndarray:
    """Which records Arrow may read in bulk: no double quote, no carriage return except before the
    newline, no byte outside ASCII. The others are read one by one (their quoting, line breaks and
    UTF-8 are checked record by record)."""
    data = block.data
    codes = np.frombuffer(data, dtype=np.uint8)
    marks = []
    if b'"' in data:
        marks.append(np.flatnonzero(codes == _QUOTE))
    if b"\r" in data and data.count(b"\r") != data.count(b"\r\n"):
        returns = np.flatnonzero(codes == _CR)
        following = codes[np.minimum(returns + 1, len(codes) - 1)]
        marks.append(returns[(returns + 1 >= len(codes)) | (following != _NEWLINE)])
    if not data.isascii():
        marks.append(np.flatnonzero(codes >= 0x80))
    plain = np.ones(len(block.starts), dtype=bool)
    if marks:
        where = np.concatenate(marks)
        record = np.searchsorted(block.starts, where, side="right") - 1
        inside = (record >= 0) & (where < block.stops[np.maximum(record, 0)])
        plain[record[inside]] = False
    return plain


def _readable_type(kind: pa.DataType) -> bool:
    """Whether a Parquet interface column of this type reads as text the way a CSV cell would."""
    if pa.types.is_dictionary(kind):
        return _readable_type(kind.value_type)
    return any(check(kind) for check in (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer,
                                         pa.types.is_floating, pa.types.is_decimal, pa.types.is_date,
                                         pa.types.is_timestamp, pa.types.is_boolean, pa.types.is_null))


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


class _parquet:
    """A Parquet file of a Source, closed with its underlying file (a local path is opened by Arrow itself)."""

    def __init__(self, source: Source):
        self._handle = None if source.local is not None else source.open(sequential=False)
        try:
            # pre_buffer: a store's reads coalesced into a few large requests (a local file reads as fast without)
            self.file = pq.ParquetFile(source.local if self._handle is None else self._handle,
                                       pre_buffer=self._handle is not None)
        except BaseException:
            if self._handle is not None:
                self._handle.close()
            raise

    def __enter__(self) -> pq.ParquetFile:
        return self.file

    def __exit__(self, *exc) -> None:
        self.file.close()
        if self._handle is not None:
            self._handle.close()


def _first_line(handle: BinaryIO, limit: int) -> bytes:
    """The bytes up to and including the first newline, or the first `limit` + 1 bytes if it is longer."""
    line = b""
    while len(line) <= limit:
        piece = handle.read(1 << 16)
        if not piece:
            break
        newline = piece.find(b"\n")
        if newline >= 0:
            return (line + piece[:newline + 1])[:limit + 1]
        line += piece
    return line[:limit + 1]


def _csv_header(path: Source, kind: str = "feed") -> tuple[list[str], int]:
    """The header row's names and its length in bytes; a header that cannot be read is an InputError."""
    source = str(path)
    with path.open() as handle:
        first_line = _first_line(handle, MAX_RECORD_BYTES)
    if len(first_line) > MAX_RECORD_BYTES:
        raise InputError(Problem(source, "header", f"header row longer than {MAX_RECORD_BYTES:,} bytes", 1))
    try:
        text = first_line.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(Problem(source, "header", f"not UTF-8 text (byte 0x{first_line[exc.start]:02x}); "
                                                   f"a {kind} must be UTF-8", 1)) from None
    try:
        header = next(csv.reader([text.rstrip("\r\n")], strict=True), [])
    except csv.Error as exc:
        raise InputError(Problem(source, "header", f"malformed header row: {exc}", 1)) from None
    if text.count('"') % 2:
        raise InputError(Problem(source, "header", "unbalanced quote in the header row", 1))
    return header, len(first_line)


def _check_columns(source: str, header: list[str], line: int | None, layout: Layout) -> None:
    """Every required column present, none named twice."""
    twice = [name for name, count in Counter(header).items() if count > 1]
    if twice:
        raise InputError(Problem(source, "header", f"column {shown(twice[0])} appears more than once; "
                                                   "each column must be named once", line))
    missing = [c for c in layout.required if c not in header]
    if missing:
        raise InputError(Problem(source, "header", f"missing column(s) {', '.join(missing)}; "
                                                   f"a {layout.kind} needs {', '.join(layout.required)}", line))


def _check_parquet_types(source: str, schema: pa.Schema, layout: Layout) -> None:
    """Interface columns of nested or binary types cannot be read as text: name them."""
    wrong = [f"{name} ({schema.field(name).type})" for name in layout.columns
             if name in schema.names and not _readable_type(schema.field(name).type)]
    if wrong:
        raise InputError(Problem(source, "", f"column(s) of a type plancheck cannot read: {', '.join(wrong)}; "
                                             "expected text, numbers or dates"))


def open_feed(where: Source | Path | str, layout: Layout = FEED) -> Feed:
    """Open a feed (or another file of `layout`), a local path or a URL, and check its header; a missing or
    repeated column or an unreadable file is an InputError."""
    path = Source.of(where)
    source = str(path)
    try:
        info = path.info()
        if not info["is_file"]:
            raise InputError(Problem(source, "", f"{layout.kind} file not found"))
        size = info["size"]
        if path.suffix.lower() in (".parquet", ".pq"):
            with _parquet(path) as parquet:
                schema = parquet.schema_arrow
                header, data_start, rows, fmt = list(schema.names), 0, parquet.metadata.num_rows, "parquet"
            _check_columns(source, header, None, layout)
            _check_parquet_types(source, schema, layout)
        else:
            header, data_start = _csv_header(path, layout.kind)
            rows, fmt = None, "csv"
            _check_columns(source, header, 1, layout)
    except InputError:
        raise
    except Exception as exc:  # Arrow's, the file system's, or the store's own (no credentials, the network)
        if not isinstance(exc, (pa.ArrowException, OSError)) and not is_store_error(exc):
            raise
        text = shorten(str(exc) or type(exc).__name__, 200)
        raise InputError(Problem(source, "", f"unreadable {layout.kind}: {text}")) from None
    extra = [c for c in header if c not in layout.columns]
    return Feed(source=path, format=fmt, extra_columns=extra, size_bytes=size, estimated_rows=rows, header=header,
                data_start=data_start, layout=layout, version=info["version"])
