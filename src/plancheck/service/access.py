"""The service's access log: one structured event per request (ASGI middleware, outermost)."""

from __future__ import annotations

import asyncio
import os
import re
import time
import uuid
from typing import Any

from plancheck.errors import shown
from plancheck.service import problems
from plancheck.service.guard import with_security_headers

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


class RequestEvents:
    """ASGI middleware: one structured event per request, with request id, route, status, ruleset
    revision, the rule ids the decision found and the latency.

    No body is ever logged, so no birth date or pay figure reaches the access log. A plain ASGI
    middleware (not BaseHTTPMiddleware) so that it costs microseconds, not a task per request.
    """

    def __init__(self, app: Any, holder: Any):  # app.Holder: the current snapshot and the event logger
        self.app, self.holder = app, holder
        self.pid = os.getpid()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        request_id = given if _REQUEST_ID.match(given) else uuid.uuid4().hex
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        status, logged = 500, False

        def log_once() -> None:
            nonlocal logged
            if logged:
                return
            logged = True
            route = scope.get("route")
            snapshot = self.holder.snapshot
            fields = {"request_id": request_id, "pid": self.pid, "method": scope["method"],
                      "route": getattr(route, "path", None) or shown(scope["path"], 100), "status": status,
                      "latency_ms": round((time.perf_counter() - started) * 1000, 3),
                      "ruleset_revision": state.get("revision") or (snapshot.revision if snapshot else None)}
            if "rules" in state:
                fields["rules"] = state["rules"]
            if "error" in state:
                fields["error"] = state["error"]
            self.holder.log.info("request", **fields)

        started_response = False

        async def send_with_id(message: dict) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                started_response = True
                status = message["status"]
                message["headers"] = with_security_headers([*message.get("headers", []),
                                                            (b"x-request-id", request_id.encode())])
            elif message["type"] == "http.response.body" and not message.get("more_body"):
                log_once()  # before the last byte goes out: a client that has the answer finds the event
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            # uvicorn cancels what is still being answered once the shutdown deadline has passed (SIGTERM): the
            # client hears 503 rather than a bare 500, and the request ends here, as cancelled, not as a failure.
            state["error"] = "shutdown_deadline"
            if not started_response:
                answer = problems.problem(503, "Shutting down", "the service stopped before this request arrived "
                                          "whole; send it again", request_id=request_id)
                answer.headers["connection"] = "close"
                await answer(scope, receive, send_with_id)
        except Exception as exc:  # noqa: BLE001 - a bug answers 500 and the worker goes on
            # Only the exception's type is logged: its message might quote a figure from the request.
            state["error"] = type(exc).__name__
            if state.get("closed"):  # the connection answered 408 or 503 and closed (service/protocol.py)
                status, state["error"] = state["closed"]
            elif not started_response:
                answer = problems.problem(500, "Internal error", "the check failed; the request id is in the log",
                                          request_id=request_id)
                await answer(scope, receive, send_with_id)
        finally:
            log_once()
