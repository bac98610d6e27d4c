"""Reading payroll feeds (CSV or Parquet) as streams of string columns: the seam.

Every interface column is read as text so that a bad value rejects its row, not the file;
conversion to cents and dates happens per partition in parse.py. `open_feed` checks a file's
header and gives a Feed; its batches come from csv_reader.py (records split by records.py, quoted
fields may hold newlines, each record numbered by its first line; a record that cannot be read
becomes a Reject) or parquet_reader.py (the line number is the 1-based row, ranges are whole row
groups). This module cuts a CSV into byte ranges at record boundaries and renumbers them. The
shared columns and ranges are in columns.py. A feed is a local file or a file on object storage
(source.py).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa

from plancheck.documents.feed import records
from plancheck.documents.feed.columns import (  # noqa: F401 (the names readers of feeds import from here)
    COLUMNS,
    FEED,
    LINE,
    MAX_VALUE_CHARS,
    MONEY,
    OPTIONAL_COLUMNS,
    OPTIONAL_VALUES,
    PROVISIONAL_LINE,
    FeedRange,
    Layout,
    as_text,
    kept_type,
)
from plancheck.documents.feed.csv_reader import CsvRecords, csv_header
from plancheck.documents.feed.parquet_reader import ParquetRowGroups, check_parquet_types, parquet_file
from plancheck.documents.feed.records import CHUNK, Reject, read_blocks
from plancheck.documents.feed.source import Source
from plancheck.errors import InputError, Problem, shorten, shown
from plancheck.locations import is_store_error

#: Smallest stretch Feed.ranges scans at a time (tests lower it to cut small feeds).
MIN_RANGE_CHUNK = 1 << 16
#: Tries to place one cut where no quote is near before it is given up (the cut is dropped).
CUT_TRIES = 4


@dataclass
class Feed(CsvRecords, ParquetRowGroups):
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
            with parquet_file(path) as parquet:
                schema = parquet.schema_arrow
                header, data_start, rows, fmt = list(schema.names), 0, parquet.metadata.num_rows, "parquet"
            _check_columns(source, header, None, layout)
            check_parquet_types(source, schema, layout)
        else:
            header, data_start = csv_header(path, layout.kind)
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
