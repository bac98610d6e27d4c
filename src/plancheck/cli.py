"""The plancheck command line. Reads inputs, calls the checks, writes events; holds no rules."""

from __future__ import annotations

import contextlib
import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from . import events, report
from .engine import Engine
from .errors import InputError
from .findings import has_errors, severity_counts

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="401(k) compliance checks: elections, payroll feeds, withdrawals and plan documents.")

RulesOption = Annotated[Optional[Path], typer.Option("--rules-dir", help="Rules directory (default: the bundled rules/)")]
OutOption = Annotated[Optional[Path], typer.Option("--out", help="Write JSON-lines events here instead of stdout")]

EXIT_OK, EXIT_FINDINGS, EXIT_INPUT = 0, 1, 2


def _fail(exc: InputError) -> None:
    for problem in exc.problems:
        sys.stderr.write(f"error: {problem}\n")
    raise typer.Exit(EXIT_INPUT)


def _rules(rules_dir: Path | None):
    from .resources import default_rules_dir, load_rules
    return load_rules((rules_dir or default_rules_dir()).resolve())


def _open_out(out: Path | None):
    if out is None:
        return sys.stdout.buffer
    try:
        return out.open("wb")
    except OSError as exc:
        sys.stderr.write(f"error: {out}: cannot write: {exc.strerror}\n")
        raise typer.Exit(EXIT_INPUT) from None


def _event_stream(out: Path | None):
    """The output stream, with structured events configured to write to it."""
    stream = _open_out(out)
    events.configure(stream)
    return stream


def _emit_findings(findings, revision: str) -> None:
    for finding in findings:
        events.emit(finding.as_event() | {"ruleset_revision": revision})


@app.command()
def election(
    file: Annotated[Path, typer.Argument(help="Election file (YAML or JSON)")],
    plan: Annotated[Path, typer.Option("--plan", help="Plan document (YAML)")],
    rules: RulesOption = None,
    out: OutOption = None,
) -> None:
    """Check one employee's contribution election for the rest of the year."""
    from .election import check_election, load_election
    from .plan import load_plan
    try:
        rulebook, limits = _rules(rules)
        plan_doc = load_plan(plan)
        election_doc = load_election(file)
        engine = Engine(rulebook)
        result = check_election(election_doc, plan_doc, limits, rulebook, engine, str(file))
    except InputError as exc:
        _fail(exc)
    stream = _event_stream(out)
    _emit_findings(result.findings, rulebook.revision)
    events.emit({"event": "election_checked", **result.summary,
                 "findings": len(result.findings), "ruleset_revision": rulebook.revision})
    stream.flush()
    report.election_summary(result.findings, result.summary)
    raise typer.Exit(EXIT_FINDINGS if has_errors(result.findings) else EXIT_OK)


