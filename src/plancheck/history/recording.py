"""Recording a run: its findings streamed into the history, each classified against the previous run.

A run's **scope** is the command, the plans it covered and, where the command takes one, the
year (`yearend --year`, `audit --year`, an election's year). A finding is compared with the
last completed run of the same scope:

* for a run over **dated data** (`batch`: pay dates; `withdrawals`: request dates), plan by plan
  and year by year: a finding of plan P and year Y is compared with the last run of the scope
  whose input covered P in Y (had a row, or a request, of that plan in that year). The plans and
  years are not known before the input has been read, and need not be: each finding carries
  them, so the previous run for its plan and year is looked up (the scope's coverage is read once;
  a run's fingerprints of a year are loaded once, split by plan) on the first finding of it, and
  every event is written with its status as it streams. When the run ends, the caller says which
  (plan, year) pairs its input covered; for each, the findings of the previous run covering it
  that this run lacks are **resolved**. A feed that moves on to a new year therefore resolves
  nothing of the old year, a feed covering 2025 and 2026 compares each year with the last run that
  covered it, and one plan's feed resolves nothing of another plan whose feed comes separately.
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

from plancheck.documents.feed.source import Source
from plancheck.errors import InputError, Problem
from plancheck.history import store as store_module
from plancheck.history.fingerprint import FINDING_EVENTS, figures, finding_year, fingerprint
from plancheck.history.store import Store
from plancheck.history.tables import EVERY_PLAN, findings, resolutions, run_plan_years, run_years, runs

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
    """What one plan's findings of one year (or, for a run not over dated data, all of them) are compared with."""

    __slots__ = ("previous", "earlier", "met", "new", "recurring")

    def __init__(self, previous: int | None, earlier: dict[str, tuple[int, int]] | None):
        self.previous = previous
        #: fingerprint -> (first seen, finding id) in the previous run; None when not loaded
        self.earlier = earlier
        self.met: set[str] = set()
        self.new = self.recurring = 0


#: The key of the one comparison of a run that is not over dated data.
_WHOLE = "whole run"


