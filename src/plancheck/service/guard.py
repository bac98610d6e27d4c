"""What every answer of the service carries, and which Host names it answers for.

- Security headers on every response (the app's, its errors, and the connection's own 408/431/503):
  no MIME sniffing, never framed, no referrer, not cacheable, and a Content-Security-Policy that
  allows nothing unless the response says otherwise (the page sets its own, service/app.py).
- The Host check (DNS rebinding): a page on another site whose name an attacker points at this
  machine sends its own name in Host; a request whose Host is not an allowed name is answered 400
  before it reaches an endpoint. The health endpoints answer any Host (probes often send an IP).
"""

from __future__ import annotations

import ipaddress
from typing import Any, Iterable

from plancheck.errors import InputError, Problem

#: Sent with every response (a response's own value of one of these wins).
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
)
#: The page's policy: its own inline script and style, requests to this service only, never framed.
PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; "
               "img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'")
#: Paths answered whatever the Host (they say only whether the service is up and loaded).
ANY_HOST_PATHS = frozenset({"/healthz", "/readyz"})
_LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
#: The names of a service on loopback.
LOOPBACK_HOSTS = frozenset(_LOOPBACK_NAMES)
_WILDCARDS = ("", "0.0.0.0", "::")


def with_security_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """The response's headers plus each security header it does not set itself."""
    given = list(headers)
    names = {name.lower() for name, _ in given}
    return given + [(name, value) for name, value in SECURITY_HEADERS if name not in names]


def host_name(value: str) -> str:
    """The name part of a Host header or of an --allowed-host value: no port, no brackets, lower case."""
    value = value.strip().lower()
    if value.startswith("["):
        return value[1:].partition("]")[0]
    if value.count(":") == 1:
        value = value.partition(":")[0]
    return value.rstrip(".")


def allowed_hosts(bind_host: str, given: Iterable[str]) -> frozenset[str] | None:
    """The Host names the service answers for; None for any (`--allowed-host '*'`).

    Without --allowed-host: the address it listens on, and when that is loopback also localhost,
    127.0.0.1 and ::1. Listening on every interface (0.0.0.0, ::) needs the names said explicitly.
    """
    names = [host_name(h) for h in given]
    if "*" in names:
        return None
    if names:
        return frozenset(names)
    bind = host_name(bind_host)
    if bind in _WILDCARDS:
        raise InputError(Problem("plancheck serve", "--allowed-host", f"listening on every interface ({bind_host}) "
                                 "needs the names clients reach the service by: --allowed-host NAME (repeatable), "
                                 "or --allowed-host '*' to answer any Host"))
    try:
        loopback = bind == "localhost" or ipaddress.ip_address(bind).is_loopback
    except ValueError:
        loopback = False
    return frozenset({bind, *(_LOOPBACK_NAMES if loopback else ())})


class HostCheck:
    """ASGI middleware: 400 for a request whose Host header is not an allowed name."""

    def __init__(self, app: Any, allowed: frozenset[str] | None):
        self.app, self.allowed = app, allowed

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and self.allowed is not None and scope["path"] not in ANY_HOST_PATHS:
            host = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"host"), "")
            if host_name(host) not in self.allowed:
                from plancheck.service import problems
                scope.setdefault("state", {})["error"] = "host_not_allowed"
                answer = problems.problem(400, "Host not allowed", "the Host header names no address this "
                                          "service answers for (plancheck serve --allowed-host)", "host-not-allowed")
                await answer(scope, receive, send)
                return
        await self.app(scope, receive, send)