@app.command()
def batch(
    feed: Annotated[Path, typer.Argument(help="Payroll feed: CSV with a header row, or Parquet")],
    plans: Annotated[Optional[Path], typer.Option("--plans", help="Directory of plan documents")] = None,
    rules: RulesOption = None,
    out: OutOption = None,
    rejects: Annotated[Optional[Path], typer.Option(
        "--rejects", help="Where rejected rows go (default: FEED's name + .rejects.csv in the current directory)")] = None,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Worker processes (default: all cores)")] = None,
) -> None:
    """Check a payroll feed: one finding per employee, year and rule, at the first pay date it broke."""
    import os

    from .batch.run import run_batch
    from .resources import default_plans_dir, default_rules_dir
    stream = _event_stream(out)
    rejects_path = rejects or Path(f"{feed.stem}.rejects.csv")
    progress = _Progress() if sys.stderr.isatty() else None
    try:
        with progress or contextlib.nullcontext():
            outcome = run_batch(
                feed, (plans or default_plans_dir()).resolve(), (rules or default_rules_dir()).resolve(),
                rejects_path, workers or os.cpu_count() or 1,
                on_read=progress.read if progress else None,
                on_start=progress.start_checking if progress else None,
                on_partition=progress.checked if progress else None)
    except InputError as exc:
        _fail(exc)
    stream.flush()
    report.batch_summary(outcome.summary)
    raise typer.Exit(EXIT_FINDINGS if outcome.errors else EXIT_OK)


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
) -> None:
    """Check in-service withdrawal, hardship, in-plan Roth conversion and Roth IRA rollover requests."""
    from collections import Counter

    from .plan import load_plans
    from .resources import default_plans_dir
    from .withdrawals import check_requests
    try:
        rulebook, _limits = _rules(rules)
        plan_docs = {pid: plan for pid, (plan, _) in load_plans(plans or default_plans_dir()).items()}
        outcome = check_requests(file, plan_docs, rulebook, Engine(rulebook))
    except InputError as exc:
        _fail(exc)
    stream = _event_stream(out)
    _emit_findings(outcome.findings, rulebook.revision)
    for reject in outcome.rejected:
        events.emit({"event": "request_rejected", "file": str(file), "line": reject.line, "where": reject.where,
                     "reason": reject.reason})
    by_rule = Counter(f.rule for f in outcome.findings)
    summary = {"event": "withdrawals_summary", "file": str(file),
               "requests_read": outcome.checked + len(outcome.rejected), "requests_checked": outcome.checked,
               "requests_rejected": len(outcome.rejected), "findings": len(outcome.findings),
               "findings_by_rule": dict(sorted(by_rule.items())),
               "findings_by_severity": severity_counts(f.severity for f in outcome.findings),
               "ruleset_revision": rulebook.revision}
    events.emit(summary)
    stream.flush()
    report.withdrawals_summary(outcome, summary)
    raise typer.Exit(EXIT_FINDINGS if has_errors(outcome.findings) else EXIT_OK)


@app.command()
def audit(
    plans: Annotated[Optional[list[Path]], typer.Argument(help="Plan files or folders (default: plans/)")] = None,
    check_rules: Annotated[bool, typer.Option("--rules", help="Audit the rule files instead of plans")] = False,
    output_format: Annotated[str, typer.Option("--format", help="jsonl, text or sarif")] = "jsonl",
    year: Annotated[Optional[int], typer.Option("--year", help="Plan year for documents that do not name one "
                                                "(default: the last year under rules/limits)")] = None,
    rules: RulesOption = None,
    out: OutOption = None,
) -> None:
    """Audit plan documents (or, with --rules, the rule files) and report configuration findings."""
    from .resources import default_plans_dir, default_rules_dir
    if output_format not in ("jsonl", "text", "sarif"):
        sys.stderr.write(f"error: --format must be jsonl, text or sarif, not {output_format!r}\n")
        raise typer.Exit(EXIT_INPUT)
    rules_dir = (rules or default_rules_dir()).resolve()
    if check_rules:
        _audit_rules(rules_dir, output_format, out)
        return
    from .audit import audit_plans, plan_paths
    try:
        rulebook, limits = _rules(rules)
        paths = plan_paths(plans or [], default_plans_dir())
        missing = [p for p in paths if not p.exists()]
        if missing:
            from .errors import Problem
            raise InputError([Problem(str(p), "", "file not found") for p in missing])
        audits = audit_plans(paths, limits, rulebook, Engine(rulebook), year)
    except InputError as exc:
        _fail(exc)
    findings = [f for a in audits for f in a.findings]
    stream = _open_out(out)
    if output_format == "sarif":
        from .sarif import sarif_log
        rules_used = [r for r in rulebook.rules["plan"]]
        stream.write(json.dumps(sarif_log(findings, rules_used, Path.cwd()), indent=2).encode() + b"\n")
    elif output_format == "text":
        stream.write(report.audit_text(audits).encode())
    else:
        events.configure(stream)
        for plan_audit in audits:
            _emit_findings(plan_audit.findings, rulebook.revision)
            events.emit({"event": "plan_audited", "plan_id": plan_audit.plan_id, "file": str(plan_audit.path),
                         "mega_backdoor": plan_audit.verdict, "findings": len(plan_audit.findings)})
        events.emit({"event": "audit_summary", "plans": len(audits), "findings": len(findings),
                     "findings_by_severity": severity_counts(f.severity for f in findings),
                     "ruleset_revision": rulebook.revision})
    stream.flush()
    raise typer.Exit(EXIT_FINDINGS if has_errors(findings) else EXIT_OK)


