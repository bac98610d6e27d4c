"""The service's state: how one instance runs (`Settings`), the current snapshot of rules, limits and plans
(`Holder`, replaced whole on SIGHUP or a file change), the token it asks for, and its JSON-lines event log."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson
import structlog

from plancheck.errors import InputError, Problem, shown
from plancheck.service.guard import LOOPBACK_HOSTS
from plancheck.service.state import Snapshot, fingerprint, load_snapshot

#: Request bodies larger than this (bytes) answer 413 unless the settings say otherwise.
DEFAULT_MAX_BODY = 256 * 1024


def read_token(path: Path) -> bytes:
    """The bearer token of a token file (surrounding whitespace removed); at least 16 characters."""
    try:
        token = path.read_bytes().strip()
    except OSError as exc:
        raise InputError(Problem(str(path), "--token-file", f"cannot read: {exc.strerror or exc}")) from None
    if len(token) < 16 or any(b < 0x21 or b > 0x7e for b in token):
        raise InputError(Problem(str(path), "--token-file", "expected one token of at least 16 printable "
                                 "characters without spaces"))
    return token


@dataclass(frozen=True)
class Settings:
    """How one service instance runs."""

    rules_dir: Path
    plans_dir: Path
    #: The bearer token every endpoint but health requires; None leaves the API open (loopback only).
    token: bytes | None = None
    max_body: int = DEFAULT_MAX_BODY
    #: Seconds between looks for changed rule or plan files; None or 0 turns the watcher off.
    watch_interval: float | None = 2.0
    #: Where the structured events go (JSON lines); default stderr.
    log_stream: TextIO | None = None
    #: A worker of `serve --workers N`: the supervisor's pid. The worker stops if that process goes away.
    parent_pid: int | None = None
    #: The file the token was read from: SIGHUP reads it again (token rotation).
    token_file: Path | None = None
    #: The Host names answered (service/guard.py); None answers any.
    allowed_hosts: frozenset[str] | None = LOOPBACK_HOSTS
    #: Seconds a request has to arrive whole (service/protocol.py).
    read_timeout: float = 10.0
    #: Open connections at most (service/protocol.py).
    max_connections: int = 512
    #: Seconds the requests being answered get to finish after SIGTERM or SIGINT, before they are cancelled.
    shutdown_timeout: float = 10.0


class Holder:
    """The current snapshot; replaced whole by `reload`, read once per request."""

    def __init__(self, settings: Settings, log: Any):
        self.settings = settings
        self.log = log
        self.snapshot: Snapshot | None = None
        #: The bearer token requests must present (replaced by reload_token).
        self.token = settings.token

    def reload_token(self, why: str) -> bool:
        """Read the token file again; a file that cannot be read or holds no valid token keeps the old token."""
        if self.settings.token_file is None:
            return False
        try:
            token = read_token(self.settings.token_file)
        except InputError as exc:
            self.log.warning("token_reload_failed", trigger=why, problems=[str(p) for p in exc.problems],
                             pid=os.getpid())
            return False
        changed, self.token = token != self.token, token
        self.log.info("token_loaded", trigger=why, changed=changed, pid=os.getpid())
        return True

    def on_sighup(self) -> None:
        """SIGHUP: the token first (a rotation takes effect at once), then rules and plans."""
        self.reload_token("SIGHUP")
        self.reload("SIGHUP")

    def reload(self, why: str) -> bool:
        """Build a new snapshot and swap it in; on any problem keep the old one and log why."""
        started = time.perf_counter()
        try:
            fresh = load_snapshot(self.settings.rules_dir, self.settings.plans_dir)
        except InputError as exc:
            self.log.warning("reload_failed", trigger=why, kept_revision=self.snapshot.revision if self.snapshot else None,
                             problems=[str(p) for p in exc.problems[:20]], pid=os.getpid())
            return False
        except Exception as exc:  # noqa: BLE001 - a reload must never take the worker down
            self.log.error("reload_failed", trigger=why, kept_revision=self.snapshot.revision if self.snapshot else None,
                           problems=[f"{type(exc).__name__}: {shown(str(exc), 200)}"], pid=os.getpid())
            return False
        old, self.snapshot = self.snapshot, fresh
        if old is not None:
            old.engine.close()  # safe: checks run on this thread, so none is using it now
        self.log.info("rules_loaded", trigger=why, ruleset_revision=fresh.revision,
                      plans_revision=fresh.plans_revision, plans=len(fresh.plans),
                      seconds=round(time.perf_counter() - started, 3), pid=os.getpid())
        return True


def event_logger(stream: TextIO | None) -> Any:
    """A structlog logger writing one JSON object per line, `event` first, with a UTC timestamp.

    Each event is one write of one line, so the lines of several worker processes sharing stderr
    never interleave.
    """
    def event_first(_logger: Any, _method: str, event_dict: dict) -> dict:
        return {"event": event_dict.pop("event"), **event_dict}

    return structlog.wrap_logger(
        structlog.WriteLogger(stream or sys.stderr),
        processors=[structlog.processors.add_log_level, structlog.processors.TimeStamper(fmt="iso", utc=True),
                    event_first, structlog.processors.JSONRenderer(serializer=lambda o, **_: orjson.dumps(o).decode())],
    )


def handle_sighup(loop: asyncio.AbstractEventLoop, holder: Holder) -> bool:
    """Reload on SIGHUP, then let SIGHUP through: until this handler is in place `serve` ignores SIGHUP and
    a worker starts with it blocked (process.sighup_ignored, process.sighup_blocked), so one sent while the worker
    started is delivered now rather than ending it."""
    if not hasattr(signal, "SIGHUP"):
        return False
    try:
        loop.add_signal_handler(signal.SIGHUP, holder.on_sighup)
    except (ValueError, RuntimeError, NotImplementedError):  # not the main thread (the tests' in-thread server)
        return False
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
    return True


async def watch_parent(parent_pid: int, log: Any) -> None:
    """A worker whose supervisor has gone (killed with SIGKILL) stops, rather than serve on unsupervised."""
    while True:
        await asyncio.sleep(1.0)
        if os.getppid() != parent_pid:
            log.warning("supervisor_gone", parent_pid=parent_pid, pid=os.getpid())
            os.kill(os.getpid(), signal.SIGTERM)  # uvicorn's own graceful shutdown
            return


async def watch_files(holder: Holder) -> None:
    """Reload when a file under the rules or plans directory changes (mtime, size, added or removed)."""
    settings = holder.settings
    seen = holder.snapshot.fingerprint if holder.snapshot else None
    while True:
        await asyncio.sleep(settings.watch_interval)
        now = fingerprint(settings.rules_dir, settings.plans_dir)
        if now != seen:
            seen = now
            if holder.snapshot is None or now != holder.snapshot.fingerprint:
                holder.reload("file change")