def _add_year(years: dict[int | None, dict[str, Any]], year: int | None, compared: _Comparison, resolved: int,
              covered: bool) -> None:
    """Add one plan's comparison into its year's line of `by_year` (the latest run compared with, the counts summed)."""
    row = years.setdefault(year, {"year": year, "covered": covered, "previous_run": None, "new": 0, "recurring": 0,
                                  "resolved": 0})
    if compared.previous is not None:
        row["previous_run"] = max(row["previous_run"] or 0, compared.previous)
    row["new"] += compared.new
    row["recurring"] += compared.recurring
    row["resolved"] += resolved


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
        #: (plan, year) -> the last completed run of the scope that covered it; read on the first dated finding
        self._covering: dict[tuple[str, int], int] | None = None
        #: (run, year) -> plan -> that run's findings of the year (store.earlier_findings_by_plan), each read once
        self._earlier: dict[tuple[int, int], dict[str, dict[str, tuple[int, int]]]] = {}
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
        with self.store.begin() as connection:
            self.id = connection.execute(runs.insert().values(
                command=self.command, scope=self.scope, scope_label=self.scope_label, run_key=run_key,
                inputs=self.inputs if isinstance(self.inputs, list) else [], ruleset_revision=self.ruleset_revision,
                started_at=store_module.now())).inserted_primary_key[0]
        self._acks = self.store.active_acks(store_module.today())
        return self

    def _comparison(self, key: Any, load: bool = True) -> _Comparison:
        """The comparison for a (plan, year) (or the whole run), looking up the previous run the first time it is met."""
        compared = self._compared.get(key)
        if compared is None or (load and compared.earlier is None):
            previous = compared.previous if compared else self._previous(key)
            earlier = self._earlier_of(previous, key) if load and previous else ({} if load else None)
            if compared is None:
                compared = self._compared[key] = _Comparison(previous, earlier)
            else:
                compared.earlier = earlier
        return compared

    def _previous(self, key: Any) -> int | None:
        """The run a key's findings are compared with: for (plan, year), the last that covered that plan's year
        (or the year for every plan); for the whole run, or a dated finding without a year, the scope's last."""
        if not self.dated or key[1] is None:
            return self.store.previous_run(self.scope, self.id)
        if self._covering is None:
            self._covering = self.store.last_covering(self.scope, self.id)
        plan, year = key
        found = [self._covering.get((plan, year)), self._covering.get((EVERY_PLAN, year))]
        return max((run for run in found if run is not None), default=None)

    def _earlier_of(self, previous: int, key: Any) -> dict[str, tuple[int, int]]:
        """The previous run's findings a key's findings are compared with: of its plan and year, or all of them."""
        if not self.dated or key[1] is None:
            return self.store.earlier_findings(previous)
        plan, year = key
        by_plan = self._earlier.get((previous, year))
        if by_plan is None:
            by_plan = self._earlier[(previous, year)] = self.store.earlier_findings_by_plan(previous, year)
        return by_plan.get(plan, {})

    def finding(self, event: dict[str, Any]) -> dict[str, Any]:
        """Classify one finding event and queue it for the database; return the event with its history fields."""
        if event.get("event") not in FINDING_EVENTS:
            return event
        fp, figs, year = fingerprint(event), figures(event), finding_year(event)
        key = (event.get("plan_id") or "", year) if self.dated else _WHOLE
        compared = self._compared.get(key)
        if compared is None or compared.earlier is None:
            compared = self._comparison(key)
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
        with self.store.begin() as connection:
            connection.exec_driver_sql(self._insert, self._buffer)
        self._buffer.clear()

    def close(self, covered: Iterable[tuple[str, int]] | None = None) -> dict[str, Any]:
        """Every finding written; work out and store what the run resolved. The fields the summary gains.

        `covered`: for a run over dated data, the (plan, year) pairs its input covered (None: those
        of its findings); only those resolve findings of earlier runs. Ignored for other runs. The
        summary's `by_year` adds the plans up, year by year.
        """
        self._flush()
        if self.dated:
            keys = sorted({(plan or "", year) for plan, year in covered} if covered is not None
                          else {key for key in self._compared if key[1] is not None})
        else:
            keys = [_WHOLE]
        years: dict[int | None, dict[str, Any]] = {}
        with self.store.begin() as connection:
            for key in keys:
                compared = self._comparison(key)
                resolved = self._resolve(connection, compared)
                self.counts["resolved"] += resolved
                if self.dated:
                    connection.execute(run_plan_years.insert().values(
                        run_id=self.id, plan_id=key[0], year=key[1], previous_run=compared.previous,
                        resolved=resolved))
                    _add_year(years, key[1], compared, resolved, covered=True)
            if self.dated:
                for year, row in years.items():
                    connection.execute(run_years.insert().values(run_id=self.id, year=year,
                                                                 previous_run=row["previous_run"],
                                                                 resolved=row["resolved"]))
        summary = {**self.counts, "history_run": self.id, "previous_run": self.previous}
        if self.dated:
            covered_keys = set(keys)
            for key, compared in self._compared.items():
                if key not in covered_keys:
                    _add_year(years, key[1], compared, 0, covered=key[1] in years and years[key[1]]["covered"])
            summary["by_year"] = sorted(years.values(), key=lambda y: (y["year"] is None, y["year"] or 0))
        return summary

    def _resolve(self, connection, compared: _Comparison) -> int:
        """Store the findings of the previous run (of the same plan and year) that this run lacks; how many."""
        if compared.previous is None or not compared.earlier:
            return 0
        gone = [{"run_id": self.id, "finding_id": finding_id, "fingerprint": fp}
                for fp, (_first, finding_id) in compared.earlier.items() if fp not in compared.met]
        if gone:
            connection.execute(resolutions.insert(), gone)
        return len(gone)

    def finish(self, summary: dict[str, Any], exit_status: int) -> None:
        """The run completed: store its end, summary and exit status. It is now what the next run compares with."""
        self._flush()
        counts = {k: v for k, v in summary.items() if k != "event"}
        if isinstance(self.inputs, InputHashes):
            self.inputs = self.inputs.result()
        with self.store.begin() as connection:
            connection.execute(runs.update().where(runs.c.id == self.id).values(
                ended_at=store_module.now(), counts=counts, exit_status=exit_status, inputs=self.inputs,
                ruleset_revision=self.ruleset_revision))

    def abort(self) -> None:
        """The run did not complete: remove it, its findings and what it resolved."""
        if self.id is None:
            return
        try:
            with self.store.begin() as connection:
                for table in (resolutions, run_plan_years, run_years, findings):
                    connection.execute(table.delete().where(table.c.run_id == self.id))
                connection.execute(runs.delete().where(runs.c.id == self.id))
        except InputError:
            pass  # the database failed (what failed the run): the run stays, incomplete (ended_at null), never compared


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

    def finding_json(self, event: bytes) -> None:
        self.inner.event(self.run.finding(orjson.loads(event)))

    def rejects(self, header: list[str], rows: Iterator[list[Any]]) -> int:
        return self.inner.rejects(header, rows)