def _audit_rules(rules_dir: Path, output_format: str, out: Path | None) -> None:
    """Every rule compiles, carries a citation and examples, and its examples pass."""
    from .audit import audit_rules
    audits, problems = audit_rules(rules_dir)
    stream = _open_out(out)
    failed = [a for a in audits if a.failed]
    if output_format == "sarif":
        from .sarif import SCHEMA
        results = [{"ruleId": "rule-file-invalid", "level": "error", "message": {"text": p.expected},
                    "locations": [{"physicalLocation": {"artifactLocation": {"uri": Path(p.source).as_posix()},
                                                        **({"region": {"startLine": p.line}} if p.line else {})}}]}
                   for p in problems]
        results += [{"ruleId": "rule-example-failed", "level": "error",
                     "message": {"text": f"rule {a.rule}: example(s) decided wrongly: {', '.join(a.failed)}"},
                     "locations": [{"physicalLocation": {"artifactLocation": {"uri": Path(a.file).as_posix()}}}]}
                    for a in failed]
        log = {"$schema": SCHEMA, "version": "2.1.0", "runs": [{"tool": {"driver": {
            "name": "plancheck-rules", "rules": [
                {"id": "rule-file-invalid", "shortDescription": {"text": "Rule file does not load"}},
                {"id": "rule-example-failed", "shortDescription": {"text": "Rule example decided wrongly"}}]}},
            "results": results}]}
        stream.write(json.dumps(log, indent=2).encode() + b"\n")
    elif output_format == "text":
        lines = [f"{p}" for p in problems]
        lines += [f"{a.file}: {a.rule}: {'FAILED ' + ', '.join(a.failed) if a.failed else 'ok'} "
                  f"({a.examples} examples; {a.citation})" for a in audits]
        lines.append(f"{len(audits)} rules, {len(failed)} failing, {len(problems)} load problems")
        stream.write(("\n".join(lines) + "\n").encode())
    else:
        events.configure(stream)
        for p in problems:
            events.emit({"event": "rule_file_error", "file": p.source, "line": p.line, "field": p.field or None,
                         "problem": p.expected})
        for a in audits:
            events.emit({"event": "rule_audited", "rule": a.rule, "file": a.file, "severity": a.severity,
                         "citation": a.citation, "examples": a.examples, "failed_examples": a.failed,
                         "status": "failed" if a.failed else "ok"})
        events.emit({"event": "rules_audit_summary", "rules": len(audits), "failing": len(failed),
                     "load_problems": len(problems)})
    stream.flush()
    raise typer.Exit(EXIT_FINDINGS if problems or failed else EXIT_OK)


