"""The plancheck command line: parses arguments and runs jobs (plancheck.jobs) through their runner; holds no rules.

Exit status: 0 no error finding, 1 error findings, 2 bad input, usage or an output that cannot
be written, 130 interrupted (SIGINT), 143 terminated (SIGTERM). Outputs go through sinks/files.py:
checked before any work, and replaced only when the command completes (jobs/runner.py).
"""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

from plancheck import cli_history
from plancheck import cli_options as opt
from plancheck.cli_history import DbOption
from plancheck.cli_signals import Stopped, on_signal, quiet_stdout
from plancheck.errors import EXIT_FINDINGS, EXIT_INPUT, EXIT_OK, InputError, Problem
from plancheck.extras import missing_extra, require_extra
from plancheck.locations import location
from plancheck.sinks.files import OutputClosed, stdout, together

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


def _common(rules: Path | None, plans: Path | None | bool = None, out=None, db=None, record=False, html=None,
            xlsx=None):
    """What every job shares; `plans` False: the command reads no plans directory."""
    from plancheck.jobs.result import Common, plans_dir, rules_dir
    return Common(rules_dir(rules), None if plans is False else plans_dir(plans), out, db, record, html, xlsx)


def _execute(job, params) -> None:
    from plancheck.jobs.runner import execute
    raise typer.Exit(execute(params.common, job(params)))


@app.command()
def election(file: Annotated[Path, typer.Argument(help="Election file (YAML or JSON)")],
             plan: Annotated[Path, typer.Option("--plan", help="Plan document (YAML)")], rules: opt.RulesOption = None,
             out: opt.OutOption = None, db: DbOption = None, record: opt.RecordOption = False) -> None:
    """Check one employee's contribution election for the rest of the year."""
    from plancheck.jobs.election import Election, election
    _execute(election, Election(_common(rules, False, out, db, record), file, plan))


@app.command()
def batch(feed: opt.FeedArgument, plans: opt.PlansOption = None, rules: opt.RulesOption = None,
          out: opt.UrlOutOption = None, rejects: opt.BatchRejectsOption = None, workers: opt.WorkersOption = None,
          cluster: opt.ClusterOption = None, work_dir: opt.WorkDirOption = None, db: DbOption = None,
          record: opt.RecordOption = False, html: opt.HtmlOption = None, xlsx: opt.XlsxOption = None) -> None:
    """Check a payroll feed: one finding per employee, year and rule, at the first pay date it broke."""
    from plancheck.cli_progress import progress
    from plancheck.jobs.batch import Batch
    from plancheck.jobs.batch import batch as run_batch
    if cluster is None and work_dir is not None:
        raise typer.BadParameter("goes with --cluster", param_hint="--work-dir")
    if cluster is not None and workers is not None:
        raise typer.BadParameter("a cluster runs on its own workers: give --workers or --cluster",
                                 param_hint="--workers")
    common = _common(rules, plans, location(out) if out is not None else None, db, record, html, xlsx)
    raise typer.Exit(run_batch(Batch(common, feed, location(rejects) if rejects is not None else None, workers,
                                     cluster, work_dir, progress(cluster is not None))))


@app.command()
def withdrawals(file: Annotated[Path, typer.Argument(help="Requests: CSV, JSON or YAML")],
                plans: opt.PlansOption = None, rules: opt.RulesOption = None, out: opt.OutOption = None,
                db: DbOption = None, record: opt.RecordOption = False) -> None:
    """Check in-service withdrawal, hardship, in-plan Roth conversion and Roth IRA rollover requests."""
    from plancheck.jobs.withdrawals import Withdrawals, withdrawals
    _execute(withdrawals, Withdrawals(_common(rules, plans, out, db, record), file))


@app.command()
def audit(plans: opt.AuditPlansArgument = None, check_rules: opt.CheckRulesOption = False,
          output_format: opt.AuditFormatOption = opt.OutputFormat.jsonl, year: opt.AuditYearOption = None,
          rules: opt.RulesOption = None, out: opt.OutOption = None, db: DbOption = None,
          record: opt.RecordOption = False, html: opt.HtmlOption = None, xlsx: opt.XlsxOption = None) -> None:
    """Audit plan documents (or, with --rules, the rule files) and report configuration findings."""
    from plancheck.jobs.runner import execute
    common = _common(rules, False, out, db, record, html, xlsx)
    if check_rules:
        from plancheck.jobs.rules_audit import rules_audit
        raise typer.Exit(execute(common, rules_audit(common.rules_dir, out, output_format.value)))
    from plancheck.jobs.audit import Audit, audit, plan_paths
    _execute(audit, Audit(common, plan_paths(plans or []), output_format.value, year))


