"""Recording a run: its findings streamed into the history, each classified against the previous run.

A run's **scope** is the command and the plans and year it covered; each run is compared with the
last completed run of the same scope. A finding whose fingerprint was in that run is
**recurring** (and keeps the run it was first seen in); otherwise it is **new**. Fingerprints of
the previous run that this run does not have are **resolved**. A finding is **acknowledged** when
an acknowledgement in force (no end date, or one not passed) names its fingerprint at its current
figures; acknowledged findings never make the exit status 1.

Findings go to the database in chunks of `CHUNK` rows (one executemany each), so memory holds one
chunk plus the previous run's fingerprints, never the run's findings. A run that fails or is
interrupted is removed from the history.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from plancheck.history import store as store_module
from plancheck.history.fingerprint import FINDING_EVENTS, figures, fingerprint
from plancheck.history.store import Store
from plancheck.history.tables import findings, runs

#: Findings written per executemany.
CHUNK = 10_000


def scope_of(command: str, plan_ids: Iterable[str], year: int | str | None = None) -> tuple[str, str]:
    """(key, label) of a run's scope: the command, its plans (sorted) and year."""
    label = f"{command} plans={','.join(sorted(set(plan_ids)))} year={year if year is not None else '-'}"
    return hashlib.sha256(label.encode()).hexdigest()[:32], label


def file_inputs(paths: Iterable[Path | None]) -> list[dict[str, Any]]:
    """Each input file with its SHA-256 and size (read in 1 MiB blocks)."""
    result = []
    for path in paths:
        if path is None or not Path(path).is_file():
            continue
        digest, size = hashlib.sha256(), 0
        with open(path, "rb") as handle:
            while block := handle.read(1 << 20):
                digest.update(block)
                size += len(block)
        result.append({"file": str(path), "sha256": digest.hexdigest(), "bytes": size})
    return result


#: The columns of `findings` a run writes, in the order of the rows `HistoryRun` buffers.
_COLUMNS = ("run_id", "fingerprint", "figures", "rule", "severity", "plan_id", "employee_id", "year", "status",
            "first_seen", "acknowledged", "event")


def _insert_statement(store: Store) -> str:
    """The INSERT for one finding, in the driver's own parameter style, for executemany of plain tuples.

    SQLAlchemy's per-row parameter processing costs more than SQLite's insert itself, so the chunks
    go straight to the driver (`exec_driver_sql`); the columns need no conversion (text, integers,
    booleans).
    """
    marker = "?" if store.engine.dialect.paramstyle == "qmark" else "%s"
    return (f"INSERT INTO findings ({', '.join(_COLUMNS)}) "
            f"VALUES ({', '.join(marker for _ in _COLUMNS)})")


