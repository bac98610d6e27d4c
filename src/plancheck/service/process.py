"""Process-wide settings of the service's processes: uvicorn's configuration and SIGHUP's handling
until the app installs its reload handler. Shared by the single-process server (run.py) and the
supervised workers (workers.py)."""

from __future__ import annotations

import contextlib
import signal
from typing import Iterator

#: uvicorn settings of every worker: no access log of its own (the app logs one event per request).
UVICORN = {"log_level": "warning", "access_log": False, "lifespan": "on", "server_header": False}


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