@app.command()
def yearend(
    census: Annotated[Path, typer.Argument(help="Census: CSV with a header row, or Parquet; one row per employee per plan")],
    plans: Annotated[Optional[Path], typer.Option("--plans", help="Directory of plan documents")] = None,
    year: Annotated[Optional[int], typer.Option("--year", help="Plan year tested (default: the last year under "
                                                "rules/limits)")] = None,
    feed: Annotated[Optional[Path], typer.Option("--feed", help="Take the contribution totals from this payroll "
                                                 "feed (CSV or Parquet) instead of the census")] = None,
    preview: Annotated[Optional[str], typer.Option("--preview", help="Mid-year preview: the census (or feed) is year "
                                                   "to date as of this date (YYYY-MM-DD); give each HCE the most "
                                                   "they can still defer and contribute after tax")] = None,
    output_format: Annotated[str, typer.Option("--format", help="jsonl or text")] = "jsonl",
    rejects: Annotated[Optional[Path], typer.Option(
        "--rejects", help="Where rejected census rows go (default: CENSUS's name + .rejects.csv in the current "
        "directory); rejected feed rows go to FEED's name + .rejects.csv")] = None,
    rules: RulesOption = None,
    out: OutOption = None,
) -> None:
    """Year-end tests: HCEs, ADP and ACP with their corrections and deadlines, top-heavy; or a mid-year preview."""
    import datetime as dt
    import time
    from collections import Counter

    from .checks.yearend import check_plans, check_yearend
    from .documents.census import read_census, write_rejects
    from .plan import load_plans
    from .resources import default_plans_dir
    from .sinks.text_yearend import yearend_text
    started = time.perf_counter()
    if output_format not in ("jsonl", "text"):
        sys.stderr.write(f"error: --format must be jsonl or text, not {output_format!r}\n")
        raise typer.Exit(EXIT_INPUT)
    rejects_path = rejects or Path(f"{census.stem}.rejects.csv")
    try:
        rulebook, limits = _rules(rules)
        year = year or limits.last_year
        limits.for_year(year, field="--year")
        as_of = None
        if preview is not None:
            try:
                as_of = dt.date.fromisoformat(preview)
            except ValueError:
                from .errors import Problem
                raise InputError(Problem("--preview", "", "expected a date YYYY-MM-DD", got=repr(preview))) from None
            year = as_of.year
        loaded = load_plans((plans or default_plans_dir()).resolve())
        plan_ids = sorted(loaded)
        plan_docs = [loaded[pid][0] for pid in plan_ids]
        check_plans(plan_docs, limits, [str(loaded[pid][1]) for pid in plan_ids])
        data = read_census(census, plan_ids, year, preview=as_of is not None)
        feed_summary = None
        if feed is not None:
            from .documents.census_feed import contributions_from_feed
            feed_summary = contributions_from_feed(feed, data, Path(f"{feed.stem}.rejects.csv"))
        write_rejects(rejects_path, data.rejects)
        engine = Engine(rulebook)
        if as_of is not None:
            from .checks.preview import preview_yearend
            outcome = preview_yearend(data, plan_docs, limits, rulebook, engine, as_of)
        else:
            outcome = check_yearend(data, plan_docs, limits, rulebook, engine, year)
    except InputError as exc:
        _fail(exc)
    seconds = time.perf_counter() - started
    by_rule = Counter(f.rule for f in outcome.findings)
    run = {"event": "yearend_run_summary", "census": str(census), "year": year,
           "preview_as_of": as_of.isoformat() if as_of else None, "feed": feed_summary,
           "rows_read": data.rows_read, "rows_checked": data.rows_checked, "rows_rejected": data.rows_rejected,
           "rejects_file": str(rejects_path), "extra_columns": data.extra_columns, "plans": len(outcome.summaries),
           "findings": len(outcome.findings), "findings_by_rule": dict(sorted(by_rule.items())),
           "findings_by_severity": severity_counts(f.severity for f in outcome.findings),
           "corrections": len(outcome.corrections), "seconds": round(seconds, 3),
           "rows_per_second": int(data.rows_read / seconds) if seconds > 0 else 0,
           "ruleset_revision": rulebook.revision}
    corrections = [c.as_event() for c in outcome.corrections]
    previews = getattr(outcome, "previews", [])
    stream = _open_out(out)
    if output_format == "text":
        stream.write(yearend_text(outcome.summaries, outcome.hces, corrections, run, previews).encode())
    else:
        events.configure(stream)
        _emit_findings(outcome.findings, rulebook.revision)
        for record in (*outcome.hces, *corrections, *previews, *outcome.summaries):
            events.emit(record)
        events.emit(run)
        sys.stderr.write(f"Year-end {year}: {data.rows_read:,} rows read, {data.rows_rejected:,} rejected; "
                         f"{len(outcome.findings)} finding(s), {len(corrections)} correction(s) in {seconds:.2f} s\n")
    stream.flush()
    raise typer.Exit(EXIT_FINDINGS if has_errors(outcome.findings) else EXIT_OK)


@app.command()
def schema(
    kind: Annotated[str, typer.Argument(help="plan, election, withdrawal, rule or limit")],
) -> None:
    """Print the JSON Schema of a document kind, for editors and CI validation."""
    from .election import ElectionFile
    from .limits import LimitFamily
    from .plan import Plan
    from .rulebook import RuleFile
    from .withdrawals import WithdrawalRequest
    models = {"plan": Plan, "election": ElectionFile, "rule": RuleFile, "limit": LimitFamily,
              "withdrawal": WithdrawalRequest}
    if kind not in models:
        sys.stderr.write(f"error: unknown schema {kind!r}; choose one of {', '.join(models)}\n")
        raise typer.Exit(EXIT_INPUT)
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": f"https://plancheck.dev/schema/{kind}.json", **models[kind].model_json_schema()}
    sys.stdout.write(json.dumps(document, indent=2) + "\n")


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:  # pragma: no cover
        sys.stderr.write("interrupted\n")
        sys.exit(130)
