"""Recording a run: its findings streamed into the history, each classified against the previous run.

A run's **scope** is the command, the plans it covered and, where the command takes one, the
year (`yearend --year`, `audit --year`, an election's year). A finding is compared with the
last completed run of the same scope:

* for a run over **dated data** (`batch`: pay dates; `withdrawals`: request dates), year by
  year: a finding of year Y is compared with the last run of the scope whose input covered Y.
  The years are not known before the input has been read, and need not be: each finding carries
  its year, so the previous run for that year is looked up (and its fingerprints loaded) on the
  first finding of the year, and every event is written with its status as it streams. When the
  run ends, the caller says which years its input covered; for each of those, the findings of
  the previous run covering that year that this run lacks are **resolved**. A feed that moves
  on to a new year therefore resolves nothing of the old year, and a feed covering 2025 and
  2026 compares each year with the last run that covered it.
* otherwise, with the last run of the scope as a whole.

A finding whose fingerprint was in the run it is compared with is **recurring** (and keeps the
run it was first seen in); otherwise it is **new**. A finding is **acknowledged** when an
acknowledgement in force (no end date, or one not passed) names its fingerprint at its current
figures; acknowledged findings never make the exit status 1. The years a dated run covered, the
run each was compared with and what it resolved are stored (`run_years`, `resolutions`), so
reading the history later shows exactly what was counted.

Findings go to the database in chunks of `CHUNK` rows, one executemany each of plain tuples
straight to the driver, so memory holds one chunk plus the fingerprints of the previous run of
each year met, never the run's findings. (Writing on a thread, or in a process of its own, was
tried and measured: on two shared cores either took as long in all, see README "Cost".) A run that
fails or is interrupted is removed from the history.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import sqlalchemy as sa

from plancheck.documents.feed.source import Source
from plancheck.errors import InputError, Problem
from plancheck.history import store as store_module
from plancheck.history.fingerprint import FINDING_EVENTS, figures, finding_year, fingerprint
from plancheck.history.store import Store
from plancheck.history.tables import findings, resolutions, run_years, runs

#: Findings written per executemany.
CHUNK = 10_000

#: Commands whose input is dated, so that they are compared year by year (see the module docstring).
DATED_COMMANDS = frozenset({"batch", "withdrawals"})


def scope_of(command: str, plan_ids: Iterable[str], year: int | str | None = None) -> tuple[str, str]:
    """(key, label) of a run's scope: the command, its plans (sorted) and year."""
    label = f"{command} plans={','.join(sorted(set(plan_ids)))} year={year if year is not None else '-'}"
    return hashlib.sha256(label.encode()).hexdigest()[:32], label


def file_inputs(paths: Iterable[Path | Source | None]) -> list[dict[str, Any]]:
    """Each input file (a local path, or a feed at a URL) with its SHA-256 and size (read in 1 MiB blocks)."""
    result = []
    for path in paths:
        if path is None:
            continue
        source = Source.of(path)
        if source.local is not None and not source.local.is_file():
            continue
        digest, size = source.sha256()
        result.append({"file": str(source), "sha256": digest, "bytes": size})
    return result


