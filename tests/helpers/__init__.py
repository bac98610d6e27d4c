"""Test helpers: build plans and elections in code, and run an election check."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plancheck.checks.election import check_election
from plancheck.documents.election import ElectionFile
from plancheck.documents.plan import Plan

ROOT = Path(__file__).resolve().parents[2]


def make_plan(**overrides: Any) -> Plan:
    """A monthly plan with pretax, Roth and after-tax, catch-up, and no match unless given."""
    doc: dict[str, Any] = {
        "plan_id": "test-plan", "name": "Test plan", "payroll": {"frequency": "monthly"},
        "contributions": {"pretax": True, "roth": True, "after_tax": True},
        "catch_up": {"offered": True, "age_60_63": True},
    }
    doc.update(overrides)
    return Plan.model_validate(doc)


def make_election(birth_date: str, start: str, comp: dict, terms: dict, **employee: Any) -> ElectionFile:
    return ElectionFile.model_validate({
        "employee": {"id": "E-1", "birth_date": birth_date, "compensation": comp, **employee},
        "election": {"start_date": start, **terms},
    })


def run(plan: Plan, election: ElectionFile, rulebook, limits, engine):
    """Findings keyed by rule id, and the summary."""
    result = check_election(election, plan, limits, rulebook, engine, "test")
    return {f.rule: f for f in result.findings}, result.summary


def run_batch_files(feed: Path, plans_dir: Path, rejects: Path, workers: int = 1, rules_dir: Path | None = None):
    """A batch in-process, written as the command line writes it: events to the configured stream, rejects CSV."""
    from plancheck.checks.batch.run import run_batch
    from plancheck.sinks import events
    from plancheck.sinks.batch import BatchFiles

    with rejects.open("wb") as handle:
        outcome = run_batch(feed, plans_dir, rules_dir or ROOT / "rules", workers, BatchFiles(handle), str(rejects))
    events.emit(outcome.summary)
    return outcome


@dataclass
class CliResult:
    """What a run of the command line gave: its exit status and what it wrote."""

    returncode: int
    stdout: str
    stderr: str


def plancheck(*args: str, cwd: Path = ROOT) -> CliResult:
    """The plancheck command line run in this process (plancheck.cli.run), from `cwd`, with its output captured.

    The tests' one runner. A subprocess is used only where the process itself is what is tested
    (`python -m plancheck`, signals).
    """
    import contextlib
    import io
    import os

    from plancheck.cli import run

    out, err = io.BytesIO(), io.StringIO()
    stdout = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    previous = os.getcwd()
    os.chdir(cwd)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(err):
            status = run([str(a) for a in args])
            stdout.flush()
    finally:
        os.chdir(previous)
    return CliResult(status, out.getvalue().decode("utf-8"), err.getvalue())


def eventually(check, seconds: float = 15.0):
    """Poll `check` until it returns something true (and return it), or fail after `seconds`."""
    import time

    deadline = time.monotonic() + seconds
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def logged_events(path: Path) -> list[dict]:
    """The JSON events of a log a process is still writing: complete lines only (the last may be half written)."""
    import json

    complete = path.read_text().rpartition("\n")[0]
    return [json.loads(line) for line in complete.splitlines() if line.startswith("{")]


def s3_endpoint(buckets: tuple[str, ...]):
    """A real S3 endpoint on loopback (moto's server) with `buckets`; yields the environment that reaches it, set in
    os.environ (as an administrator configures S3) until the generator is closed. The body of an `s3` fixture."""
    import logging
    import os

    from moto import server as moto_server

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the server's access log
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    env = {"AWS_ENDPOINT_URL": f"http://{host}:{port}", "AWS_ACCESS_KEY_ID": "plancheck-test",
           "AWS_SECRET_ACCESS_KEY": "plancheck-test", "AWS_DEFAULT_REGION": "us-east-1"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()  # an instance cached by an earlier module speaks to its stopped server
    try:
        import fsspec

        for bucket in buckets:
            fsspec.filesystem("s3", skip_instance_cache=True).mkdir(bucket)
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        server.stop()
        s3fs.S3FileSystem.clear_instance_cache()
