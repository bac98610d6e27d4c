"""`plancheck serve --workers N`: N uvicorn worker processes sharing one listening socket.

The supervisor (this process) has already checked the token and the loopback rule, loaded the
rules once to refuse a broken file before binding, and bound the socket. Each worker is a fresh
interpreter (multiprocessing's spawn: nothing of durable-rules is inherited) that builds its own
app, and with it its own snapshot and engine, in the app's lifespan; all of them accept
connections on the same socket and each holds the same settings, token included.

Signals: SIGHUP is passed on to every worker, which reloads and swaps its own snapshot (a broken
file keeps that worker's old set and logs `reload_failed`, with its pid); SIGINT and SIGTERM stop
every worker gracefully (each cancels what it still answers after --shutdown-timeout; SIGKILL 5 s
later) and then the supervisor. A worker that dies is
replaced (`worker_exited`); one that cannot load the rules at start stops the service. A worker
whose supervisor is killed outright stops by itself (app.py `_watch_parent`).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import sys
import time
from typing import Any

from plancheck.errors import InputError, Problem

#: uvicorn's exit status for a worker whose app failed to start (its lifespan raised).
STARTUP_FAILURE = 3
_SPAWN = multiprocessing.get_context("spawn")


def _worker(settings: Any, sock: socket.socket) -> None:
    """One worker process: the app and its own engine, serving on the shared socket."""
    import uvicorn

    from plancheck.service.app import create_app
    from plancheck.service.process import server_logs_as_json, uvicorn_config
    server_logs_as_json(settings.log_stream, everything=True)
    server = uvicorn.Server(uvicorn_config(create_app(settings), settings))
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:  # Ctrl-C reaches the whole process group; the supervisor stops the rest
        return
    except Exception:  # noqa: BLE001 - an event (the exception's type), not multiprocessing's printed traceback
        import logging
        logging.getLogger("plancheck.service").error("worker failed", exc_info=True)
        sys.exit(1)
    if not server.started:
        sys.exit(STARTUP_FAILURE)


class Supervisor:
    """Starts the workers, passes SIGHUP on to each, replaces any that dies, stops them all on the way out."""

    def __init__(self, settings: Any, sock: socket.socket, count: int, log: Any):
        self.settings, self.sock, self.count, self.log = settings, sock, count, log
        self.workers: list[Any] = []
        self.stopping: int | None = None

    def _start(self, slot: int | None = None) -> None:
        from plancheck.service.process import sighup_blocked
        # Started with SIGHUP blocked, which the new process inherits: a SIGHUP that reaches it before
        # its app handles the signal waits instead of killing it. Placed in the list inside the block,
        # so a SIGHUP to the supervisor meanwhile (delivered when the block ends) reaches it too.
        with sighup_blocked():
            process = _SPAWN.Process(target=_worker, args=(self.settings, self.sock), name="plancheck-worker")
            process.start()
            if slot is None:
                self.workers.append(process)
            else:
                self.workers[slot] = process

    def _pass_on(self, signum: int, _frame: Any) -> None:
        for process in self.workers:
            if process.pid is not None and process.exitcode is None:
                try:
                    os.kill(process.pid, signum)
                except ProcessLookupError:  # it has just exited; the loop replaces it
                    pass

    def _stop(self, signum: int, _frame: Any) -> None:
        self.stopping = signum

    def run(self) -> None:
        """Serve until SIGINT or SIGTERM; then re-raise that signal to whoever handled it before."""
        handled = [signal.SIGINT, signal.SIGTERM] + ([signal.SIGHUP] if hasattr(signal, "SIGHUP") else [])
        previous = {s: signal.getsignal(s) for s in handled}
        signal.signal(signal.SIGINT, self._stop)
        signal.signal(signal.SIGTERM, self._stop)
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, self._pass_on)
        try:
            for _ in range(self.count):
                self._start()
            self.log.info("workers_started", workers=[p.pid for p in self.workers], pid=os.getpid())
            while self.stopping is None:
                time.sleep(0.2)
                for slot, process in enumerate(self.workers):
                    if process.exitcode is None or self.stopping is not None:
                        continue
                    self.log.warning("worker_exited", worker=process.pid, exitcode=process.exitcode, pid=os.getpid())
                    if process.exitcode == STARTUP_FAILURE:
                        raise InputError(Problem("plancheck serve", "", "a worker could not load the rules and "
                                                 "plans (see its reload_failed event); the service stops"))
                    self._start(slot)
        finally:
            self._shutdown()
            for s, handler in previous.items():
                signal.signal(s, handler)
        if self.stopping is not None:
            signal.raise_signal(self.stopping)  # the CLI's handler turns it into exit status 130 or 143

    def _shutdown(self) -> None:
        for process in self.workers:
            if process.exitcode is None:
                process.terminate()
        deadline = time.monotonic() + self.settings.shutdown_timeout + 5
        for process in self.workers:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.exitcode is None:
                process.kill()
                process.join()
