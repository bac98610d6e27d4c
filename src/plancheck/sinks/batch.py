"""A batch's results as files: findings as JSON lines through the events sink, rejected rows as CSV.

The batch check streams to a `BatchSink` (checks/batch/run.py); this is the one the command line
uses. The rejects CSV is written in blocks of about a megabyte to a stream the caller replaces
into place once the run completes (sinks.files.replacing).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any, BinaryIO

from plancheck.sinks import events


class BatchFiles:
    """Events to the configured event stream (with run_id and ruleset_revision bound), rejects to `rejects`."""

    def __init__(self, rejects: BinaryIO):
        self._rejects = rejects

    def begin(self, run_id: str, ruleset_revision: str) -> None:
        events.bind(run_id=run_id, ruleset_revision=ruleset_revision)

    def event(self, event: dict[str, Any]) -> None:
        events.emit(event)

    def rejects(self, header: list[str], rows: Iterator[list[Any]]) -> int:
        count = 0
        text = io.StringIO()
        writer = csv.writer(text)
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
            if text.tell() > 1 << 20:
                self._flush(text)
        self._flush(text)
        return count

    def _flush(self, text: io.StringIO) -> None:
        self._rejects.write(text.getvalue().encode())
        text.seek(0)
        text.truncate()
