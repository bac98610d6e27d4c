"""How the command line stops: SIGINT and SIGTERM raised as `Stopped` in the main thread, and a quiet exit after
the reader of stdout went away (`plancheck ... | head`)."""

from __future__ import annotations

import os
import signal
import sys


class Stopped(BaseException):
    """SIGINT or SIGTERM, raised in the main thread so that every `finally` runs (workers, temporary files)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def on_signal(signum: int, _frame) -> None:
    # A second signal must not interrupt the cleanup the first one started.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stopped(signum)


def quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so that Python's exit flush stays silent."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
