"""Splitting CSV bytes into records: quote-aware, numbered by line, bounded in memory, never raising.

The rules (README, "Batch feeds"):

* A record ends at a newline outside double quotes, so a quoted field may hold newlines; the
  record is numbered by its first line. Quote parity decides: `""` inside a quoted field keeps
  it open. Empty lines are skipped.
* A line longer than MAX_RECORD_BYTES is rejected on its own ("record longer than ...") and
  skipped without ever being held in memory whole.
* A quote left open must be closed by a later line within MAX_RECORD_LINES lines and
  MAX_RECORD_BYTES bytes. If it is not (or the input ends first), the line that opened it is
  rejected ("unbalanced quote") and reading resumes at the next line, so the rows after a
  stray quote are still read.

These rules only look ahead a bounded distance, so reading a byte range that starts and ends
at record boundaries gives exactly the records a reading of the whole file gives there; that
is how `Feed.ranges` cuts a feed for parallel reading.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from plancheck.errors import shorten

#: Longest record (all its lines) and longest single line, in bytes; a field over 1 MB is refused with it.
MAX_RECORD_BYTES = 1_000_000
#: Most lines one record (a quoted field with newlines) may span.
MAX_RECORD_LINES = 100
#: How much of a record that cannot be split into fields the rejects file shows.
RAW_CHARS = 200
CHUNK = 16 << 20
# Records read here are parsed with the csv module, whose default field limit (128 KiB) is
# below a record's; raise it so that the limit is MAX_RECORD_BYTES, and a csv.Error never.
csv.field_size_limit(max(csv.field_size_limit(), MAX_RECORD_BYTES + 1))

_NEWLINE, _QUOTE, _CR = ord("\n"), ord('"'), ord("\r")
TOO_LONG = f"record longer than {MAX_RECORD_BYTES:,} bytes"
UNBALANCED = (f"unbalanced quote: the quoted field opened on this line is not closed within {MAX_RECORD_LINES} "
              f"lines and {MAX_RECORD_BYTES:,} bytes")


@dataclass(frozen=True)
class Reject:
    """A record or row that cannot be checked: its first line, why, and what of it may be shown.

    The one shape every stage rejects in: the record reader (a record that cannot be split into
    fields: `raw` holds the start of its text), the parser (a bad value) and the batch's
    conflict check (a duplicate pay date), and the census reader. `values` holds the input's own
    columns as read; unknown columns are never kept.
    """

    line: int
    reason: str
    values: tuple[str, ...] | None = None
    raw: str = ""

    def cells(self, columns: int, limit: int) -> list[Any]:
        """The rejects-file row: line, reason, each column's value shortened to `limit`, and raw."""
        values = self.values if self.values is not None else ("",) * columns
        return [self.line, shorten(self.reason, 1000), *(shorten(v, limit) for v in values), self.raw]

    def as_json(self) -> list[Any]:
        return [self.line, self.reason, None if self.values is None else list(self.values), self.raw]

    @classmethod
    def from_json(cls, item: list[Any]) -> "Reject":
        line, reason, values, raw = item
        return cls(line, reason, None if values is None else tuple(values), raw)


def raw_text(data: bytes) -> str:
    """The start of a record's bytes as readable text (bad UTF-8 replaced), cut to RAW_CHARS and marked '…'."""
    text = data[: RAW_CHARS * 4].decode("utf-8", errors="replace").rstrip("\r\n")
    return text if len(text) <= RAW_CHARS and len(data) <= RAW_CHARS * 4 else text[:RAW_CHARS] + "…"


@dataclass
class Block:
    """The complete records of a stretch of a file, and the records refused while splitting.

    Record k is `data[starts[k]:stops[k]]` (without its newline) and begins on `lines[k]`.
    `end` is the file offset just after the last resolved byte, a record boundary with line
    number `next_line`.
    """

    data: bytes
    starts: np.ndarray
    stops: np.ndarray
    lines: np.ndarray
    bad: list[Reject]
    end: int
    next_line: int


@dataclass
class _Scan:
    starts: np.ndarray
    stops: np.ndarray
    lines: np.ndarray
    bad: list[Reject]
    consumed: int
    next_line: int


