"""Structured output: findings and summaries as JSON lines through structlog.

Event and field names are an interface, documented in README.md. Keys keep a stable order
(`event` first), money is an exact dollar string, and nothing time-dependent is written on a
finding, so the same input gives byte-identical findings.
"""

from __future__ import annotations

from typing import Any, BinaryIO

import orjson
import structlog

#: Fields every event of this run carries (ruleset_revision, run_id), bound once by `bind`.
_BOUND: dict[str, Any] = {}
#: The logger `configure` made, reused by every `emit` (a lazy proxy costs 3-4 us an event to resolve).
_LOGGER: Any = None
#: The stream `configure` gave, for events that arrive already serialized (`emit_json`).
_STREAM: BinaryIO | None = None


def _event_first(_logger: Any, _method: str, event_dict: dict) -> dict:
    event = event_dict.pop("event")
    return {"event": event, **event_dict}


def _bound_last(_logger: Any, _method: str, event_dict: dict) -> dict:
    """Append the run's bound fields, in the order they were bound, after the event's own."""
    for key, value in _BOUND.items():
        event_dict.setdefault(key, value)
    return event_dict


def _dumps(obj: Any, **_kw: Any) -> bytes:
    return orjson.dumps(obj)


def configure(stream: BinaryIO) -> None:
    """Send every event to `stream` as one JSON object per line; nothing is bound yet."""
    global _LOGGER, _STREAM
    _BOUND.clear()
    _STREAM = stream
    structlog.configure(
        processors=[_event_first, _bound_last, structlog.processors.JSONRenderer(serializer=_dumps)],
        logger_factory=structlog.BytesLoggerFactory(stream),
        cache_logger_on_first_use=False,
    )
    _LOGGER = structlog.get_logger("plancheck").bind()


def bind(**fields: Any) -> None:
    """Fields every later event carries at its end (a run's ruleset_revision, run_id), bound once per run."""
    _BOUND.update(fields)


def logger() -> Any:
    """The events' logger: the one `configure` made, else structlog's own as configured now."""
    return _LOGGER if _LOGGER is not None else structlog.get_logger("plancheck")


def emit(event: dict[str, Any]) -> None:
    """Write one event dict (it must carry an `event` key)."""
    fields = dict(event)
    name = fields.pop("event")
    logger().info(name, **fields)


def emit_json(event: bytes) -> None:
    """Write one event serialized by orjson (`event` its first key, none of the bound keys), byte for byte as
    `emit` would: the run's bound fields are appended after its own. For the batch's findings, which the
    workers serialize: re-parsing 100,000 of them to write them again cost the merge most of its time."""
    if _STREAM is None:
        emit(orjson.loads(event))
        return
    if _BOUND:
        event = event[:-1] + b"," + orjson.dumps(_BOUND)[1:]
    _STREAM.write(event + b"\n")
