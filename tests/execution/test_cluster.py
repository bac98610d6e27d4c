"""The batch on a Dask cluster gives what the local run gives: findings, rejects and counts, even when a worker dies."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT, plancheck
from helpers.feeds import feed_with_bad_rows
from plancheck.documents.feed import reader
from plancheck.execution import partition

pytestmark = pytest.mark.slow  # Dask LocalClusters: not in the fast tier (pytest -m 'not slow')

distributed = pytest.importorskip("distributed")

#: batch_summary fields that may differ between two runs of the same feed.
RUN_FIELDS = {"seconds", "rows_per_second", "phases", "peak_memory_mb", "workers", "cluster", "rejects_file",
              "run_id", "ruleset_revision"}


@pytest.fixture(scope="module")
def scheduler():
    """One 2-worker LocalCluster (processes, one thread each) for the whole module: it costs about a second.

    Configured as `local:N` configures its own (cluster.LOCAL_CONFIG), which also keeps the nanny from
    setting MALLOC_TRIM_THRESHOLD_ in this process's environment, where later local pools would inherit it.
    """
    import dask

    from plancheck.execution.cluster import LOCAL_CONFIG

    with dask.config.set(LOCAL_CONFIG), distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                                                  dashboard_address=":0") as cluster:
        yield cluster.scheduler_address


@pytest.fixture
def small_partitions(monkeypatch):
    """Many partitions and ranges from a small feed, as tests/test_batch.py does (the constants are the client's)."""
    monkeypatch.setattr(partition, "PARTITION_BYTES", 12_000)
    monkeypatch.setattr(partition, "PARTITION_ROWS", 150)
    monkeypatch.setattr(reader, "MIN_RANGE_CHUNK", 4096)


def run(feed: Path, out: Path, *how: str) -> tuple[list[bytes], bytes, dict, list[dict]]:
    """`plancheck batch` in-process: finding lines as written, the rejects file, the summary, the other events."""
    out.mkdir()
    result = plancheck("batch", str(feed), "--out", str(out / "findings.jsonl"), "--rejects",
                       str(out / "rejects.csv"), *how)
    assert result.returncode == 1, result.stderr
    if "--cluster" in how:  # the dashboard link, and progress from the tasks as they complete
        assert result.stderr.startswith("cluster: tcp://") and "dashboard http" in result.stderr.splitlines()[0]
        assert "progress: checked" in result.stderr
    lines = (out / "findings.jsonl").read_bytes().splitlines()
    events = [json.loads(line) for line in lines]
    findings = [line for line, e in zip(lines, events) if e["event"] in ("violation", "warning", "notice")]
    summary = next(e for e in events if e["event"] == "batch_summary")
    others = [e for e in events if e["event"] not in ("violation", "warning", "notice", "batch_summary")]
    return findings, (out / "rejects.csv").read_bytes(), summary, others


def same_run(local, cluster) -> None:
    """Byte-identical findings and rejects, the same summary but for the fields that describe the run itself."""
    assert cluster[0] == local[0] and local[0]
    assert cluster[1] == local[1] and local[1].count(b"\n") > 5
    strip = lambda summary: {k: v for k, v in summary.items() if k not in RUN_FIELDS}  # noqa: E731
    assert strip(cluster[2]) == strip(local[2])
    assert local[2]["partitions"] > 3 and local[2]["rows_rejected"] >= 5


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_a_cluster_run_gives_the_local_output_byte_for_byte(kind, scheduler, small_partitions, tmp_path, plans):
    """CSV and Parquet (several row groups) with bad rows and several partitions: local 2 workers == 2 Dask workers."""
    feed = feed_with_bad_rows(tmp_path / f"feed.{kind}", plans, 11, parquet_row_group=400 if kind == "parquet" else None)
    local = run(feed, tmp_path / "local", "--workers", "2")
    cluster = run(feed, tmp_path / "cluster", "--cluster", scheduler)
    same_run(local, cluster)
    event = next(e for e in cluster[3] if e["event"] == "batch_cluster")
    assert event["scheduler"] == scheduler and event["workers"] == 2 and cluster[2]["cluster"] == {
        k: v for k, v in event.items() if k not in ("event", "run_id", "ruleset_revision")}
    assert not Path(event["work_dir"]).exists()


def test_local_n_with_an_fsspec_work_dir(small_partitions, tmp_path, plans):
    """`--cluster local:2` starts its own LocalCluster; a file:// work dir is staged through fsspec and removed."""
    feed = feed_with_bad_rows(tmp_path / "feed.csv", plans, 12)
    work = tmp_path / "work"
    local = run(feed, tmp_path / "local", "--workers", "2")
    cluster = run(feed, tmp_path / "cluster", "--cluster", "local:2", "--work-dir", f"file://{work}")
    same_run(local, cluster)
    event = next(e for e in cluster[3] if e["event"] == "batch_cluster")
    assert event["work_dir"].startswith(f"file://{work}/plancheck-run-") and event["dashboard"].startswith("http")
    assert work.is_dir() and not any(work.iterdir())


def test_a_worker_killed_mid_run_is_replaced_and_the_output_is_the_same(scheduler, small_partitions, tmp_path, plans):
    """SIGKILL one worker process once the first partition is checked: Dask re-runs its tasks, the output is identical."""
    from plancheck.checks.batch.run import run_batch
    from plancheck.execution.cluster import cluster_executor
    from plancheck.sinks import events
    from plancheck.sinks.batch import BatchFiles

    feed = feed_with_bad_rows(tmp_path / "feed.csv", plans, 13, employees=240)
    local = run(feed, tmp_path / "local", "--workers", "2")
    with distributed.Client(scheduler) as client:
        before = client.run(os.getpid)
    killed: list[int] = []

    def kill_once(_rows: int) -> None:
        if not killed:
            killed.append(next(iter(before.values())))
            os.kill(killed[0], signal.SIGKILL)

    out = io.BytesIO()
    events.configure(out)
    rejects = tmp_path / "rejects.csv"
    with rejects.open("wb") as handle:
        outcome = run_batch(feed, ROOT / "plans", ROOT / "rules", 2, BatchFiles(handle), str(tmp_path / "cluster.csv"),
                            on_partition=kill_once, executor=cluster_executor(scheduler))
    lines = out.getvalue().splitlines()
    findings = [line for line in lines if json.loads(line)["event"] in ("violation", "warning", "notice")]
    same_run(local, (findings, rejects.read_bytes(), outcome.summary, []))
    assert killed and outcome.summary["partitions"] > 8
    with distributed.Client(scheduler) as client:  # the nanny restarted the worker: two again, one of them new
        client.wait_for_workers(2, timeout=30)
        after = client.run(os.getpid)
    assert killed[0] not in after.values() and len(after) == 2


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_scheduler_is_a_clear_error(tmp_path, monkeypatch):
    """Nothing listens at the address: exit 2 naming it, no traceback, no output replaced."""
    from plancheck.execution import cluster

    monkeypatch.setattr(cluster, "CONNECT_TIMEOUT", 1)
    address = f"tcp://127.0.0.1:{free_port()}"
    out = tmp_path / "findings.jsonl"
    out.write_text("yesterday's findings\n")
    started = time.monotonic()
    result = plancheck("batch", str(ROOT / "samples" / "payroll-2026.csv"), "--cluster", address, "--out", str(out),
                       "--rejects", str(tmp_path / "r.csv"))
    assert result.returncode == 2 and time.monotonic() - started < 15
    assert result.stderr.startswith(f"error: {address}: cannot reach the Dask scheduler") and "Traceback" not in result.stderr
    assert out.read_text() == "yesterday's findings\n"


def test_without_the_extra_cluster_says_how_to_install_it(tmp_path, monkeypatch):
    """`distributed` not importable: exit 2 naming the extra to install."""
    monkeypatch.setitem(sys.modules, "distributed", None)
    result = plancheck("batch", str(ROOT / "samples" / "payroll-2026.csv"), "--cluster", "local:2", "--out",
                       str(tmp_path / "o.jsonl"), "--rejects", str(tmp_path / "r.csv"))
    assert result.returncode == 2 and "pip install 'plancheck[dask]'" in result.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--cluster", "local:zero"], "expected local:N"),
    (["--work-dir", "/tmp"], "goes with --cluster"),
    (["--cluster", "local:2", "--workers", "2"], "give --workers or --cluster"),
])
def test_cluster_options_are_checked_before_any_work(args, message, tmp_path):
    """A malformed --cluster, --work-dir alone, or --workers with --cluster: exit 2 with a message."""
    result = plancheck("batch", str(ROOT / "samples" / "payroll-2026.csv"), *args, "--out", str(tmp_path / "o.jsonl"),
                       "--rejects", str(tmp_path / "r.csv"))
    assert result.returncode == 2 and message in result.stderr and not (tmp_path / "o.jsonl").exists()


def test_workers_that_load_other_rules_stop_the_run_before_any_work(scheduler, tmp_path, monkeypatch):
    """The rules a worker loads hash to another revision than the client's (another plancheck, a changed file):
    exit 2 saying the workers could not build the checker."""
    from plancheck.checks.batch import tasks

    files = tasks.rules_files

    def changed(rules_dir):
        rules = files(rules_dir)
        name = next(n for n in sorted(rules) if n.startswith("checks/"))
        return {**rules, name: rules[name] + b"\n# changed on the worker\n"}

    monkeypatch.setattr(tasks, "rules_files", changed)
    result = plancheck("batch", str(ROOT / "samples" / "payroll-2026.csv"), "--cluster", scheduler, "--out",
                       str(tmp_path / "o.jsonl"), "--rejects", str(tmp_path / "r.csv"))
    assert result.returncode == 2 and "the workers could not build the checker" in result.stderr
    assert "rules revision" in result.stderr and "Traceback" not in result.stderr
