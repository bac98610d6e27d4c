"""Starting the service: check where it may listen, read the token, load once, bind, run uvicorn.

One worker runs uvicorn in this process. With `workers` > 1 this process binds the socket and
supervises that many worker processes (`service/workers.py`) which share it; each builds its own
engine in the app's lifespan. The token and the loopback rule are settled here, before anything
binds, and every worker gets the same settings.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path
from typing import Sequence

from plancheck.errors import InputError, Problem
from plancheck.service.holder import read_token
from plancheck.service.process import server_logs_as_json, sighup_ignored, uvicorn_config


def is_loopback(host: str) -> bool:
    """True for localhost and loopback addresses (127.0.0.0/8, ::1)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind(host: str, port: int) -> socket.socket:
    """A TCP socket bound to host:port (not yet listening; uvicorn listens on it in each worker)."""
    name = host.strip("[]")
    sock = socket.socket(socket.AF_INET6 if ":" in name else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((name, port))
    except OSError as exc:
        sock.close()
        raise InputError(Problem("plancheck serve", "--port", f"cannot listen on {host}:{port}: "
                                 f"{exc.strerror or exc}")) from None
    sock.set_inheritable(True)
    return sock


def serve(plans_dir: Path, rules_dir: Path, host: str, port: int, token_file: Path | None, max_body: int,
          watch: float, workers: int = 1, allowed: Sequence[str] = (), read_timeout: float = 10.0,
          max_connections: int = 512, shutdown_timeout: float = 10.0) -> None:
    """Run the service until SIGINT or SIGTERM. Refuses a non-loopback address without a token."""
    try:
        import fastapi  # noqa: F401 - the service extra, asked for before anything else is done
        import uvicorn  # noqa: F401
    except ImportError as exc:
        raise InputError(Problem("plancheck serve", "", "the service needs the 'service' extra "
                                 f"(pip install 'plancheck[service]'): {exc}")) from None
    from plancheck.service.app import Settings
    from plancheck.service.guard import allowed_hosts
    token = read_token(token_file) if token_file is not None else None
    if token is None and not is_loopback(host):
        raise InputError(Problem("plancheck serve", "--host", f"refusing to listen on {host} without --token-file: an "
                                 "open service binds to loopback only (127.0.0.1, ::1, localhost)"))
    settings = Settings(rules_dir=rules_dir, plans_dir=plans_dir, token=token, max_body=max_body,
                        watch_interval=watch or None, parent_pid=os.getpid() if workers > 1 else None,
                        token_file=token_file, allowed_hosts=allowed_hosts(host, allowed), read_timeout=read_timeout,
                        max_connections=max_connections, shutdown_timeout=shutdown_timeout)
    with sighup_ignored():  # until the app's lifespan, or the supervisor, handles it
        _serve(settings, host, port, workers)


def _serve(settings, host: str, port: int, workers: int) -> None:
    import uvicorn

    from plancheck.service.app import create_app, event_logger
    from plancheck.service.state import load_snapshot
    load_snapshot(settings.rules_dir, settings.plans_dir).engine.close()  # a broken file is exit 2 before binding
    sock = bind(host, port)
    log = event_logger(None)
    server_logs_as_json(None, everything=True)  # from here on every line on stderr is a JSON event
    try:
        log.info("listening", host=host, port=sock.getsockname()[1], workers=workers,
                 token_required=settings.token is not None, allowed_hosts=sorted(settings.allowed_hosts or ["*"]),
                 read_timeout=settings.read_timeout, max_connections=settings.max_connections,
                 shutdown_timeout=settings.shutdown_timeout, pid=os.getpid())
        if workers > 1:
            from plancheck.service.workers import Supervisor
            Supervisor(settings, sock, workers, log).run()
            return
        server = uvicorn.Server(uvicorn_config(create_app(settings), settings))
        server.run(sockets=[sock])
        if not server.started:
            raise InputError(Problem("plancheck serve", "", "the service did not start (see the events above)"))
    finally:
        sock.close()