class InputHashes:
    """`file_inputs(paths)` worked out on a thread of its own while the run reads the same files.

    Hashing a 258 MB feed takes a few tenths of a second; file reads and hashlib release the GIL,
    so it overlaps with the run. `result()` waits for it (a file that cannot be read is an input error).
    """

    def __init__(self, paths: Iterable[Path | Source | None]):
        self._paths = list(paths)
        self._result: list[dict[str, Any]] | None = None
        self._error: OSError | InputError | None = None
        self._thread = threading.Thread(target=self._run, name="plancheck-input-hashes", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._result = file_inputs(self._paths)
        except OSError as exc:
            self._error = exc
        except InputError as exc:  # a URL whose protocol cannot be read here
            self._error = exc

    def result(self) -> list[dict[str, Any]]:
        self._thread.join()
        if isinstance(self._error, InputError):
            raise self._error
        if self._error is not None:
            raise InputError(Problem(str(self._error.filename or ""), "", f"cannot read it to hash it: "
                                     f"{self._error.strerror or self._error}"))
        assert self._result is not None
        return self._result


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


class _Comparison:
    """What one year's findings (or, for a run not over dated data, all of them) are compared with."""

    __slots__ = ("previous", "earlier", "met", "new", "recurring")

    def __init__(self, previous: int | None, earlier: dict[str, tuple[int, int]] | None):
        self.previous = previous
        #: fingerprint -> (first seen, finding id) in the previous run; None when not loaded
        self.earlier = earlier
        self.met: set[str] = set()
        self.new = self.recurring = 0


#: The key of the one comparison of a run that is not over dated data.
_WHOLE = "whole run"


class HistoryRun:
    """One run being recorded. `finding(event)` for each finding, then `close(years)`, then `finish(...)`."""

    def __init__(self, store: Store, command: str, scope: tuple[str, str],
                 inputs: list[dict[str, Any]] | InputHashes, ruleset_revision: str | None = None):
        self.store = store
        self.command = command
        self.dated = command in DATED_COMMANDS
        self.scope, self.scope_label = scope
        self.inputs = inputs
        self.ruleset_revision = ruleset_revision
        self.id: int | None = None
        self._compared: dict[Any, _Comparison] = {}
        self._acks: dict[str, set[str]] = {}
        self._buffer: list[tuple] = []
        self._insert = _insert_statement(store)
        self.counts = {"new": 0, "recurring": 0, "resolved": 0, "acknowledged": 0}
        self.unacknowledged_errors = 0

    @property
    def previous(self) -> int | None:
        """The run compared with: the latest of them when the run was compared year by year."""
        runs_met = [c.previous for c in self._compared.values() if c.previous is not None]
        return max(runs_met, default=None)

    def start(self, ruleset_revision: str | None = None, run_key: str | None = None) -> HistoryRun:
        """Insert the run (not yet complete) and load the acknowledgements in force."""
        if ruleset_revision:
            self.ruleset_revision = ruleset_revision
        try:
            with self.store.engine.begin() as connection:
                self.id = connection.execute(runs.insert().values(
                    command=self.command, scope=self.scope, scope_label=self.scope_label, run_key=run_key,
                    inputs=self.inputs if isinstance(self.inputs, list) else [], ruleset_revision=self.ruleset_revision,
                    started_at=store_module.now())).inserted_primary_key[0]
            self._acks = self.store.active_acks(store_module.today())
        except sa.exc.SQLAlchemyError as exc:
            raise self.store._problem(exc) from None  # noqa: SLF001
        return self

    def _comparison(self, key: Any, load: bool = True) -> _Comparison:
        """The comparison for a year (or the whole run), looking up the previous run the first time it is met."""
        compared = self._compared.get(key)
        if compared is None or (load and compared.earlier is None):
            year = key if self.dated and key is not None else None
            try:
                previous = compared.previous if compared else self.store.previous_run(
                    self.scope, self.id, year=year, by_year=self.dated and key is not None)
                earlier = self.store.earlier_findings(previous, year) if load and previous else ({} if load else None)
            except sa.exc.SQLAlchemyError as exc:
                raise self.store._problem(exc) from None  # noqa: SLF001
            if compared is None:
                compared = self._compared[key] = _Comparison(previous, earlier)
            else:
                compared.earlier = earlier
        return compared

    def finding(self, event: dict[str, Any]) -> dict[str, Any]:
        """Classify one finding event and queue it for the database; return the event with its history fields."""
        if event.get("event") not in FINDING_EVENTS:
            return event
        fp, figs, year = fingerprint(event), figures(event), finding_year(event)
        compared = self._compared.get(year if self.dated else _WHOLE)
        if compared is None or compared.earlier is None:
            compared = self._comparison(year if self.dated else _WHOLE)
        earlier = compared.earlier.get(fp)
        compared.met.add(fp)
        if earlier is None:
            status, first = "new", self.id
            compared.new += 1
        else:
            status, first = "recurring", earlier[0]
            compared.recurring += 1
        acknowledged = figs in self._acks.get(fp, ())
        self.counts[status] += 1
        if acknowledged:
            self.counts["acknowledged"] += 1
        elif event.get("severity") == "error":
            self.unacknowledged_errors += 1
        event = {**event, "fingerprint": fp, "status": status, "first_seen": first, "acknowledged": acknowledged}
        self._buffer.append((
            self.id, fp, figs, event.get("rule", ""), event.get("severity", ""), event.get("plan_id"),
            event.get("employee_id"), year, status, first, acknowledged, orjson.dumps(event).decode(),
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

    def close(self, years: Iterable[int] | None = None) -> dict[str, Any]:
        """Every finding written; work out and store what the run resolved. The fields the summary gains.

        `years`: for a run over dated data, the years its input covered (None: the years of its
        findings); only those years resolve findings of earlier runs. Ignored for other runs.
        """
        self._flush()
        covered = sorted(set(years) if years is not None else {y for y in self._compared if y is not None}) \
            if self.dated else [_WHOLE]
        by_year = []
        try:
            with self.store.engine.begin() as connection:
                for key in covered:
                    compared = self._comparison(key, load=False)
                    resolved = self._resolve(connection, compared, key if self.dated else None)
                    self.counts["resolved"] += resolved
                    if self.dated:
                        connection.execute(run_years.insert().values(run_id=self.id, year=key,
                                                                     previous_run=compared.previous,
                                                                     resolved=resolved))
                        by_year.append({"year": key, "covered": True, "previous_run": compared.previous,
                                        "new": compared.new, "recurring": compared.recurring, "resolved": resolved})
        except sa.exc.SQLAlchemyError as exc:
            raise self.store._problem(exc) from None  # noqa: SLF001
        summary = {**self.counts, "history_run": self.id, "previous_run": self.previous}
        if self.dated:
            by_year += [{"year": key, "covered": False, "previous_run": c.previous, "new": c.new,
                         "recurring": c.recurring, "resolved": 0}
                        for key, c in self._compared.items() if key not in covered]
            summary["by_year"] = sorted(by_year, key=lambda y: (y["year"] is None, y["year"] or 0))
        return summary

    def _resolve(self, connection, compared: _Comparison, year: int | None) -> int:
        """Store the findings of the previous run (of `year`, when given) that this run lacks; how many."""
        if compared.previous is None:
            return 0
        if compared.earlier is not None:  # the previous findings are at hand: those not met
            gone = [{"run_id": self.id, "finding_id": finding_id, "fingerprint": fp}
                    for fp, (_first, finding_id) in compared.earlier.items() if fp not in compared.met]
            if gone:
                connection.execute(resolutions.insert(), gone)
            return len(gone)
        # No finding of this year in this run: every finding of the previous run's year is resolved,
        # copied by one statement (counted first: drivers do not all report an INSERT ... SELECT's rows).
        where = [findings.c.run_id == compared.previous] + ([findings.c.year == year] if year is not None else [])
        count = connection.execute(sa.select(sa.func.count()).select_from(findings).where(*where)).scalar_one()
        if count:
            connection.execute(resolutions.insert().from_select(
                ["run_id", "finding_id", "fingerprint"],
                sa.select(sa.literal(self.id), findings.c.id, findings.c.fingerprint).where(*where)))
        return count

    def finish(self, summary: dict[str, Any], exit_status: int) -> None:
        """The run completed: store its end, summary and exit status. It is now what the next run compares with."""
        self._flush()
        counts = {k: v for k, v in summary.items() if k != "event"}
        if isinstance(self.inputs, InputHashes):
            self.inputs = self.inputs.result()
        try:
            with self.store.engine.begin() as connection:
                connection.execute(runs.update().where(runs.c.id == self.id).values(
                    ended_at=store_module.now(), counts=counts, exit_status=exit_status, inputs=self.inputs,
                    ruleset_revision=self.ruleset_revision))
        except sa.exc.SQLAlchemyError as exc:
            raise self.store._problem(exc) from None  # noqa: SLF001

    def abort(self) -> None:
        """The run did not complete: remove it, its findings and what it resolved."""
        if self.id is None:
            return
        try:
            with self.store.engine.begin() as connection:
                for table in (resolutions, run_years, findings):
                    connection.execute(table.delete().where(table.c.run_id == self.id))
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
