"""Process-wide settings of the service's processes: uvicorn's configuration, its logs as JSON lines,
and SIGHUP's handling until the app installs its reload handler. Shared by the single-process server
(run.py), the supervised workers (workers.py) and the tests' in-thread server."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import Any, Iterator, TextIO

#: uvicorn settings of every worker: no access log of its own (the app logs one event per request), no logging
#: configuration of its own (server_logs_as_json installs ours), and no WebSocket: the service has no such endpoint,
#: and an upgraded connection would leave the guarded HTTP protocol (service/protocol.py).
UVICORN = {"log_level": "warning", "access_log": False, "lifespan": "on", "server_header": False, "log_config": None,
           "ws": "none"}
#: Seconds an idle kept-alive connection stays open after its last answer.
KEEP_ALIVE = 5

#: uvicorn's own messages (by their format string) and the stable event names they are logged under; any
#: other message of uvicorn, asyncio or Python's warnings is the event `server_message`.
SERVER_EVENTS = {
    "Invalid HTTP request received.": "invalid_http_request",
    "Exception in ASGI application\n": "asgi_exception",
    "Cancel %s running task(s), timeout graceful shutdown exceeded": "shutdown_deadline_passed",
    "Unsupported upgrade request.": "unsupported_upgrade",
    "Exceeded concurrency limit.": "concurrency_limit",
}
_SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi", "asyncio", "py.warnings")


def uvicorn_config(app: Any, settings: Any) -> Any:
    """uvicorn's Config for the app: the guarded connection (service/protocol.py), keep-alive and the
    shutdown deadline from the settings, uvicorn's logs as JSON lines on the app's log stream."""
    import uvicorn

    from plancheck.service.protocol import MAX_HEAD, guarded_protocol
    server_logs_as_json(settings.log_stream)
    return uvicorn.Config(app, **UVICORN, http=guarded_protocol(settings), timeout_keep_alive=KEEP_ALIVE,
                          timeout_graceful_shutdown=settings.shutdown_timeout, h11_max_incomplete_event_size=MAX_HEAD)


def server_logs_as_json(stream: TextIO | None, everything: bool = False) -> None:
    """uvicorn's loggers (and asyncio's, and Python's warnings) written as JSON lines through structlog's
    stdlib integration, in the shape of the app's events; `everything` adds the root logger (a whole
    service process: nothing it logs is plain text)."""
    import orjson
    import structlog

    def server_event(_logger: Any, _method: str, event_dict: dict) -> dict:
        record: logging.LogRecord = event_dict["_record"]
        message = event_dict.pop("event")
        event_dict.pop("exc_info", None)  # no traceback: a request's figures could be in its text
        fields = {"event": SERVER_EVENTS.get(str(record.msg), "server_message"), "logger": record.name,
                  "message": message[:300].rstrip(), "pid": os.getpid()}
        if record.exc_info and record.exc_info[0] is not None:
            fields["exception"] = record.exc_info[0].__name__
        return {**fields, **event_dict}

    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[structlog.stdlib.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True),
                           server_event],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                    structlog.processors.JSONRenderer(serializer=lambda o, **_: orjson.dumps(o).decode())])
    handler = _JsonLines(stream)
    handler.setFormatter(formatter)
    for name in (*_SERVER_LOGGERS, *([""] if everything else [])):
        logger = logging.getLogger(name or None)
        for old in [h for h in logger.handlers if isinstance(h, _JsonLines) or name.startswith("uvicorn")]:
            logger.removeHandler(old)
        if name in ("", "uvicorn", "asyncio", "py.warnings"):
            logger.addHandler(handler)
        logger.propagate = name not in ("uvicorn", "asyncio", "py.warnings")
    logging.getLogger("uvicorn").setLevel(logging.WARNING)
    if everything:
        logging.captureWarnings(True)
        _exceptions_as_events()


def _exceptions_as_events() -> None:
    """An exception no code catches (in a thread, or in a destructor) is an event too, not a printed traceback."""
    import sys
    import threading
    log = logging.getLogger("plancheck.service")

    def unraisable(hook: Any) -> None:
        log.error("unraisable exception", exc_info=(hook.exc_type, hook.exc_value, hook.exc_traceback))

    def in_thread(hook: Any) -> None:
        if hook.exc_type is not SystemExit:
            log.error("exception in a thread", exc_info=(hook.exc_type, hook.exc_value, hook.exc_traceback))

    sys.unraisablehook = unraisable
    threading.excepthook = in_thread


class _JsonLines(logging.StreamHandler):
    """One JSON object per line, each written in one call (so lines of several workers never interleave)."""

    def __init__(self, stream: TextIO | None):
        super().__init__(stream)
        self._given = stream

    def emit(self, record: logging.LogRecord) -> None:
        if self._given is None:
            import sys
            self.stream = sys.stderr  # the stderr of the moment (the tests replace it)
        super().emit(record)


@contextlib.contextmanager
def sighup_ignored() -> Iterator[None]:
    """SIGHUP ignored in this process until a handler takes over (the app's lifespan or the supervisor).

    A SIGHUP asks for a reload, and a service that has not loaded yet reads the files afresh
    anyway; without this the default action would end it. (A disposition is process-wide, so
    this holds for every thread, numpy's included.)
    """
    if not hasattr(signal, "SIGHUP"):
        yield
        return
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGHUP, previous)


@contextlib.contextmanager
def sighup_blocked() -> Iterator[None]:
    """SIGHUP held back (not lost) in this thread, and in any process started meanwhile.

    A process inherits the blocked signal mask across fork and exec (and its threads inherit it
    from the thread that starts them), so a worker started inside this block cannot be killed by
    a SIGHUP before its app handles it: the app unblocks SIGHUP once its handler is in place
    (app.py), and a SIGHUP sent meanwhile is delivered then.
    """
    if not hasattr(signal, "SIGHUP"):
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)
