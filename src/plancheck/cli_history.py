"""Commands over the run history: `runs` (list, `show`, `diff`), `ack`, `report`, `db upgrade`.

They read and write the database `--db` names (else PLANCHECK_DB, else the default file under the
user's data directory). Output is text (default) or JSON lines (`--format jsonl`).
"""

from __future__ import annotations

import datetime as dt
import json
from enum import Enum
from typing import Annotated, Any, Optional

import typer

from plancheck.errors import EXIT_INPUT, InputError
from plancheck.jobs.report import write_reports  # noqa: F401 - where the reports were written from before jobs/
from plancheck.locations import location
from plancheck.sinks.files import stdout


class ListFormat(str, Enum):
    """How the history commands print."""

    text = "text"
    jsonl = "jsonl"


FormatOption = Annotated[ListFormat, typer.Option("--format", help="text or jsonl")]

#: `--db` on every command that records or reads the history.
DbOption = Annotated[Optional[str], typer.Option(
    "--db", help="Record the run in this history database: an SQLite file or URL (postgresql://...)")]

runs_app = typer.Typer(help="Recorded runs: list them, show one, compare two.", no_args_is_help=False)
db_app = typer.Typer(help="The history database.", no_args_is_help=True)


def _write(text: str) -> None:
    stdout().write(text.encode())


def _jsonl(records) -> None:
    for record in records:
        _write(json.dumps(record, default=_default, separators=(",", ":")) + "\n")


def _default(value: Any) -> str:
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    raise TypeError(type(value).__name__)


def _fail(exc: InputError) -> None:
    import sys
    for problem in exc.problems:
        sys.stderr.write(f"error: {problem}\n")
    raise typer.Exit(EXIT_INPUT)


def _when(value) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value else "-"


@runs_app.callback(invoke_without_command=True)
def runs(ctx: typer.Context, db: DbOption = None, limit: Annotated[int, typer.Option("--limit", min=1)] = 30,
         output_format: FormatOption = ListFormat.text) -> None:
    """List recorded runs, newest first."""
    if ctx.invoked_subcommand is not None:
        return
    from plancheck.jobs import runs as jobs
    try:
        records = jobs.runs(db, limit)
    except InputError as exc:
        _fail(exc)
    if output_format is ListFormat.jsonl:
        _jsonl(records)
        return
    lines = [f"{'run':>5}  {'command':<11} {'started (UTC)':<19}  {'exit':>4} {'findings':>8} {'new':>6} "
             f"{'recur':>6} {'resolved':>8} {'acked':>6}  scope"]
    for r in records:
        lines.append(f"{r['run']:>5}  {r['command']:<11} {_when(r['started_at']):<19}  {r['exit_status']:>4} "
                     f"{_n(r['findings']):>8} {_n(r['new']):>6} {_n(r['recurring']):>6} {_n(r['resolved']):>8} "
                     f"{_n(r['acknowledged']):>6}  {_scope_text(r)}")
    _write("\n".join(lines) + "\n")


def _scope_text(record: dict[str, Any]) -> str:
    """The scope, with the years a run over dated data covered."""
    years = [str(y["year"]) for y in record["by_year"] if y.get("covered")]
    return record["scope"] + (f" covering {','.join(years)}" if years else "")


def _n(value) -> str:
    return "-" if value is None else f"{value:,}"


def _finding_line(record: dict[str, Any]) -> str:
    event = record["event"]
    who = " ".join(str(x) for x in (record["plan_id"], record["employee_id"], record["year"]) if x is not None)
    mark = " (acknowledged)" if record["acknowledged"] else ""
    figures = f" excess {event['excess']}" if event.get("excess") is not None else ""
    return (f"  {record['status']:<9} {record['fingerprint'][:12]}  {record['severity']:<7} {record['rule']}  "
            f"{who}{figures}  first seen in run {record['first_seen']}{mark}")


