"""The plancheck command line. Reads inputs, calls the checks, writes events; holds no rules.

Exit status: 0 no error finding, 1 error findings, 2 bad input, usage or an output that cannot
be written, 130 interrupted (SIGINT), 143 terminated (SIGTERM). Outputs go through sinks/files.py:
checked before any work, and replaced only when the command completes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import os
import signal
import sys
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from plancheck import cli_history
from plancheck.cli_history import DbOption, write_reports
from plancheck.errors import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, InputError, Problem
from plancheck.extras import missing_extra, require_extra
from plancheck.locations import location
from plancheck.sinks.files import OutputClosed, OutputLock, check_outputs, input_files, replacing, stdout, together

if TYPE_CHECKING:
    from plancheck.documents.feed.source import Source


class _Deferred:
    """A module imported when first used, so that --help, --version and a shell's completion request (a whole
    start of plancheck at each TAB) load neither the rule engine nor structlog nor the rule models."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attr: str):
        return getattr(sys.modules.get(self._name) or importlib.import_module(self._name), attr)


events = _Deferred("plancheck.sinks.events")
report = _Deferred("plancheck.sinks.text")
_engine = _Deferred("plancheck.engine")
_findings = _Deferred("plancheck.findings")


app = typer.Typer(no_args_is_help=True, pretty_exceptions_enable=False,
                  context_settings={"help_option_names": ["-h", "--help"]})  # inherited by every command


def _print_version(value: bool) -> None:
    if value:
        from plancheck import __version__
        typer.echo(f"plancheck {__version__}")
        raise typer.Exit(EXIT_OK)


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", "-V", is_eager=True, callback=_print_version,
                                          help="Print plancheck's version and exit")] = False,
) -> None:
    """401(k) compliance checks: elections, payroll feeds, withdrawals and plan documents.

    Rules and plans: --rules-dir, --plans; else $PLANCHECK_HOME/rules, /plans; else the bundled ones (init copies them).
    """


RulesOption = Annotated[Optional[Path], typer.Option(
    "--rules-dir", help="Rules directory (default: $PLANCHECK_HOME/rules, else the bundled rules/)")]
OutOption = Annotated[Optional[Path], typer.Option("--out", help="Write JSON-lines events here instead of stdout")]
# A report's destination: a path, or a URL on object storage (locations.py: a str), uploaded whole when written.
HtmlOption = Annotated[Optional[str], typer.Option(
    "--html", parser=location, metavar="PATH|URL",
    help="Write the run's report as one self-contained HTML file, a path or a URL (records the run)")]
XlsxOption = Annotated[Optional[str], typer.Option(
    "--xlsx", parser=location, metavar="PATH|URL",
    help="Write the run's findings as an Excel workbook, a path or a URL (records the run)")]
RecordOption = Annotated[bool, typer.Option(
    "--record", help="Record the run in the history database (--db, else PLANCHECK_DB, else history.sqlite "
    "under the user's data directory)")]

class OutputFormat(str, Enum):
    """How `audit` writes its results."""

    jsonl = "jsonl"
    text = "text"
    sarif = "sarif"


class ReportFormat(str, Enum):
    """How `yearend` writes its results."""

    jsonl = "jsonl"
    text = "text"


class SchemaKind(str, Enum):
    """The document kinds `schema` describes."""

    plan = "plan"
    election = "election"
    withdrawal = "withdrawal"
    rule = "rule"
    limit = "limit"


PLAN_SUFFIXES = (".yaml", ".yml", ".json")


def _fail(exc: InputError) -> None:
    for problem in exc.problems:
        sys.stderr.write(f"error: {problem}\n")
    raise typer.Exit(EXIT_INPUT)


def _rules(rules_dir: Path | None):
    from plancheck.checks.ruleset import load_rules
    from plancheck.rulebook.resources import default_rules_dir
    return load_rules((rules_dir or default_rules_dir()).resolve())


def _rules_dir(rules_dir: Path | None) -> Path:
    from plancheck.rulebook.resources import default_rules_dir
    return (rules_dir or default_rules_dir()).resolve()


def _plans_dir(plans: Path | None) -> Path:
    from plancheck.rulebook.resources import default_plans_dir
    return (plans or default_plans_dir()).resolve()


