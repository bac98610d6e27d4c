"""Rejects files: rows a run could not check, as CSV, written in blocks to a stream the caller replaces."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from typing import Any, BinaryIO

#: Bytes gathered before a block is written (rejects can be millions of rows).
BLOCK_BYTES = 1 << 20


def write_rejects(stream: BinaryIO, header: list[str], rows: Iterable[list[Any]]) -> int:
    """The header, then every row; return how many rows were written."""
    count = 0
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(header)
    for row in rows:
        writer.writerow(row)
        count += 1
        if text.tell() > BLOCK_BYTES:
            stream.write(text.getvalue().encode())
            text.seek(0)
            text.truncate()
    stream.write(text.getvalue().encode())
    return count