@runs_app.command("show")
def runs_show(run: Annotated[int, typer.Argument(help="Run number")], db: DbOption = None,
              output_format: FormatOption = ListFormat.text) -> None:
    """One run: its inputs and counts, each finding with its status, and what it resolved."""
    from plancheck.jobs import runs as jobs
    try:
        head, found, resolved = jobs.show(db, run)
    except InputError as exc:
        _fail(exc)
    if output_format is ListFormat.jsonl:
        _jsonl([head])
        _jsonl(f["event"] for f in found)
        _jsonl(jobs.resolved_event(run, r) for r in resolved)
        return
    lines = [f"Run {run}: {head['command']}, {_scope_text(head)}",
             f"  started {_when(head['started_at'])}, ended {_when(head['ended_at'])}, exit status {head['exit_status']}",
             f"  ruleset revision {head['ruleset_revision']}"]
    lines += [f"  input {i['file']} sha256 {i['sha256']}" for i in head["inputs"]]
    lines.append(f"  findings {_n(head['findings'])}: new {_n(head['new'])}, recurring {_n(head['recurring'])}, "
                 f"resolved {_n(head['resolved'])}, acknowledged {_n(head['acknowledged'])}")
    lines += [f"  year {y['year']}: " + (f"compared with run {y['previous_run']}" if y["previous_run"] else "first run")
              + ("" if y.get("covered", True) else " (not covered by the input: nothing resolved)")
              + f", new {y['new']}, recurring {y['recurring']}, resolved {y['resolved']}" for y in head["by_year"]]
    lines += [_finding_line(f) for f in found]
    lines += [f"  resolved  {r['fingerprint'][:12]}  {r['severity']:<7} {r['rule']}  "
              f"{' '.join(str(x) for x in (r['plan_id'], r['employee_id'], r['year']) if x is not None)}"
              f"  (in run {r['previous_run']}, not in this one)" for r in resolved]
    _write("\n".join(lines) + "\n")


@runs_app.command("diff")
def runs_diff(first: Annotated[int, typer.Argument(help="Earlier run")],
              second: Annotated[int, typer.Argument(help="Later run")], db: DbOption = None,
              output_format: FormatOption = ListFormat.text) -> None:
    """What changed from one run to another: findings added, removed, and whose figures changed."""
    from plancheck.jobs import runs as jobs
    try:
        changes, before, unchanged = jobs.diff(db, first, second)
    except InputError as exc:
        _fail(exc)
    if output_format is ListFormat.jsonl:
        _jsonl(jobs.change_event(change, f, before) for change, f in changes)
        _jsonl([jobs.diff_event(first, second, changes, unchanged)])
        return
    lines = [f"Runs {first} -> {second}: {sum(c == 'added' for c, _ in changes)} added, "
             f"{sum(c == 'removed' for c, _ in changes)} removed, {sum(c == 'changed' for c, _ in changes)} changed, "
             f"{unchanged} unchanged"]
    for change, f in changes:
        lines.append(f"  {change:<8} {f['fingerprint'][:12]}  {f['rule']}  "
                     f"{' '.join(str(x) for x in (f['plan_id'], f['employee_id'], f['year']) if x is not None)}")
    _write("\n".join(lines) + "\n")


def ack(fingerprint: Annotated[str, typer.Argument(help="The finding's fingerprint (or its first 8+ characters)")],
        reason: Annotated[str, typer.Option("--reason", help="Why the finding is accepted")],
        until: Annotated[Optional[dt.datetime], typer.Option(
            "--until", formats=["%Y-%m-%d"], help="Last day the acknowledgement holds (YYYY-MM-DD)")] = None,
        db: DbOption = None) -> None:
    """Acknowledge a finding: it stays in the history but no longer makes the exit status 1,
    until the acknowledgement expires or the finding's figures change."""
    from plancheck.jobs.runs import acknowledge
    try:
        acknowledged = acknowledge(db, fingerprint, reason, until.date() if until else None)
    except InputError as exc:
        _fail(exc)
    _jsonl([acknowledged])


def report(run: Annotated[int, typer.Argument(help="Run number (see `plancheck runs`)")],
           html: Annotated[Optional[str], typer.Option(
               "--html", parser=location, metavar="PATH|URL", help="Self-contained HTML report, a path or a URL")] = None,
           xlsx: Annotated[Optional[str], typer.Option(
               "--xlsx", parser=location, metavar="PATH|URL",
               help="Excel workbook (a summary sheet, a sheet per rule), a path or a URL")] = None,
           db: DbOption = None) -> None:
    """Write the report of a recorded run: HTML for reading and forwarding, Excel for auditors."""
    from plancheck.jobs.report import report as write_report
    from plancheck.jobs.runs import store
    try:
        write_report(lambda: store(db), run, html, xlsx)
    except InputError as exc:
        _fail(exc)


@db_app.command("upgrade")
def db_upgrade(db: DbOption = None) -> None:
    """Create the history database, or migrate one made by an older plancheck to this version's schema."""
    from plancheck.jobs.runs import upgrade
    try:
        before, after = upgrade(db)
    except InputError as exc:
        _fail(exc)
    _write(f"history database at schema revision {after}" + (f" (was {before})" if before != after else "") + "\n")