def _check_outputs(outputs: dict[str, Path | str | None], inputs: list[Path | str | None], rules_dir: Path | None,
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


def _events_to(stream, ruleset_revision: str) -> None:
    """JSON-lines events to `stream`, each carrying the ruleset revision the run used."""
    events.configure(stream)
    events.bind(ruleset_revision=ruleset_revision)


def _emit_findings(findings, history=None) -> None:
    for finding in findings:
        event = finding.as_event()
        events.emit(history.finding(event) if history else event)


def _history(db: str | None, record: bool, command: str, plan_ids, year, inputs: list[Path | None],
             env_opts_in: bool = True):
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


def _reports(history, html: Path | str | None, xlsx: Path | str | None) -> None:
    if history is not None and (html is not None or xlsx is not None):
        write_reports(history.store, history.id, html, xlsx)


def _plan_ids(plans_dir: Path) -> list[str]:
    from plancheck.documents.plan import load_plans
    return sorted(load_plans(plans_dir))


def _status(history, findings) -> int:
    """1 for an error finding (with history: an error finding no acknowledgement covers), else 0."""
    if history is not None:
        return EXIT_FINDINGS if history.unacknowledged_errors else EXIT_OK
    return EXIT_FINDINGS if _findings.has_errors(findings) else EXIT_OK


@contextlib.contextmanager
def _recording(history):
    """Remove the run from the history if the command does not complete."""
    try:
        yield history
    except BaseException as exc:
        if history is not None and not (isinstance(exc, typer.Exit) and exc.exit_code in (EXIT_OK, EXIT_FINDINGS)):
            history.abort()
        raise


@app.command()
def election(
    file: Annotated[Path, typer.Argument(help="Election file (YAML or JSON)")],
    plan: Annotated[Path, typer.Option("--plan", help="Plan document (YAML)")],
    rules: RulesOption = None,
    out: OutOption = None,
    db: DbOption = None,
    record: RecordOption = False,
) -> None:
    """Check one employee's contribution election for the rest of the year."""
    from plancheck.checks.election import check_election
    from plancheck.documents.election import load_election
    from plancheck.documents.plan import load_plan
    _check_outputs({"--out": out}, [file, plan], _rules_dir(rules))
    try:
        rulebook, limits = _rules(rules)
        plan_doc = load_plan(plan)
        election_doc = load_election(file)
        engine = _engine.Engine(rulebook)
        result = check_election(election_doc, plan_doc, limits, rulebook, engine, str(file))
        history = _history(db, record, "election", [plan_doc.plan_id], result.summary.get("year"), [file, plan],
                           env_opts_in=False)
    except InputError as exc:
        _fail(exc)
    with _recording(history):
        if history:
            history.start(rulebook.revision)
        summary = {"event": "election_checked", **result.summary, "findings": len(result.findings)}
        with replacing(out) as stream:
            _events_to(stream, rulebook.revision)
            _emit_findings(result.findings, history)
            if history:
                summary.update(history.close())
            events.emit(summary)
            status = _status(history, result.findings)
            if history:  # recorded before --out is replaced: a history that fails here leaves it as it was
                history.finish(summary, status)
        report.election_summary(result.findings, result.summary)
    raise typer.Exit(status)


@app.command()
def batch(
    feed: Annotated[str, typer.Argument(help="Payroll feed: CSV with a header row, or Parquet; a path, or a URL on "
                                        "object storage (s3://bucket/feed.csv; README, 'Feeds on object storage')")],
    plans: Annotated[Optional[Path], typer.Option("--plans", help="Directory of plan documents")] = None,
    rules: RulesOption = None,
    out: Annotated[Optional[str], typer.Option(
        "--out", help="Write JSON-lines events here instead of stdout: a path, or a URL on object storage")] = None,
    rejects: Annotated[Optional[str], typer.Option(
        "--rejects", help="Where rejected rows go, a path or a URL (default: FEED's name + .rejects.csv in the current "
        "directory)")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Worker processes (default: all cores)")] = None,
    cluster: Annotated[Optional[str], typer.Option(
        "--cluster", help="Run on a Dask cluster: its scheduler (tcp://scheduler:8786), or local:N for a LocalCluster "
        "of N worker processes (needs the 'dask' extra)")] = None,
    work_dir: Annotated[Optional[str], typer.Option(
        "--work-dir", help="With --cluster: where the run's spill and partition files go, a path every worker sees "
        "or an fsspec URL (default: a temporary directory, fine for local:N)")] = None,
    db: DbOption = None,
    record: RecordOption = False,
    html: HtmlOption = None,
    xlsx: XlsxOption = None,
) -> None:
    """Check a payroll feed: one finding per employee, year and rule, at the first pay date it broke."""
    from plancheck.checks.batch.run import run_batch
    from plancheck.documents.feed.source import Source
    from plancheck.sinks.batch import BatchFiles
    source = Source.of(feed)
    out_target = location(out) if out is not None else None
    rejects_path = location(rejects) if rejects is not None else Path(f"{source.stem}.rejects.csv")
    plans_dir, rules_dir = _plans_dir(plans), _rules_dir(rules)
    if cluster is None and work_dir is not None:
        raise typer.BadParameter("goes with --cluster", param_hint="--work-dir")
    if cluster is not None and workers is not None:
        raise typer.BadParameter("a cluster runs on its own workers: give --workers or --cluster", param_hint="--workers")
    _check_outputs({"--out": out_target, "--rejects": rejects_path, "--html": html, "--xlsx": xlsx},
                   [source.location], rules_dir, plans_dir)
    executor = _cluster(cluster, work_dir, source) if cluster is not None else None
    history = _history(db, record or bool(html or xlsx), "batch", _plan_ids(plans_dir), None, [source])
    progress = _Progress() if sys.stderr.isatty() else (_ProgressLines() if cluster is not None else None)
    # Every output (--out, --rejects, --html, --xlsx) is one commit, once the whole run has completed: uploads
    # first, then renames; a failure anywhere replaces none of them and leaves the run out of the history.
    with (_recording(history), OutputLock([out_target, rejects_path, html, xlsx]), together()):
        with replacing(out_target) as stream, replacing(rejects_path) as rejects_stream:
            events.configure(stream)
            sink = BatchFiles(rejects_stream)
            if history:
                from plancheck.history.recording import RecordingBatchSink
                sink = RecordingBatchSink(sink, history)
            with progress or contextlib.nullcontext():
                outcome = run_batch(
                    source, plans_dir, rules_dir, workers or os.cpu_count() or 1, sink,
                    str(rejects_path),
                    on_read=progress.read if progress else None,
                    on_start=progress.start_checking if progress else None,
                    on_partition=progress.checked if progress else None,
                    executor=executor)
            if history:
                outcome.summary.update(history.close(covered=outcome.covered))
            events.emit(outcome.summary)
        status = _status(history, []) if history else (EXIT_FINDINGS if outcome.errors else EXIT_OK)
        missing = outcome.summary["years_without_limits"]
        if missing:  # the outputs are written; still, a night whose rows could not be checked is no pass
            status = EXIT_INPUT
        if history:
            history.finish(outcome.summary, status)
            _reports(history, html, xlsx)
    report.batch_summary(outcome.summary)
    if missing:
        rows = sum(missing.values())
        sys.stderr.write(f"error: {source}: {rows:,} row(s) of {', '.join(missing)} not checked: "
                         f"{_limits_hint(rules_dir, [int(y) for y in missing])}; they are in {rejects_path}\n")
    raise typer.Exit(status)


def _limits_hint(rules_dir: Path, years: list[int]) -> str:
    """What to add for years rules/limits does not cover, in the words every command uses."""
    from plancheck.documents.limits import load_limits
    limits = load_limits(rules_dir / "limits")
    return "; ".join(limits.missing_year(year) for year in years)


def _cluster(address: str, work_dir: str | None, feed: Source):
    """The batch's executor on the Dask cluster at `address` (exit 2 naming the extra where it is not installed)."""
    require_extra("dask", "distributed", feature="--cluster")
    from plancheck.execution.cluster import cluster_executor, stderr_line

    def connected(info: dict) -> None:
        sys.stderr.write(stderr_line(info))

    return cluster_executor(address, work_dir, shared=(feed.for_workers(),), on_connect=connected)


class _ProgressLines:
    """Progress as plain lines on stderr (a cluster run whose stderr is a log, not a terminal): at most one
    every PERIOD seconds, and one when each phase ends."""

    PERIOD = 5.0

    def __init__(self) -> None:
        import time

        self._clock = time.monotonic
        self._last = self._clock()
        self._read = self._checked = self._partitions = self._done = 0

    def _say(self, text: str, force: bool = False) -> None:
        if force or self._clock() - self._last >= self.PERIOD:
            sys.stderr.write(f"progress: {text}\n")
            self._last = self._clock()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def read(self, rows: int) -> None:
        self._read += rows
        self._say(f"read {self._read:,} rows")

    def start_checking(self, partitions: int) -> None:
        self._partitions = partitions
        self._say(f"read {self._read:,} rows; checking {partitions} partition(s)", force=True)

    def checked(self, rows: int) -> None:
        self._checked += rows
        self._done += 1
        self._say(f"checked {self._done}/{self._partitions} partition(s), {self._checked:,} rows",
                  force=self._done == self._partitions)


class _Progress:
    """Rows read and rows checked, with rows per second, on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self._progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                  TextColumn("{task.fields[rate]} rows/s"), TimeElapsedColumn(),
                                  console=Console(stderr=True), transient=True)
        self._read = self._progress.add_task("reading feed", total=None, rate="-")
        self._check = None

    def __enter__(self):
        self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        return self._progress.__exit__(*exc)

    def _rate(self, task_id) -> str:
        task = self._progress.tasks[task_id]
        return f"{int(task.completed / task.elapsed):,}" if task.elapsed else "-"

    def read(self, rows: int) -> None:
        self._progress.update(self._read, advance=rows, rate=self._rate(self._read))

    def start_checking(self, partitions: int) -> None:
        total = self._progress.tasks[self._read].completed
        self._progress.update(self._read, total=total)
        self._check = self._progress.add_task("checking rows", total=total, rate="-")

    def checked(self, rows: int) -> None:
        self._progress.update(self._check, advance=rows, rate=self._rate(self._check))


@app.command()
def withdrawals(
    file: Annotated[Path, typer.Argument(help="Requests: CSV, JSON or YAML")],
    plans: Annotated[Optional[Path], typer.Option("--plans", help="Directory of plan documents")] = None,
    rules: RulesOption = None,
    out: OutOption = None,
    db: DbOption = None,
    record: RecordOption = False,
) -> None:
    """Check in-service withdrawal, hardship, in-plan Roth conversion and Roth IRA rollover requests."""

    from plancheck.checks.withdrawals import check_requests
    from plancheck.documents.plan import load_plans
    plans_dir = _plans_dir(plans)
    _check_outputs({"--out": out}, [file], _rules_dir(rules), plans_dir)
    try:
        rulebook, _limits = _rules(rules)
        plan_docs = {pid: plan for pid, (plan, _) in load_plans(plans_dir).items()}
        outcome = check_requests(file, plan_docs, rulebook, _engine.Engine(rulebook), _limits)
        history = _history(db, record, "withdrawals", plan_docs, None, [file])
    except InputError as exc:
        _fail(exc)
    summary = outcome.summary(file)
    with _recording(history):
        if history:
            history.start(rulebook.revision)
        with replacing(out) as stream:
            _events_to(stream, rulebook.revision)
            _emit_findings(outcome.findings, history)
            for reject in outcome.rejected:
                events.emit({"event": "request_rejected", "file": str(file), "line": reject.line, "where": reject.where,
                             "reason": reject.reason})
            if history:
                summary.update(history.close(covered=outcome.covered))
            events.emit(summary)
            status = _status(history, outcome.findings)
            if history:  # recorded before --out is replaced: a history that fails here leaves it as it was
                history.finish(summary, status)
        report.withdrawals_summary(outcome, summary)
    raise typer.Exit(status)


@app.command()
def audit(
    plans: Annotated[Optional[list[Path]], typer.Argument(help="Plan files or folders (default: plans/)")] = None,
    check_rules: Annotated[bool, typer.Option("--rules", help="Audit the rule files instead of plans")] = False,
    output_format: Annotated[OutputFormat, typer.Option("--format", help="jsonl, text or sarif")] = OutputFormat.jsonl,
    year: Annotated[Optional[int], typer.Option("--year", min=1990, max=2100, help="Plan year for documents that "
                                                "do not name one (default: the last year under rules/limits)")] = None,
    rules: RulesOption = None,
    out: OutOption = None,
    db: DbOption = None,
    record: RecordOption = False,
    html: HtmlOption = None,
    xlsx: XlsxOption = None,
) -> None:
    """Audit plan documents (or, with --rules, the rule files) and report configuration findings."""
    from plancheck.rulebook.resources import default_plans_dir
    rules_dir = _rules_dir(rules)
    if check_rules:
        _audit_rules(rules_dir, output_format, out)
        return
    from plancheck.checks.plan_audit import audit_plans, plan_paths
    try:
        paths = plan_paths(plans or [], default_plans_dir())
        _check_outputs({"--out": out, "--html": html, "--xlsx": xlsx}, list(paths), rules_dir)
        rulebook, limits = _rules(rules)
        audits = audit_plans(paths, limits, rulebook, _engine.Engine(rulebook), year)
        history = _history(db, record or bool(html or xlsx), "audit", [a.plan_id or str(a.path) for a in audits], year, list(paths))
    except InputError as exc:
        _fail(exc)
    findings = [f for a in audits for f in a.findings]
    with _recording(history), together():  # --out, --html and --xlsx: one commit
        if history:
            history.start(rulebook.revision)
        status = _audit_outputs(audits, findings, rulebook, limits, output_format, out, history)
        _reports(history, html, xlsx)
    raise typer.Exit(status)


def _audit_outputs(audits, findings, rulebook, limits, output_format: OutputFormat, out: Path | None, history) -> int:
    """Write the plan audit in its format (recording each finding on the way); the exit status."""
    recorded = {id(f): history.finding(f.as_event()) for f in findings} if history else {}
    summary = {"event": "audit_summary", "plans": len(audits), "findings": len(findings),
               "findings_by_severity": _findings.severity_counts(f.severity for f in findings)}
    if history:
        summary.update(history.close())
    with replacing(out) as stream:
        if output_format is OutputFormat.sarif:
            from plancheck.sinks.sarif import sarif_log
            rules_used = [r for r in rulebook.rules["plan"]]
            stream.write(json.dumps(sarif_log(findings, rules_used, Path.cwd()), indent=2).encode() + b"\n")
        elif output_format is OutputFormat.text:
            stream.write(report.audit_text(audits).encode())
        else:
            _events_to(stream, rulebook.revision)
            for plan_audit in audits:
                for finding in plan_audit.findings:
                    events.emit(recorded.get(id(finding)) or finding.as_event())
                events.emit({"event": "plan_audited", "plan_id": plan_audit.plan_id, "file": str(plan_audit.path),
                             "mega_backdoor": plan_audit.verdicts.get("mega_backdoor"), "findings": len(plan_audit.findings)})
            events.emit(summary)
    status = _status(history, findings)
    missing = sorted({a.year for a in audits if a.year is not None and a.year not in limits.years})
    if missing:  # reported as plan-year-without-limits findings above; the year's checks could not run
        status = EXIT_INPUT
    if history:
        history.finish(summary, status)
    for year in missing:
        plans_of_year = ", ".join(str(a.path) for a in audits if a.year == year)
        sys.stderr.write(f"error: {plans_of_year}: plan year {year} not checked: {limits.missing_year(year)}\n")
    return status


def _audit_rules(rules_dir: Path, output_format: OutputFormat, out: Path | None) -> None:
    """Every rule compiles, carries a citation and examples, and its examples pass.

    A rules directory that does not exist or holds no rule is exit status 2, so that a CI gate
    pointed at the wrong path fails instead of passing on zero rules.
    """
    from plancheck.checks.rule_audit import audit_rules
    if not rules_dir.is_dir():
        _fail(InputError(Problem(str(rules_dir), "", "rules directory not found")))
    _check_outputs({"--out": out}, [], rules_dir)
    audits, problems = audit_rules(rules_dir)
    if not audits and not problems:
        _fail(InputError(Problem(str(rules_dir), "", "no rules found (expected checks/<subject>/<id>.yaml files)")))
    failed = [a for a in audits if a.failed]
    with replacing(out) as stream:
        if output_format is OutputFormat.jsonl:
            events.configure(stream)
            _emit_rules_audit(audits, problems, failed)
        else:
            from plancheck.sinks.sarif import rules_audit_log
            stream.write(json.dumps(rules_audit_log(problems, failed), indent=2).encode() + b"\n"
                         if output_format is OutputFormat.sarif else report.rules_audit_text(audits, problems, failed).encode())
    raise typer.Exit(EXIT_FINDINGS if problems or failed else EXIT_OK)


def _emit_rules_audit(audits: list, problems: list, failed: list) -> None:
    for p in problems:
        events.emit({"event": "rule_file_error", "file": p.source, "line": p.line, "field": p.field or None,
                     "problem": p.expected})
    for a in audits:
        events.emit({"event": "rule_audited", "rule": a.rule, "file": a.file, "severity": a.severity,
                     "citation": a.citation, "examples": a.examples, "failed_examples": a.failed,
                     "status": "failed" if a.failed else "ok"})
    events.emit({"event": "rules_audit_summary", "rules": len(audits), "failing": len(failed),
                 "load_problems": len(problems)})


@app.command()
def yearend(
    census: Annotated[str, typer.Argument(help="Census: CSV with a header row, or Parquet; one row per employee per "
                                          "plan; a path or a URL")],
    plans: Annotated[Optional[Path], typer.Option("--plans", help="Directory of plan documents")] = None,
    year: Annotated[Optional[int], typer.Option("--year", help="Plan year tested (default: the census's own: its "
                                                "plan_year column, else the year of its latest hire or termination "
                                                "date)")] = None,
    feed: Annotated[Optional[str], typer.Option("--feed", help="Take the contribution totals from this payroll "
                                                "feed (CSV or Parquet; a path or a URL) instead of the census")] = None,
    preview: Annotated[Optional[dt.datetime], typer.Option(
        "--preview", formats=["%Y-%m-%d"], help="Mid-year preview: the census (or feed) is year to date as of this "
        "date (YYYY-MM-DD); give each HCE the most they can still defer and contribute after tax")] = None,
    output_format: Annotated[ReportFormat, typer.Option("--format", help="jsonl or text")] = ReportFormat.jsonl,
    rejects: Annotated[Optional[Path], typer.Option(
        "--rejects", help="Where rejected census rows go (default: CENSUS's name + .rejects.csv in the current "
        "directory); rejected feed rows go to FEED's name + .rejects.csv")] = None,
    rules: RulesOption = None,
    out: OutOption = None,
    db: DbOption = None,
    record: RecordOption = False,
    html: HtmlOption = None,
    xlsx: XlsxOption = None,
) -> None:
    """Year-end tests: HCEs, ADP and ACP with their corrections and deadlines, top-heavy; or a mid-year preview."""
    import time

    from plancheck.checks.yearend import check_plans, check_yearend, run_summary
    from plancheck.documents.census import read_census, reject_rows
    from plancheck.documents.feed.source import Source
    from plancheck.documents.plan import load_plans
    from plancheck.sinks.rejects import write_rejects
    from plancheck.sinks.text_yearend import yearend_text
    started = time.perf_counter()
    census_source = Source.of(census)
    rejects_path = rejects or Path(f"{census_source.stem}.rejects.csv")
    feed_source = Source.of(feed) if feed is not None else None
    feed_rejects_path = Path(f"{feed_source.stem}.rejects.csv") if feed_source is not None else None
    plans_dir, rules_dir = _plans_dir(plans), _rules_dir(rules)
    _check_outputs({"--out": out, "--rejects": rejects_path, "feed rejects": feed_rejects_path, "--html": html,
                    "--xlsx": xlsx}, [census_source.location, feed_source and feed_source.location], rules_dir,
                   plans_dir)
    try:
        rulebook, limits = _rules(rules)
        if year is not None:
            limits.for_year(year, field="--year")
        as_of = preview.date() if preview is not None else None
        if as_of is not None:
            year = as_of.year
        loaded = load_plans(plans_dir)
        plan_ids = sorted(loaded)
        plan_docs = [loaded[pid][0] for pid in plan_ids]
        check_plans(plan_docs, limits, [str(loaded[pid][1]) for pid in plan_ids])
        data = read_census(census_source, plan_ids, year, preview=as_of is not None, last_year=limits.last_year)
        if year is None:  # the census's own year (documents/census_year.py)
            year = data.year
            limits.for_year(year, source=str(census_source), field="plan year (read from the census; give --year)")
        feed_summary, feed_rejects = None, None
        if feed_source is not None:
            from plancheck.documents.census_feed import contributions_from_feed
            feed_summary, *feed_rejects = contributions_from_feed(feed_source, data)
            feed_summary["rejects_file"] = str(feed_rejects_path)
        engine = _engine.Engine(rulebook)
        if as_of is not None:
            from plancheck.checks.preview import preview_yearend
            outcome = preview_yearend(data, plan_docs, limits, rulebook, engine, as_of)
        else:
            outcome = check_yearend(data, plan_docs, limits, rulebook, engine, year)
        history = _history(db, record or bool(html or xlsx), "yearend" if as_of is None else "yearend-preview", plan_ids,
                           as_of.isoformat() if as_of else year, [census_source, feed_source])
    except InputError as exc:
        _fail(exc)
    seconds = time.perf_counter() - started
    run = run_summary(census_source, data, outcome, as_of, feed_summary, str(rejects_path), seconds)
    corrections = [c.as_event() for c in outcome.corrections]
    previews = getattr(outcome, "previews", [])
    with _recording(history):
        if history:
            history.start(rulebook.revision)
        recorded = [history.finding(f.as_event()) if history else f.as_event() for f in outcome.findings]
        if history:
            run.update(history.close())
    # Every output is one commit, once everything has been written (uploads first, then renames).
    with _recording(history), together():
        with (replacing(out) as stream, replacing(rejects_path) as rejects_stream,
              replacing(feed_rejects_path) if feed_rejects_path else contextlib.nullcontext() as feed_rejects_stream):
            write_rejects(rejects_stream, *reject_rows(data.rejects))
            if feed_rejects:
                write_rejects(feed_rejects_stream, *feed_rejects)
            if output_format is ReportFormat.text:
                stream.write(yearend_text(outcome.summaries, outcome.hces, corrections,
                                          run | {"ruleset_revision": rulebook.revision}, previews).encode())
            else:
                _events_to(stream, rulebook.revision)
                for event in recorded:
                    events.emit(event)
                for item in (*outcome.hces, *corrections, *previews, *outcome.summaries):
                    events.emit(item)
                events.emit(run)
        status = _status(history, outcome.findings)
        if history:
            from plancheck.sinks.report_data import yearend_payload
            history.finish(run | {"yearend": yearend_payload(outcome.summaries, corrections)}, status)
            _reports(history, html, xlsx)
    if output_format is ReportFormat.jsonl:
        sys.stderr.write(f"Year-end {year}: {data.rows_read:,} rows read, {data.rows_rejected:,} rejected; "
                         f"{len(outcome.findings)} finding(s), {len(corrections)} correction(s) in {seconds:.2f} s\n")
    raise typer.Exit(status)


@app.command()
def schema(
    kind: Annotated[SchemaKind, typer.Argument(help="The document kind")],
) -> None:
    """Print the JSON Schema of a document kind, for editors and CI validation."""
    import importlib
    # Only the kind asked for is imported: each model module brings its own dependencies.
    models = {SchemaKind.plan: ("plancheck.documents.plan", "Plan"),
              SchemaKind.election: ("plancheck.documents.election", "ElectionFile"),
              SchemaKind.rule: ("plancheck.rulebook.rules", "RuleFile"),
              SchemaKind.limit: ("plancheck.documents.limits", "LimitFamily"),
              SchemaKind.withdrawal: ("plancheck.documents.withdrawal", "WithdrawalRequest")}
    module, name = models[kind]
    model = getattr(importlib.import_module(module), name)
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": f"https://plancheck.dev/schema/{kind.value}.json", **model.model_json_schema()}
    stdout().write((json.dumps(document, indent=2) + "\n").encode())


@app.command()
def serve(
    plans: Annotated[Optional[Path], typer.Option("--plans", help="Directory of plan documents")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=0, max=65535, help="Port (0: any free port)")] = 8080,
    token_file: Annotated[Optional[Path], typer.Option(
        "--token-file", help="File holding the bearer token every endpoint but /healthz and /readyz requires; "
        "without it the service binds to loopback only")] = None,
    max_body: Annotated[int, typer.Option("--max-body", min=1024, help="Largest request body in bytes (413 "
                                          "above)")] = 256 * 1024,
    watch: Annotated[float, typer.Option("--watch", min=0, help="Seconds between looks for changed rule or plan "
                                         "files (0: reload on SIGHUP only)")] = 2.0,
    workers: Annotated[int, typer.Option("--workers", min=1, max=64, help="Worker processes sharing the socket, "
                                         "each with its own engine; SIGHUP reaches every one (useful up to the "
                                         "number of cores)")] = 1,
    allowed_host: Annotated[Optional[list[str]], typer.Option(
        "--allowed-host", help="A Host name the service answers for (repeatable; '*' for any); default the "
        "--host address, plus localhost, 127.0.0.1 and ::1 on loopback; other Host headers get 400")] = None,
    read_timeout: Annotated[float, typer.Option("--read-timeout", min=0.1, help="Seconds a request (headers "
                                                "and body) has to arrive whole; 408 and closed after")] = 10.0,
    max_connections: Annotated[int, typer.Option("--max-connections", min=1, help="Open connections per "
                                                 "process at most; one more closes the oldest idle or slow "
                                                 "one")] = 512,
    shutdown_timeout: Annotated[float, typer.Option("--shutdown-timeout", min=0, help="Seconds the requests "
                                                    "being answered get to finish after SIGTERM")] = 10.0,
    rules: RulesOption = None,
) -> None:
    """Serve the checks over HTTP (FastAPI on uvicorn): elections, withdrawals, plan audits and a page at /."""
    try:
        require_extra("service", "fastapi", "uvicorn", feature="plancheck serve")
        from plancheck.service.run import serve as run_service
    except ImportError as exc:
        _fail(InputError(Problem("plancheck serve", "", f"the service needs the 'service' extra "
                                 f"(pip install 'plancheck[service]'): {exc}")))
    try:
        run_service(_plans_dir(plans), _rules_dir(rules), host, port, token_file, max_body, watch, workers,
                    allowed_host or (), read_timeout, max_connections, shutdown_timeout)
    except InputError as exc:
        _fail(exc)
    except Stopped as stop:  # the service has stopped: say so as its log does, in a JSON line, not a sentence
        from plancheck.service.app import event_logger
        event_logger(None).info("stopped", signal=signal.Signals(stop.signum).name, pid=os.getpid())
        raise typer.Exit(128 + stop.signum) from None


@app.command()
def init(
    directory: Annotated[Path, typer.Argument(help="Where to write rules/ and plans/ (created if missing)")],
    samples: Annotated[bool, typer.Option("--samples", help="Also write samples/: the sample elections, payroll "
                                          "feed, withdrawals and census the README's commands use")] = False,
) -> None:
    """Write a starter rules/ and plans/ to edit (copies of this plancheck's own); never overwrites."""
    from plancheck.starter import write_starter
    try:
        written = write_starter(directory, samples)
    except InputError as exc:
        _fail(exc)
    for item in written:
        typer.echo(f"wrote {item.path}/ ({item.files} files, a copy of the {item.origin} {item.kind}/)")
    home = written[0].path.parent
    typer.echo(f"Point plancheck at them with\n  export PLANCHECK_HOME={home}\nor give each command "
               f"--rules-dir {home / 'rules'} --plans {home / 'plans'}. After editing, check the rules with\n"
               f"  plancheck audit --rules --rules-dir {home / 'rules'}")


class Stopped(BaseException):
    """SIGINT or SIGTERM, raised in the main thread so that every `finally` runs (workers, temporary files)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _on_signal(signum: int, _frame) -> None:
    # A second signal must not interrupt the cleanup the first one started.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Stopped(signum)


def _quiet_stdout() -> None:
    """After a broken pipe: point stdout at /dev/null so that Python's exit flush stays silent."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def run(args: list[str]) -> int:
    """Run the command line on `args`; return the exit status (never raises, never prints a traceback)."""
    command = typer.main.get_command(app)
    try:
        try:
            # Whatever a command stages and has not committed itself (`report --html --xlsx`) is one commit, made
            # only when the command completes with 0 or 1.
            with together() as outputs:
                status = command.main(args=args, prog_name="plancheck", standalone_mode=False)
                status = status if isinstance(status, int) else EXIT_OK
                if status not in (EXIT_OK, EXIT_FINDINGS):
                    outputs.discard()
            stdout().flush()
            return status
        except Stopped as stop:
            name = "interrupted" if stop.signum == signal.SIGINT else "terminated"
            sys.stderr.write(f"{name}: stopped; outputs left as they were, temporary files removed\n")
            return 128 + stop.signum
        except typer._click.exceptions.ClickException as exc:  # noqa: SLF001 - typer's vendored click
            exc.show()
            return EXIT_INPUT
        except typer.Abort:  # end of input at a prompt
            return EXIT_INPUT
        except InputError as exc:  # raised while writing outputs (a full disk), or from a loader
            for problem in exc.problems:
                sys.stderr.write(f"error: {problem}\n")
            return EXIT_INPUT
        except ImportError as exc:  # an optional extra's package, imported deeper than its feature's require_extra
            missing = missing_extra(exc)
            if missing is None:
                raise
            sys.stderr.write(f"error: {missing.problems[0]}\n")
            return EXIT_INPUT
    except OutputClosed:  # the reader went away (`| head`): stop quietly, outputs not replaced
        _quiet_stdout()
        return EXIT_INPUT


def main() -> None:
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    sys.exit(run(sys.argv[1:]))


# The history commands live in cli_history.py (which imports nothing from here): mount them.
app.add_typer(cli_history.runs_app, name="runs")
app.add_typer(cli_history.db_app, name="db")
app.command()(cli_history.ack)
app.command()(cli_history.report)
