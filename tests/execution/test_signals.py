"""A real 2-worker batch killed with SIGTERM and SIGINT: nothing left behind, and a rerun gives the same findings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow  # batches of 20,000-employee feeds interrupted by signals: not in the fast tier (pytest -m 'not slow')


@pytest.fixture(scope="module")
def big_feed(tmp_path_factory) -> Path:
    """520,000 rows: long enough to be caught while spilling with two workers."""
    path = tmp_path_factory.mktemp("feed") / "feed.csv"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "generate_feed.py"), "--employees", "20000",
                    "--plan", "acme-mega-backdoor", "--violations", "0.05", "--shuffle", "--out", str(path)],
                   check=True, capture_output=True)
    return path


def descendants(pid: int) -> set[int]:
    """Every process below `pid`, from /proc (the forkserver, its workers, the resource tracker)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def running(pid: int) -> bool:
    """Alive and not a zombie (a zombie holds nothing and is its parent's to reap)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def start(feed: Path, out_dir: Path, tmpdir: Path) -> subprocess.Popen:
    env = {**os.environ, "TMPDIR": str(tmpdir)}
    return subprocess.Popen([sys.executable, "-m", "plancheck", "batch", str(feed), "--workers", "2",
                             "--out", str(out_dir / "findings.jsonl"), "--rejects", str(out_dir / "rejects.csv")],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_for_spill(tmpdir: Path, process: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(tmpdir.glob("plancheck-run-*/part-*")):
            return
        assert process.poll() is None, "the batch ended before it was interrupted"
        time.sleep(0.02)
    raise AssertionError("no spill file appeared")


def findings(out_dir: Path) -> list[str]:
    """Findings as written, without the run-dependent summary."""
    return [line for line in (out_dir / "findings.jsonl").read_text().splitlines() if "batch_summary" not in line]


@pytest.fixture(scope="module")
def reference(big_feed, tmp_path_factory) -> tuple[list[str], bytes]:
    out = tmp_path_factory.mktemp("reference")
    tmpdir = tmp_path_factory.mktemp("reference-tmp")
    process = start(big_feed, out, tmpdir)
    _, err = process.communicate(timeout=300)
    assert process.returncode == 1, err
    return findings(out), (out / "rejects.csv").read_bytes()


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)], ids=["TERM", "INT"])
def test_a_signal_stops_the_batch_and_leaves_nothing_behind(big_feed, tmp_path, reference, signum, status):
    out, tmpdir = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    tmpdir.mkdir()
    (out / "findings.jsonl").write_text("the old findings\n")
    process = start(big_feed, out, tmpdir)
    wait_for_spill(tmpdir, process)
    children = descendants(process.pid)
    assert len(children) >= 3  # forkserver, two workers
    process.send_signal(signum)
    _, err = process.communicate(timeout=30)
    assert process.returncode == status, err
    assert "Traceback" not in err.decode() and len(err.splitlines()) == 1
    deadline = time.monotonic() + 10
    while any(running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in children if running(pid)], "processes left behind"
    assert list(tmpdir.iterdir()) == []
    assert sorted(p.name for p in out.iterdir()) == ["findings.jsonl"]
    assert (out / "findings.jsonl").read_text() == "the old findings\n"

    rerun = start(big_feed, out, tmpdir)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 1, err
    assert findings(out) == reference[0]
    assert (out / "rejects.csv").read_bytes() == reference[1]
    assert list(tmpdir.iterdir()) == []


def test_a_signal_stops_a_cluster_run_and_leaves_nothing_behind(big_feed, tmp_path):
    """`--cluster local:2` caught mid-run by SIGTERM: tasks cancelled, the LocalCluster's processes gone, no run or
    scratch directory left, the old output kept, exit 143."""
    pytest.importorskip("distributed")
    out, tmpdir = tmp_path / "out", tmp_path / "tmp"
    out.mkdir()
    tmpdir.mkdir()
    (out / "findings.jsonl").write_text("the old findings\n")
    process = subprocess.Popen([sys.executable, "-m", "plancheck", "batch", str(big_feed), "--cluster", "local:2",
                                "--out", str(out / "findings.jsonl"), "--rejects", str(out / "rejects.csv")],
                               cwd=ROOT, env={**os.environ, "TMPDIR": str(tmpdir)}, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    wait_for_spill(tmpdir, process)
    children = descendants(process.pid)
    assert len(children) >= 2  # the two worker processes, at least
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    lines = err.decode().splitlines()
    assert process.returncode == 143, err
    assert lines[0].startswith("cluster: ") and lines[-1].startswith("terminated: stopped") and "Traceback" not in err.decode()
    deadline = time.monotonic() + 10
    while any(running(pid) for pid in children) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in children if running(pid)], "processes left behind"
    assert list(tmpdir.iterdir()) == []
    assert (out / "findings.jsonl").read_text() == "the old findings\n"
