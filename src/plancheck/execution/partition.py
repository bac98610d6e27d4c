"""Hash partitioning of a feed by (plan_id, employee_id) into spill files.

Rows may arrive in any order, but every check needs an employee's whole year in pay-date order,
in every plan of the employer (401(a)(30) and 415(c) count them together). The feed is streamed
once and each row goes to one of K Arrow IPC files chosen by a stable hash of its employer (the
plan's `employer`, else its plan_id) and employee, so each file holds complete employee-years of
every plan of an employer and can be checked alone.
K depends only on the feed's size, never on the number of workers, so results do not either.
Peak memory is one read block in the main process and one partition per worker.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from plancheck.safe_open import create_file

#: Target size of one partition, in bytes of CSV (about 150,000 rows).
PARTITION_BYTES = 12 << 20
PARTITION_ROWS = 150_000
MAX_PARTITIONS = 1024


class FeedSize(Protocol):
    """What the partition count reads of a feed (documents.feed.reader.Feed)."""

    #: Rows the feed holds, where its format says (Parquet), else None.
    estimated_rows: int | None
    size_bytes: int


def partition_count(feed: FeedSize) -> int:
    """Partitions for a feed of this size: by rows where known, else by bytes; never more than MAX_PARTITIONS."""
    if feed.estimated_rows is not None:
        wanted = -(-feed.estimated_rows // PARTITION_ROWS)
    else:
        wanted = -(-feed.size_bytes // PARTITION_BYTES)
    return int(min(max(wanted, 1), MAX_PARTITIONS))


_PRIME = np.uint64(1_099_511_628_211)  # FNV-1 64-bit prime


def stable_hash(batch: pa.RecordBatch, employers: dict[str, str] | None = None) -> np.ndarray:
    """A hash of (employer, employee_id) per row, the same in every batch, process, run and machine.

    The employee_id's UTF-8 bytes, left-padded with zero bytes to a multiple of eight, are read as
    little-endian 64-bit words and folded with Horner's rule (mod 2**64); leading zero words leave
    the sum unchanged, so the width of a batch does not matter. The employer's own hash (one per
    distinct plan_id of the batch) is folded in last, then a murmur-style finaliser spreads the low
    bits for `% partitions`. Word-wise folding is eight times fewer passes than byte-wise.
    """
    n = batch.num_rows
    if not n:
        return np.zeros(0, dtype=np.uint64)
    words = _key_words(batch.column("employee_id"))
    h = np.zeros(n, dtype=np.uint64)
    plans = pc.dictionary_encode(batch.column("plan_id"))
    employer = employers or {}  # a plan's `employer` where the plans map it, else its plan_id as written
    employer_hash = np.array([_horner(employer.get(p, p).encode()) for p in plans.dictionary.to_pylist()],
                             dtype=np.uint64)
    with np.errstate(over="ignore"):
        for column in range(words.shape[1]):
            h = h * _PRIME + words[:, column]
        h = h * _PRIME + employer_hash[plans.indices.to_numpy(zero_copy_only=False)]
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
    return h


def _key_words(keys: pa.Array) -> np.ndarray:
    """Each key's UTF-8 bytes right-aligned in a row of little-endian uint64 words (zero bytes in front)."""
    n = len(keys)
    lengths = pc.binary_length(keys).to_numpy(zero_copy_only=False).astype(np.int64)
    width = max(8, -(-int(lengths.max()) // 8) * 8)
    if pc.min(pc.equal(pc.binary_length(keys), pc.utf8_length(keys))).as_py():  # ASCII: a character is a byte
        padded = pc.utf8_lpad(keys, width=width, padding="\x00")
        _validity, offsets, data = padded.buffers()
        start = int(np.frombuffer(offsets, dtype=np.int32, count=1, offset=padded.offset * 4)[0])
        matrix = np.frombuffer(data, dtype=np.uint8)[start:start + n * width]
    else:  # place each key's bytes at the end of its row
        _validity, offsets, data = keys.buffers()
        bounds = np.frombuffer(offsets, dtype=np.int32, count=n + 1, offset=keys.offset * 4).astype(np.int64)
        row = np.repeat(np.arange(n), lengths)
        source = np.arange(bounds[0], bounds[-1])
        matrix = np.zeros(n * width, dtype=np.uint8)
        matrix[source - bounds[:-1][row] + row * width + (width - lengths)[row]] = np.frombuffer(data, np.uint8)[source]
    return matrix.view("<u8").reshape(n, width // 8)


def _horner(data: bytes) -> int:
    h = 0
    for byte in data:
        h = (h * int(_PRIME) + byte) & 0xFFFF_FFFF_FFFF_FFFF
    return h


def spill(batches: Iterable[pa.RecordBatch], directory: Path, partitions: int, tag: str,
          progress: Callable[[int], None] | None = None,
          employers: dict[str, str] | None = None) -> tuple[dict[int, Path], int]:
    """Write rows into per-partition IPC pieces named part-K-TAG; return {K: path} and the rows written."""
    writers: dict[int, ipc.RecordBatchFileWriter] = {}
    files: dict[int, BinaryIO] = {}
    paths: dict[int, Path] = {}
    rows = 0
    try:
        for batch in batches:
            rows += batch.num_rows
            part = (stable_hash(batch, employers) % np.uint64(partitions)).astype(np.int64)
            order = np.argsort(part, kind="stable")
            sorted_batch = batch.take(pa.array(order))
            bounds = np.searchsorted(part[order], np.arange(partitions + 1))
            for k in range(partitions):
                start, stop = int(bounds[k]), int(bounds[k + 1])
                if start == stop:
                    continue
                if k not in writers:
                    paths[k] = directory / f"part-{k:04d}-{tag}.arrow"
                    files[k] = create_file(paths[k])  # never through a link (safe_open.py)
                    writers[k] = ipc.new_file(files[k], batch.schema)
                writers[k].write_batch(sorted_batch.slice(start, stop - start))
            if progress:
                progress(batch.num_rows)
    finally:
        for writer in writers.values():
            writer.close()
        for handle in files.values():
            handle.close()
    return paths, rows
