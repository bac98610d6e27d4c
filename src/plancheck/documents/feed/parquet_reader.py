"""Parquet feeds: whole row groups as ranges, columns read as text the way a CSV cell would (or kept
as exact decimals and dates where the batch asks), the line number being the 1-based row."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from plancheck.documents.feed.columns import Columns, FeedRange, Layout, as_text, kept_type
from plancheck.documents.feed.source import Source
from plancheck.errors import InputError, Problem, shorten

#: Rows of one Parquet read batch: about a CSV block's (16 MB), so a spill task holds as much either way.
PARQUET_BATCH_ROWS = 131_072


class ParquetRowGroups(Columns):
    """Reading a Parquet Feed's row groups (the fields `source`, `threads` and `keep_types` are the Feed's)."""

    def _row_groups(self) -> list[int]:
        """Rows of each row group."""
        try:
            with self.source.errors(), parquet_file(self.source) as parquet:
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
            with self.source.errors(), parquet_file(self.source) as parquet:
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


def _readable_type(kind: pa.DataType) -> bool:
    """Whether a Parquet interface column of this type reads as text the way a CSV cell would."""
    if pa.types.is_dictionary(kind):
        return _readable_type(kind.value_type)
    return any(check(kind) for check in (pa.types.is_string, pa.types.is_large_string, pa.types.is_integer,
                                         pa.types.is_floating, pa.types.is_decimal, pa.types.is_date,
                                         pa.types.is_timestamp, pa.types.is_boolean, pa.types.is_null))


class parquet_file:
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


def check_parquet_types(source: str, schema: pa.Schema, layout: Layout) -> None:
    """Interface columns of nested or binary types cannot be read as text: name them."""
    wrong = [f"{name} ({schema.field(name).type})" for name in layout.columns
             if name in schema.names and not _readable_type(schema.field(name).type)]
    if wrong:
        raise InputError(Problem(source, "", f"column(s) of a type plancheck cannot read: {', '.join(wrong)}; "
                                             "expected text, numbers or dates"))