def _line_bounds(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (the newline's offset) of every complete line."""
    ends = np.flatnonzero(codes == _NEWLINE)
    starts = np.empty(len(ends), dtype=np.int64)
    if len(ends):
        starts[0] = 0
        starts[1:] = ends[:-1] + 1
    return starts, ends


def _odd_quote_lines(data: bytes, codes: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Lines holding an odd number of double quotes: each opens or closes a multi-line record."""
    if b'"' not in data:
        return np.zeros(len(ends), dtype=bool)
    per_line = np.bincount(np.searchsorted(ends, np.flatnonzero(codes == _QUOTE)), minlength=len(ends) + 1)
    return (per_line[: len(ends)] % 2) == 1


def scan(data: bytes, first_line: int, final: bool) -> _Scan:
    """Split `data` (starting at a record boundary, line `first_line`) into records.

    Without `final`, a trailing partial line and a quoted record still open within the limits
    are left unresolved (`consumed` stops before them) for the caller to carry over.
    """
    codes = np.frombuffer(data, dtype=np.uint8)
    starts, ends = _line_bounds(codes)
    n = len(ends)
    oversize = (ends - starts) > MAX_RECORD_BYTES
    odd = _odd_quote_lines(data, codes, ends)
    last_line = np.arange(n)
    refused: dict[int, str] = {}
    stop = n
    special = np.flatnonzero(odd | oversize).tolist()
    k = 0
    while k < len(special):
        i = special[k]
        if oversize[i]:
            refused[i] = TOO_LONG
            k += 1
            continue
        if k + 1 < len(special):
            j = special[k + 1]
            if not oversize[j] and j - i < MAX_RECORD_LINES and ends[j] - starts[i] <= MAX_RECORD_BYTES:
                last_line[i] = j
                k += 2
                continue
        elif not final and n - i < MAX_RECORD_LINES and len(data) - starts[i] <= MAX_RECORD_BYTES:
            stop = i  # may still close in the next block
            break
        refused[i] = UNBALANCED
        k += 1
    is_first = np.ones(stop, dtype=bool)
    for i in np.flatnonzero(last_line[:stop] != np.arange(stop)).tolist():
        is_first[i + 1:last_line[i] + 1] = False
    is_first[list(refused)] = False
    lengths = (ends - starts)[:stop]
    empty = (lengths == 0) | ((lengths == 1) & (codes[starts[:stop]] == _CR))
    first = np.flatnonzero(is_first & ~empty)
    bad = [Reject(first_line + i, reason, raw=raw_text(data[starts[i]:ends[i]])) for i, reason in refused.items()]
    consumed = int(starts[stop]) if stop < n else (int(ends[-1]) + 1 if n else 0)
    return _Scan(starts[first], ends[last_line[first]], first_line + first, bad, consumed, first_line + stop)


def _boundary(data: bytes, first_line: int, final: bool) -> _Scan:
    """Where a block without any double quote resolves: after its last newline (records not built)."""
    consumed = len(data) if final else data.rfind(b"\n") + 1
    empty = np.zeros(0, dtype=np.int64)
    return _Scan(empty, empty, empty, [], consumed, first_line + data.count(b"\n", 0, consumed))


def read_blocks(handle: BinaryIO, start: int, stop: int, first_line: int, chunk: int = CHUNK,
                boundaries_only: bool = False) -> Iterator[Block]:
    """Records of the bytes [start, stop) of a file, a chunk at a time.

    With `boundaries_only` (for cutting a feed into ranges) a block without quotes is not split
    into records: only its `end` and `next_line` are meaningful.

    Memory stays bounded by about one chunk plus MAX_RECORD_BYTES: an unresolved remainder is
    carried into the next chunk only while it is within the limits, and a line longer than
    MAX_RECORD_BYTES is skipped up to its newline instead of being accumulated.
    """
    handle.seek(start)
    position = start            # file offset of the next byte to read
    base = start                # file offset of carry[0]
    line = first_line
    carry = b""
    skipped: Reject | None = None   # an over-long line being skipped
    pending: list[Reject] = []
    while True:
        block = handle.read(min(chunk, stop - position)) if position < stop else b""
        position += len(block)
        final = not block
        if skipped is not None:
            newline = block.find(b"\n")
            if newline < 0 and not final:
                continue
            pending.append(skipped)
            skipped = None
            line += 1
            block = block[newline + 1:] if newline >= 0 else b""
            base = position - len(block)
        data = carry + block if carry else block
        if final and data and not data.endswith(b"\n"):
            data += b"\n"
        quick = boundaries_only and b'"' not in data
        found = _boundary(data, line, final) if quick else scan(data, line, final)
        bad, pending = pending + found.bad, []
        yield Block(b"" if quick else data, found.starts, found.stops, found.lines, bad,
                    min(base + found.consumed, stop), found.next_line)
        carry, base, line = data[found.consumed:], base + found.consumed, found.next_line
        data = block = b""  # let the chunk go before the next one is read
        if len(carry) > MAX_RECORD_BYTES:  # what remains is the start of one over-long line
            skipped = Reject(line, TOO_LONG, raw=raw_text(carry))
            carry = b""
        if final:
            return
