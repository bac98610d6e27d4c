"""Structured output: findings and summaries as JSON lines through structlog.

Event and field names are an interface, documented in README.md. Keys keep a stable order
(`event` first), money is an exact dollar string, and nothing time-dependent is written on a
finding, so the same input gives byte-identical findings.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import orjson
import structlog


def _event_first(_logger: Any, _method: str, event_dict: dict) -> dict:
    event = event_dict.pop("event")
    return {"event": event, **event_dict}


def _dumps(obj: Any, **_kw: Any) -> bytes:
    return orjson.dumps(obj)


def configure(stream: BinaryIO) -> None:
    """Send every event to `stream` as one JSON object per line."""
    structlog.configure(
        processors=[_event_first, structlog.processors.JSONRenderer(serializer=_dumps)],
        logger_factory=structlog.BytesLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )


def logger() -> Any:
    return structlog.get_logger("plancheck")


def emit(event: dict[str, Any]) -> None:
    """Write one event dict (it must carry an `event` key)."""
    fields = dict(event)
    name = fields.pop("event")
    logger().info(name, **fields)
