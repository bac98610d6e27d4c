"""How every run happens: outputs checked before any work and committed together, the run history, events, the
exit status. Used by the command line and, for the jobs it shares (elections, withdrawals, plan audits), the
service.

The sequence is the same for every job: the history is opened (exit 2 before anything is written if it is
damaged), the run started, its findings recorded, its counts closed into the summary; then every output is
written and staged, the run finished in the history (before any output is put in place: a history that fails
there leaves the outputs as they were), the reports written, and everything committed in one step. A run that
does not complete with 0 or 1 is removed from the history.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from plancheck.extras import require_extra
from plancheck.jobs.result import Common, JobResult
from plancheck.sinks.files import OutputLock, check_outputs, input_files, replacing, together

PLAN_SUFFIXES = (".yaml", ".yml", ".json")


class _Deferred:
    """A module imported when first used: `plancheck --help` loads neither structlog nor the engine."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(sys.modules.get(self._name) or importlib.import_module(self._name), attr)


events = _Deferred("plancheck.sinks.events")


def prepare(outputs: dict[str, Path | str | None], inputs: list, rules_dir: Path | None,
            plans_dir: Path | None = None) -> None:
    """Before any work: outputs writable and none of them an input (files, plan files, the rules tree); a str is
    a URL (locations.py)."""
    if outputs.get("--html") is not None:
        require_extra("history", "jinja2", feature="--html")
    if outputs.get("--xlsx") is not None:
        require_extra("history", "xlsxwriter", feature="--xlsx")
    urls = [i for i in inputs if isinstance(i, str)]
    files = input_files([i for i in inputs if not isinstance(i, str)]) + input_files([rules_dir]) \
        + input_files([plans_dir], PLAN_SUFFIXES)
    check_outputs(outputs, [*files, *urls])


def history(db: str | None, record: bool, command: str, plan_ids, year, inputs: list, env_opts_in: bool = True):
    """The run's recorder, or None when the run is not recorded (see README, "Run history and reports").

    A run is recorded with `--db URL`, with `--record`, or (except `election`) when PLANCHECK_DB is set.
    """
    if db is None and not record and not (env_opts_in and os.environ.get("PLANCHECK_DB")):
        return None
    feature = "--db" if db is not None else ("--record" if record else "PLANCHECK_DB")
    require_extra("history", "sqlalchemy", "alembic", "platformdirs", feature=feature)
    if (db or os.environ.get("PLANCHECK_DB") or "").startswith("postgresql"):
        require_extra("history", "psycopg", feature=feature)
    from plancheck.history.recording import HistoryRun, InputHashes, scope_of
    from plancheck.history.store import Store  # first: exit 2 naming the extra where it is not installed
    return HistoryRun(Store(db).ready(verify=True), command, scope_of(command, plan_ids, year), InputHashes(inputs))


@contextlib.contextmanager
def recording(recorder) -> Iterator[Any]:
    """Remove the run from the history if it does not complete (bad input, a failed write, a signal): a job's exit
    status is returned, never raised, so anything raised here is a run that did not happen."""
    try:
        yield recorder
    except BaseException:
        if recorder is not None:
            recorder.abort()
        raise


def events_to(stream, revision: str | None) -> None:
    """JSON-lines events to `stream`, each carrying the ruleset revision the run used (when there is one)."""
    events.configure(stream)
    if revision is not None:
        events.bind(ruleset_revision=revision)


def reports(recorder, html: Path | str | None, xlsx: Path | str | None) -> None:
    """The run's HTML report and Excel workbook, where asked for (the run is recorded)."""
    if recorder is not None and (html is not None or xlsx is not None):
        from plancheck.jobs.report import write_reports
        write_reports(recorder.store, recorder.id, html, xlsx)


def execute(common: Common, result: JobResult) -> int:
    """Record, write and commit one job's result; its exit status."""
    recorder = None
    if result.command is not None:
        recorder = history(common.db, common.recorded, result.command, result.plan_ids, result.year, result.inputs,
                           result.env_opts_in)
    summary = result.summary
    with recording(recorder), together():
        if recorder:
            recorder.start(result.revision)
        written = [_event(e, recorder) for e in result.events]
        if recorder:
            summary.update(recorder.close(covered=result.covered))
        for target, write in result.files:
            with replacing(target) as stream:
                write(stream)
        with replacing(common.out) as stream:
            if result.document is not None:
                stream.write(result.document(summary))
            else:
                events_to(stream, result.revision)
                for event in written:
                    events.emit(event)
                events.emit(summary)
        status = result.status(recorder)
        if recorder:  # recorded before any output is put in place: a history that fails here leaves them
            recorder.finish(summary | result.kept, status)
            reports(recorder, common.html, common.xlsx)
    if result.after is not None:
        result.after(summary)
    return status


def _event(item, recorder) -> dict[str, Any]:
    """A finding as its event (recorded, with its history fields, when the run is), or an event as it is."""
    if not hasattr(item, "as_event"):
        return item
    return recorder.finding(item.as_event()) if recorder else item.as_event()


def stream(common: Common, command: str, plan_ids: list[str], inputs: list, target: Path | str,
           work: Callable[[Any, Any], JobResult]) -> int:
    """A job that writes as it goes (the batch): `work(stream, recorder)` runs with `--out` open as the events'
    stream and `target` (its rejects) as `stream`, and returns its result; the rest is as `execute`, under a lock
    on every output (two nightly runs must not write the same files)."""
    recorder = history(common.db, common.recorded, command, plan_ids, None, inputs)
    # Every output is one commit, once the whole run has completed: uploads first, then renames; a failure anywhere
    # replaces none of them and leaves the run out of the history.
    with recording(recorder), OutputLock([common.out, target, common.html, common.xlsx]), together():
        with replacing(common.out) as out, replacing(target) as other:
            events.configure(out)
            result = work(other, recorder)
            if recorder:
                result.summary.update(recorder.close(covered=result.covered))
            events.emit(result.summary)
        status = result.status(recorder)
        if recorder:
            recorder.finish(result.summary, status)
            reports(recorder, common.html, common.xlsx)
    if result.after is not None:
        result.after(result.summary)
    return status


def answer(result: JobResult, **between: Any) -> dict[str, Any]:
    """A job's result as the service answers it: the findings' events, `between` (in order), then the summary with
    the ruleset revision it was decided by."""
    return {"findings": [f.as_event() for f in result.findings], **between,
            "summary": {**result.summary, "ruleset_revision": result.revision}}
