"""CSV records to string columns: plain records parsed by Arrow in bulk, the others (quotes, bare
carriage returns, non-ASCII bytes) one by one with Python's csv module; a record that cannot be
read becomes a Reject and the rest of the feed is read on. And the header row of a CSV."""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv

from plancheck.documents.feed.columns import MAX_VALUE_CHARS, Columns, FeedRange
from plancheck.documents.feed.records import MAX_RECORD_BYTES, RAW_CHARS, Block, Reject, raw_text, read_blocks
from plancheck.documents.feed.source import Source
from plancheck.errors import InputError, Problem, shorten

_QUOTE, _CR, _NEWLINE = ord('"'), ord("\r"), ord("\n")


class CsvRecords(Columns):
    """Reading a CSV Feed's byte ranges (the fields `source` and `threads` are the Feed's)."""

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


def csv_header(path: Source, kind: str = "feed") -> tuple[list[str], int]:
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