@app.command()
def yearend(census: opt.CensusArgument, plans: opt.PlansOption = None, year: opt.YearendYearOption = None,
            feed: opt.YearendFeedOption = None, preview: opt.PreviewOption = None,
            output_format: opt.ReportFormatOption = opt.ReportFormat.jsonl,
            rejects: opt.CensusRejectsOption = None, rules: opt.RulesOption = None, out: opt.OutOption = None,
            db: DbOption = None, record: opt.RecordOption = False, html: opt.HtmlOption = None,
            xlsx: opt.XlsxOption = None) -> None:
    """Year-end tests: HCEs, ADP and ACP with their corrections and deadlines, top-heavy; or a mid-year preview."""
    from plancheck.jobs.yearend import Yearend, yearend
    _execute(yearend, Yearend(_common(rules, plans, out, db, record, html, xlsx), census, year, feed,
                              preview.date() if preview is not None else None, output_format.value, rejects))


@app.command()
def schema(kind: Annotated[opt.SchemaKind, typer.Argument(help="The document kind")]) -> None:
    """Print the JSON Schema of a document kind, for editors and CI validation."""
    import importlib
    # Only the kind asked for is imported: each model module brings its own dependencies.
    models = {opt.SchemaKind.plan: ("plancheck.documents.plan", "Plan"),
              opt.SchemaKind.election: ("plancheck.documents.election", "ElectionFile"),
              opt.SchemaKind.rule: ("plancheck.rulebook.rules", "RuleFile"),
              opt.SchemaKind.limit: ("plancheck.rulebook.limits", "LimitFamily"),
              opt.SchemaKind.withdrawal: ("plancheck.documents.withdrawal", "WithdrawalRequest")}
    module, name = models[kind]
    model = getattr(importlib.import_module(module), name)
    document = {"$schema": "https://json-schema.org/draft/2020-12/schema",
                "$id": f"https://plancheck.dev/schema/{kind.value}.json", **model.model_json_schema()}
    stdout().write((json.dumps(document, indent=2) + "\n").encode())


@app.command()
def serve(plans: opt.PlansOption = None, host: opt.HostOption = "127.0.0.1", port: opt.PortOption = 8080,
          token_file: opt.TokenFileOption = None, max_body: opt.MaxBodyOption = 256 * 1024,
          watch: opt.WatchOption = 2.0, workers: opt.ServeWorkersOption = 1, allowed_host: opt.AllowedHostOption = None,
          read_timeout: opt.ReadTimeoutOption = 10.0, max_connections: opt.MaxConnectionsOption = 512,
          shutdown_timeout: opt.ShutdownTimeoutOption = 10.0, rules: opt.RulesOption = None) -> None:
    """Serve the checks over HTTP (FastAPI on uvicorn): elections, withdrawals, plan audits and a page at /."""
    try:
        require_extra("service", "fastapi", "uvicorn", feature="plancheck serve")
        from plancheck.service.run import serve as run_service
    except ImportError as exc:
        raise InputError(Problem("plancheck serve", "", f"the service needs the 'service' extra "
                                 f"(pip install 'plancheck[service]'): {exc}")) from None
    common = _common(rules, plans)
    try:
        run_service(common.plans_dir, common.rules_dir, host, port, token_file, max_body, watch, workers,
                    allowed_host or (), read_timeout, max_connections, shutdown_timeout)
    except Stopped as stop:  # the service has stopped: say so as its log does, in a JSON line, not a sentence
        from plancheck.service.holder import event_logger
        event_logger(None).info("stopped", signal=signal.Signals(stop.signum).name, pid=os.getpid())
        raise typer.Exit(128 + stop.signum) from None


@app.command()
def init(directory: opt.InitDirectoryArgument, samples: opt.SamplesOption = False) -> None:
    """Write a starter rules/ and plans/ to edit (copies of this plancheck's own); never overwrites."""
    from plancheck.starter import write_starter
    written = write_starter(directory, samples)
    for item in written:
        typer.echo(f"wrote {item.path}/ ({item.files} files, a copy of the {item.origin} {item.kind}/)")
    home = written[0].path.parent
    typer.echo(f"Point plancheck at them with\n  export PLANCHECK_HOME={home}\nor give each command "
               f"--rules-dir {home / 'rules'} --plans {home / 'plans'}. After editing, check the rules with\n"
               f"  plancheck audit --rules --rules-dir {home / 'rules'}")


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
        quiet_stdout()
        return EXIT_INPUT


def main() -> None:
    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    sys.exit(run(sys.argv[1:]))


# The history commands live in cli_history.py (which imports nothing from here): mount them.
app.add_typer(cli_history.runs_app, name="runs")
app.add_typer(cli_history.db_app, name="db")
app.command()(cli_history.ack)
app.command()(cli_history.report)
