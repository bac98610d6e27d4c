"""A real uvicorn server on a free loopback port, in a thread, for the service tests."""

from __future__ import annotations

import io
import socket
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import uvicorn

from plancheck.service.app import Settings, create_app
from plancheck.service.process import uvicorn_config


class LogCapture(io.StringIO):
    """The service's structured events, one JSON object per line, readable while it runs."""

    def events(self) -> list[dict]:
        import json
        return [json.loads(line) for line in self.getvalue().splitlines() if line.strip()]


@contextmanager
def running(rules_dir: Path, plans_dir: Path, **settings) -> Iterator[tuple[str, LogCapture]]:
    """(base URL, log) of a service running until the block ends."""
    log = LogCapture()
    app = create_app(Settings(rules_dir=rules_dir, plans_dir=plans_dir, log_stream=log, **settings))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn_config(app, app.state.holder.settings))  # the service's own limits and logs
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the service did not start:\n{log.getvalue()}")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}", log
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()