class HistoryRun:
    """One run being recorded. `finding(event)` for each finding, then `close()`, then `finish(...)`."""

    def __init__(self, store: Store, command: str, scope: tuple[str, str], inputs: list[dict[str, Any]],
                 ruleset_revision: str | None = None):
        self.store = store
        self.command = command
        self.scope, self.scope_label = scope
        self.inputs = inputs
        self.ruleset_revision = ruleset_revision
        self.id: int | None = None
        self.previous: int | None = None
        self._first_seen: dict[str, int] = {}
        self._unseen: set[str] = set()
        self._acks: dict[str, set[str]] = {}
        self._buffer: list[tuple] = []
        self._insert = _insert_statement(store)
        self.counts = {"new": 0, "recurring": 0, "resolved": 0, "acknowledged": 0}
        self.unacknowledged_errors = 0

    def start(self, ruleset_revision: str | None = None, run_key: str | None = None) -> HistoryRun:
        """Insert the run (not yet complete) and load what classification needs."""
        if ruleset_revision:
            self.ruleset_revision = ruleset_revision
        try:
            with self.store.engine.begin() as connection:
                self.id = connection.execute(runs.insert().values(
                    command=self.command, scope=self.scope, scope_label=self.scope_label, run_key=run_key,
                    inputs=self.inputs, ruleset_revision=self.ruleset_revision,
                    started_at=store_module.now())).inserted_primary_key[0]
            self.previous = self.store.previous_run(self.scope, self.id)
            self._first_seen = self.store.first_seen(self.previous) if self.previous else {}
            self._unseen = set(self._first_seen)  # the previous run's fingerprints not met yet: resolved at the end
            self._acks = self.store.active_acks(store_module.today())
        except sa.exc.SQLAlchemyError as exc:
            raise self.store._problem(exc) from None  # noqa: SLF001
        return self

    def finding(self, event: dict[str, Any]) -> dict[str, Any]:
        """Classify one finding event and queue it for the database; return the event with its history fields."""
        if event.get("event") not in FINDING_EVENTS:
            return event
        fp, figs = fingerprint(event), figures(event)
        first = self._first_seen.get(fp)
        status = "new" if first is None else "recurring"
        self._unseen.discard(fp)
        acknowledged = figs in self._acks.get(fp, ())
        self.counts[status] += 1
        if acknowledged:
            self.counts["acknowledged"] += 1
        elif event.get("severity") == "error":
            self.unacknowledged_errors += 1
        event = {**event, "fingerprint": fp, "status": status, "first_seen": first or self.id,
                 "acknowledged": acknowledged}
        year = event.get("year")
        self._buffer.append((
            self.id, fp, figs, event.get("rule", ""), event.get("severity", ""), event.get("plan_id"),
            event.get("employee_id"), year if isinstance(year, int) else None, status, first or self.id,
            acknowledged, orjson.dumps(event).decode(),
        ))
        if len(self._buffer) >= CHUNK:
            self._flush()
        return event

    def _flush(self) -> None:
        if not self._buffer:
            return
        try:
            with self.store.engine.begin() as connection:
                connection.exec_driver_sql(self._insert, self._buffer)
        except sa.exc.SQLAlchemyError as exc:
            raise self.store._problem(exc) from None  # noqa: SLF001
        self._buffer.clear()

    def close(self) -> dict[str, int]:
        """Every finding written; count the resolved ones. The counts the summary gains."""
        self._flush()
        self.counts["resolved"] = len(self._unseen)
        return {**self.counts, "history_run": self.id, "previous_run": self.previous}

    def finish(self, summary: dict[str, Any], exit_status: int) -> None:
        """The run completed: store its end, summary and exit status. It is now what the next run compares with."""
        self._flush()
        counts = {k: v for k, v in summary.items() if k != "event"}
        with self.store.engine.begin() as connection:
            connection.execute(runs.update().where(runs.c.id == self.id).values(
                ended_at=store_module.now(), counts=counts, exit_status=exit_status,
                ruleset_revision=self.ruleset_revision))

    def abort(self) -> None:
        """The run did not complete: remove it and its findings."""
        if self.id is None:
            return
        try:
            with self.store.engine.begin() as connection:
                connection.execute(findings.delete().where(findings.c.run_id == self.id))
                connection.execute(runs.delete().where(runs.c.id == self.id))
        except sa.exc.SQLAlchemyError:
            pass  # the run stays, incomplete (ended_at null), and is never compared with


class RecordingBatchSink:
    """A `BatchSink` that hands everything to another sink and records the findings on the way."""

    def __init__(self, inner, run: HistoryRun):
        self.inner = inner
        self.run = run

    def begin(self, run_id: str, ruleset_revision: str) -> None:
        self.run.start(ruleset_revision, run_key=run_id)
        self.inner.begin(run_id, ruleset_revision)

    def event(self, event: dict[str, Any]) -> None:
        self.inner.event(self.run.finding(event))

    def rejects(self, header: list[str], rows: Iterator[list[Any]]) -> int:
        return self.inner.rejects(header, rows)
