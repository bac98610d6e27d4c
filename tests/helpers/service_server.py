"""A real service on a free loopback port for the service tests: uvicorn in a thread (`running`), or
`plancheck serve` in a process of its own (`Served`) where signals, workers or the log are tested."""

from __future__ import annotations

import io
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import httpx
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


class Served:
    """`plancheck serve --port 0 --watch 0 [--workers N] *args` in a subprocess, its events read from its stderr;
    ready (every worker has loaded the rules) when the constructor returns."""

    def __init__(self, tmp_path: Path, *args: str, workers: int = 1, wait: float = 30.0):
        from helpers import eventually, logged_events
        self._eventually = lambda check: eventually(check, wait)
        self._logged = logged_events
        self.log_path = tmp_path / "service.log"
        self.log = self.log_path.open("w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "plancheck", "serve", "--port", "0", "--workers", str(workers), "--watch", "0",
             *args], stdout=subprocess.DEVNULL, stderr=self.log, cwd=tmp_path,
            env={**os.environ, "PYTHONUNBUFFERED": "1"})
        try:
            listening = self._eventually(lambda: self.find("listening") or self.exited())
            self.port = listening[0]["port"]
            self.url = f"http://127.0.0.1:{self.port}"
            self.workers = (self._eventually(lambda: self.find("workers_started"))[0]["workers"] if workers > 1
                            else [self.process.pid])
            self._eventually(lambda: {e["pid"] for e in self.find("rules_loaded")} >= set(self.workers))
            self._eventually(self._listening)
        except BaseException:  # never leave a service running behind a failed start
            self.stop()
            raise

    def _listening(self) -> bool:
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=5).close()
        except ConnectionRefusedError:
            self.exited()
            return False
        return True

    def exited(self) -> None:
        assert self.process.poll() is None, self.log_path.read_text()

    def events(self) -> list[dict]:
        return self._logged(self.log_path)

    def find(self, name: str) -> list[dict]:
        return [e for e in self.events() if e["event"] == name]

    def eventually(self, check):
        return self._eventually(check)

    def spread(self, request, count: int = 64) -> list:
        """`count` requests, each on a fresh connection, from 8 threads, so that every worker takes some."""
        fresh = httpx.Limits(max_keepalive_connections=0)
        clients = [httpx.Client(base_url=self.url, timeout=30, limits=fresh) for _ in range(8)]
        try:
            with ThreadPoolExecutor(8) as pool:
                return list(pool.map(lambda i: request(clients[i % 8]), range(count)))
        finally:
            for client in clients:
                client.close()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(30)
        finally:
            self.log.close()
