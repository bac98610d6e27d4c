"""The service's HTTP connection: uvicorn's own protocol (httptools, or h11 without it) with the limits
uvicorn lacks, so that no client can hold the service with a request it never finishes.

- A request must arrive whole (request line, headers and body) within `read_timeout` seconds of
  the connection opening, or of the previous answer on a kept-alive connection. Past it the
  connection is answered 408 and closed (closed without an answer if nothing of a request came): a
  client trickling half a header (or half a body) holds it for that long at most. uvicorn's
  keep-alive timeout closes an idle connection sooner.
- The request line and headers may take MAX_HEAD bytes: a longer head is answered 431 and closed,
  and the parser never buffers more than that plus two reads from the socket. (Without httptools,
  h11's own limit of the same size answers 400 instead.)
- At most `max_connections` connections are open: one more closes the oldest connection still
  waiting for its request (idle, or sending it slowly; 503 if part of a request came), so a flood of slow clients cannot keep a
  prompt one, such as a health check, out. If every open connection has a request being answered,
  the newcomer is answered 503.

Each connection closed this way is the event `connection_closed` with its `reason`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import orjson

from plancheck.service.guard import SECURITY_HEADERS

#: Largest request head (request line and headers) in bytes; 431 above.
MAX_HEAD = 32 * 1024

_TITLES = {408: "Request Timeout", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}


def _answer(status: int, detail: str) -> bytes:
    """A complete problem+json response that closes the connection, written before any request reached the app."""
    body = orjson.dumps({"type": "about:blank", "title": _TITLES[status], "status": status, "detail": detail})
    head = [f"HTTP/1.1 {status} {_TITLES[status]}".encode(), b"content-type: application/problem+json",
            b"content-length: " + str(len(body)).encode(), b"connection: close",
            *(name + b": " + value for name, value in SECURITY_HEADERS)]
    return b"\r\n".join(head) + b"\r\n\r\n" + body


_QUIET = logging.getLogger("plancheck.service.refused")
_QUIET.addHandler(logging.NullHandler())
_QUIET.propagate = False


class _HeadTooLarge(Exception):
    """Raised from the parser's callback to stop parsing a head above MAX_HEAD."""


def _base() -> type:
    try:
        import httptools  # noqa: F401 - uvicorn's choice when it is installed (the service extra installs it)
    except ImportError:
        from uvicorn.protocols.http.h11_impl import H11Protocol
        return H11Protocol
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    return HttpToolsProtocol


class _Guard:
    """The limits, over either of uvicorn's HTTP/1.1 protocols (they share the hooks used here)."""

    read_timeout: float
    max_connections: int
    log: Any

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._timer: Any = None
        self._head_bytes, self._in_head, self._began = 0, False, False
        waiting = _waiting(self.server_state)  # type: ignore[attr-defined]
        if len(self.connections) > self.max_connections:  # type: ignore[attr-defined]
            oldest = next(iter(waiting), None)
            if oldest is None:
                self._close("too_many_connections", 503, "too many connections; try again shortly")
                return
            oldest._evict()
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)  # type: ignore[misc]

    def data_received(self, data: bytes) -> None:
        self._began = False
        super().data_received(data)  # type: ignore[misc]
        if self.transport.is_closing():  # type: ignore[attr-defined]
            return
        if self._in_head and not self._began:  # a head still incomplete after another read (httptools)
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD:
                self._close("head_too_large", 431, f"the request line and headers may take {MAX_HEAD:,} bytes")
                return
        cycle = self.cycle  # type: ignore[has-type]
        if cycle is not None and not cycle.response_complete and not cycle.more_body:
            self._disarm()  # the request has arrived whole: the app answers it

    def on_message_begin(self) -> None:
        """httptools: the first byte of a request (the read it came in is not counted; the next ones are)."""
        self._head_bytes, self._in_head, self._began = 0, True, True
        super().on_message_begin()  # type: ignore[misc]

    def on_headers_complete(self) -> None:
        """httptools: the head is measured whole before the app sees it."""
        self._in_head = False
        size = len(self.url) + sum(len(name) + len(value) + 4 for name, value in self.headers)  # type: ignore
        if size > MAX_HEAD:
            self._refused = True
            self.logger = _QUIET  # uvicorn would call it an invalid request; connection_closed says what it was
            raise _HeadTooLarge()  # the parser stops; uvicorn answers the error with send_400_response, below
        super().on_headers_complete()  # type: ignore[misc]

    def send_400_response(self, msg: str) -> None:
        if getattr(self, "_refused", False):
            self._close("head_too_large", 431, f"the request line and headers may take {MAX_HEAD:,} bytes")
            return
        super().send_400_response(msg)  # type: ignore[misc]

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        if self.transport.is_closing():  # type: ignore[attr-defined]
            return
        cycle = self.cycle  # type: ignore[has-type]
        if cycle is None or cycle.response_complete or cycle.more_body:
            self._arm()  # the next request (or the rest of this one's body) has read_timeout to arrive

    # -- the read deadline -----------------------------------------------------------------------------------

    def _arm(self) -> None:
        self._disarm()
        self._timer = self.loop.call_later(self.read_timeout, self._timed_out)  # type: ignore[attr-defined]
        _waiting(self.server_state)[self] = None  # type: ignore[attr-defined]

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        _waiting(self.server_state).pop(self, None)  # type: ignore[attr-defined]

    def _timed_out(self) -> None:
        self._timer = None
        cycle = self.cycle  # type: ignore[has-type]
        if cycle is not None and not cycle.response_complete:
            if cycle.response_started:  # the app is answering already: let it finish
                _waiting(self.server_state).pop(self, None)  # type: ignore[attr-defined]
                return
            cycle.scope.setdefault("state", {})["closed"] = (408, "read_timeout")  # for the request's event
        elif not self._in_head:  # nothing of a request has come: closed without a word, as keep-alive closes
            self._close("read_timeout")
            return
        self._close("read_timeout", 408, f"the request did not arrive whole within {self.read_timeout:g} s")

    def _evict(self) -> None:
        """Make room: closed without a word if nothing of a request has come, else answered 503."""
        cycle = self.cycle  # type: ignore[has-type]
        if cycle is not None and not cycle.response_complete and not cycle.response_started:
            cycle.scope.setdefault("state", {})["closed"] = (503, "evicted")
        elif not self._in_head:
            self._close("evicted")
            return
        self._close("evicted", 503, "too many connections: this request was the slowest to arrive")

    def _close(self, reason: str, status: int | None = None, detail: str = "") -> None:
        self._disarm()
        transport = self.transport  # type: ignore[attr-defined]
        if transport.is_closing():
            return
        if status is not None:
            transport.write(_answer(status, detail))
        transport.close()
        client = self.client  # type: ignore[attr-defined]
        self.log.warning("connection_closed", reason=reason, status=status, client=client[0] if client else None,
                         pid=os.getpid())


def _waiting(server_state: Any) -> dict:
    """The connections waiting for a request (an insertion-ordered dict used as a set), oldest first."""
    waiting = getattr(server_state, "plancheck_waiting", None)
    if waiting is None:
        waiting = server_state.plancheck_waiting = {}
    return waiting


def guarded_protocol(settings: Any) -> type:
    """uvicorn's HTTP protocol class with the settings' limits and the app's event logger."""
    from plancheck.service.holder import event_logger
    return type("GuardedHTTPProtocol", (_Guard, _base()), {
        "read_timeout": settings.read_timeout, "max_connections": settings.max_connections,
        "log": event_logger(settings.log_stream)})
