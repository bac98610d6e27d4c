"""A batch's results as files: findings as JSON lines through the events sink, rejected rows as CSV.

The batch check streams to a `BatchSink` (checks/batch/run.py); this is the one the command line
uses. The rejects CSV goes to a stream the caller replaces into place once the run completes
(sinks.files.replacing).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from plancheck.sinks import events
from plancheck.sinks.rejects import write_rejects


class BatchFiles:
    """Events to the configured event stream (with run_id and ruleset_revision bound), rejects to `rejects`."""

    def __init__(self, rejects: BinaryIO):
        self._rejects = rejects

    def begin(self, run_id: str, ruleset_revision: str) -> None:
        events.bind(run_id=run_id, ruleset_revision=ruleset_revision)

    def event(self, event: dict[str, Any]) -> None:
        events.emit(event)

    def finding_json(self, event: bytes) -> None:
        events.emit_json(event)

    def rejects(self, header: list[str], rows: Iterator[list[Any]]) -> int:
        return write_rejects(self._rejects, header, rows)
