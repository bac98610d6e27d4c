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

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.ipc as ipc

from plancheck.documents.feed.reader import Feed

#: Target size of one partition, in bytes of CSV (about 150,000 rows).
PARTITION_BYTES = 12 << 20
PARTITION_ROWS = 150_000
MAX_PARTITIONS = 1024


def partition_count(feed: Feed) -> int:
    if feed.estimated_rows is not None:
        wanted = -(-feed.estimated_rows // PARTITION_ROWS)
    else:
        wanted = -(-feed.size_bytes // PARTITION_BYTES)
    return int(min(max(wanted, 1), MAX_PARTITIONS))


_PRIME = np.uint64(1_099_511_628_211)  # FNV-1 64-bit prime


def employer_column(plan_ids: pa.Array, employers: dict[str, str] | None) -> pa.Array:
    """Each row's employer: the plan's `employer` where the plans map it, else the plan_id as written."""
    if not employers:
        return plan_ids
    known = pa.array(list(employers), type=pa.string())
    mapped = pc.take(pa.array(list(employers.values()), type=pa.string()), pc.index_in(plan_ids, value_set=known))
    return pc.coalesce(mapped, plan_ids)


def stable_hash(batch: pa.RecordBatch, employers: dict[str, str] | None = None) -> np.ndarray:
    """A hash of 'employer<0x1f>employee_id' per row, the same in every batch, process and run.

    Horner's rule over the key's UTF-8 bytes (mod 2**64), computed column by column over the
    keys left-padded with zero bytes to one width (leading zeros leave Horner's sum unchanged,
    so the width of a batch does not matter), then a murmur-style finaliser so that the low
    bits spread well for `% partitions`.
    """
    keys = pc.binary_join_element_wise(employer_column(batch.column("plan_id"), employers),
                                       batch.column("employee_id"), "\x1f")
    n = len(keys)
    if not n:
        return np.zeros(0, dtype=np.uint64)
    lengths = pc.binary_length(keys)
    width = pc.max(lengths).as_py()
    if pc.min(pc.equal(lengths, pc.utf8_length(keys))).as_py():  # all ASCII: one byte per character
        padded = pc.utf8_lpad(keys, width=width, padding="\x00")
        _validity, offsets, data = padded.buffers()
        start = int(np.frombuffer(offsets, dtype=np.int32, count=1, offset=padded.offset * 4)[0])
        matrix = np.frombuffer(data, dtype=np.uint8)[start:start + n * width].reshape(n, width)
        h = np.zeros(n, dtype=np.uint64)
        with np.errstate(over="ignore"):
            for column in range(width):
                h = h * _PRIME + matrix[:, column]
    else:
        h = np.array([_horner(k.encode()) for k in keys.to_pylist()], dtype=np.uint64)
    with np.errstate(over="ignore"):
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xFF51AFD7ED558CCD)
        h ^= h >> np.uint64(33)
        h *= np.uint64(0xC4CEB9FE1A85EC53)
        h ^= h >> np.uint64(33)
    return h


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
                    writers[k] = ipc.new_file(paths[k], batch.schema)
                writers[k].write_batch(sorted_batch.slice(start, stop - start))
            if progress:
                progress(batch.num_rows)
    finally:
        for writer in writers.values():
            writer.close()
    return paths, rows
