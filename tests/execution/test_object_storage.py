"""Feeds on object storage: `plancheck batch s3://bucket/feed.csv` reads the feed where it lies.

The store is a real S3 server on loopback (moto's, spoken to over HTTP by s3fs, as any S3
endpoint would be), configured the way an administrator configures S3: the AWS environment
variables. Runs that start worker processes are run as a subprocess, so that the workers
inherit that environment as they would on a real machine.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, plancheck, s3_endpoint
from helpers.feeds import feed_with_bad_rows

pytest.importorskip("s3fs", reason="the object-storage tests need s3fs (the dev extra)")
moto_server = pytest.importorskip("moto.server", reason="the object-storage tests need moto[server] (the dev extra)")

from plancheck.documents.feed import reader  # noqa: E402
from plancheck.documents.feed.source import Source  # noqa: E402

BUCKET = "payroll"
FINDING_EVENTS = ("violation", "warning", "notice")
#: batch_summary fields that describe the run rather than the feed's content.
RUN_FIELDS = {"seconds", "rows_per_second", "phases", "peak_memory_mb", "workers", "cluster", "rejects_file",
              "run_id", "ruleset_revision", "feed"}

pytestmark = pytest.mark.slow  # a loopback S3 endpoint (moto) and batches through it: not in the fast tier (pytest -m 'not slow')


@pytest.fixture(scope="module")
def s3():
    """A real S3 endpoint on loopback with one bucket; yields the environment that reaches it."""
    yield from s3_endpoint((BUCKET,))


def upload(local: Path, key: str) -> str:
    import fsspec

    url = f"s3://{BUCKET}/{key}"
    fs = fsspec.filesystem("s3")
    fs.put_file(str(local), url)
    fs.invalidate_cache()
    return url


#: The command line in a fresh process, cutting a small feed into many partitions and ranges (as the
#: small_partitions fixture of test_batch.py and test_cluster.py does in-process).
SMALL_PARTITIONS = """import sys
from plancheck.execution import partition
from plancheck.documents.feed import reader
from plancheck.cli import run

partition.PARTITION_BYTES, partition.PARTITION_ROWS, reader.MIN_RANGE_CHUNK = 12_000, 150, 4096
sys.exit(run(sys.argv[1:]))
"""


def cli(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """`plancheck ...` in a fresh process with this process's environment (the S3 settings among it), or `env`."""
    return subprocess.run([sys.executable, "-c", SMALL_PARTITIONS, *args, "--plans", str(ROOT / "plans")],
                          capture_output=True, text=True, cwd=cwd, env=env or dict(os.environ), timeout=300)


def outputs(folder: Path) -> tuple[list[bytes], bytes, dict]:
    lines = (folder / "findings.jsonl").read_bytes().splitlines()
    events = [json.loads(line) for line in lines]
    findings = [line for line, event in zip(lines, events) if event["event"] in FINDING_EVENTS]
    summary = next(e for e in events if e["event"] == "batch_summary")
    return findings, (folder / "rejects.csv").read_bytes(), summary


def same(local: tuple, remote: tuple) -> None:
    """Byte-identical findings (but for the run id, made from the feed's name and version) and rejects; the same counts."""
    run_ids = {json.loads(line)["run_id"] for line in local[0]} | {json.loads(line)["run_id"] for line in remote[0]}
    assert len(run_ids) == 2
    unmarked = lambda lines: [line.replace(json.loads(line)["run_id"].encode(), b"RUN") for line in lines]  # noqa: E731
    assert unmarked(remote[0]) == unmarked(local[0]) and local[0], "findings differ"
    assert remote[1] == local[1] and local[1].count(b"\n") > 5, "rejects differ"
    strip = lambda summary: {k: v for k, v in summary.items() if k not in RUN_FIELDS}  # noqa: E731
    assert strip(remote[2]) == strip(local[2])


@pytest.mark.parametrize("kind", ["csv", "parquet"])
def test_ranges_and_records_read_from_the_store_are_the_local_files(kind, s3, tmp_path, plans, monkeypatch):
    """Every range (CSV byte ranges, Parquet row groups) reads the same records, lines and rejects from S3."""
    monkeypatch.setattr(reader, "MIN_RANGE_CHUNK", 4096)
    local = feed_with_bad_rows(tmp_path / f"feed.{kind}", plans, 21,
                               parquet_row_group=300 if kind == "parquet" else None)
    url = upload(local, f"ranges/feed.{kind}")

    def read(where):
        feed = reader.open_feed(where)
        spans = feed.ranges(5)
        tables = [batch.to_pylist() for span in spans for batch in feed.range_batches(span)]
        return spans, tables, feed.bad_rows, feed.header, feed.size_bytes

    here, there = read(local), read(url)
    assert len(here[0]) > 2 and there == here


def test_a_batch_of_a_feed_on_s3_is_the_local_batch_byte_for_byte(s3, tmp_path, plans):
    """Two worker processes reading byte ranges of an S3 object: the same findings, rejects and counts as the file."""
    local_feed = feed_with_bad_rows(tmp_path / "nightly.csv", plans, 22, employees=240)
    url = upload(local_feed, "feeds/2026-11-23/nightly.csv")
    for name, feed in (("local", str(local_feed)), ("remote", url)):
        (tmp_path / name).mkdir()
        result = cli("batch", feed, "--workers", "2", "--out", "findings.jsonl", "--rejects", "rejects.csv",
                     cwd=tmp_path / name)
        assert result.returncode == 1, result.stderr
    local, remote = outputs(tmp_path / "local"), outputs(tmp_path / "remote")
    same(local, remote)
    assert remote[2]["feed"] == url and remote[2]["workers"] == 2 and remote[2]["partitions"] > 8


def test_the_default_rejects_file_is_named_after_the_object(s3, tmp_path, plans):
    url = upload(feed_with_bad_rows(tmp_path / "feed.csv", plans, 23), "feeds/acme-2026-11.csv")
    result = plancheck("batch", url, "--workers", "1", "--out", str(tmp_path / "events.jsonl"), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert (tmp_path / "acme-2026-11.rejects.csv").read_text().count("\n") > 5


def test_a_parquet_feed_on_s3_on_a_local_dask_cluster_with_an_s3_work_dir(s3, tmp_path, plans):
    """Feed and work directory on S3: no path is shared; the output is the local run's, the work dir is emptied."""
    pytest.importorskip("distributed")
    local_feed = feed_with_bad_rows(tmp_path / "feed.parquet", plans, 24, employees=240, parquet_row_group=500)
    url = upload(local_feed, "feeds/feed.parquet")
    (tmp_path / "local").mkdir()
    (tmp_path / "cluster").mkdir()
    result = cli("batch", str(local_feed), "--workers", "2", "--out", "findings.jsonl", "--rejects", "rejects.csv",
                 cwd=tmp_path / "local")
    assert result.returncode == 1, result.stderr
    result = cli("batch", url, "--cluster", "local:2", "--work-dir", f"s3://{BUCKET}/work", "--out", "findings.jsonl",
                 "--rejects", "rejects.csv", cwd=tmp_path / "cluster")
    assert result.returncode == 1, result.stderr
    assert f"work dir s3://{BUCKET}/work/plancheck-run-" in result.stderr
    same(outputs(tmp_path / "local"), outputs(tmp_path / "cluster"))
    import fsspec

    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    assert not fs.exists(f"{BUCKET}/work") or not fs.ls(f"{BUCKET}/work")


def read_object(url: str) -> bytes:
    import fsspec

    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    return fs.cat_file(url)


def object_exists(url: str) -> bool:
    import fsspec

    fs = fsspec.filesystem("s3")
    fs.invalidate_cache()
    return fs.exists(url)


def test_findings_and_rejects_written_to_s3_are_the_local_files(s3, tmp_path, plans):
    """--out and --rejects as URLs: the objects hold exactly what the local files hold (same feed, same run id)."""
    feed = feed_with_bad_rows(tmp_path / "feed.csv", plans, 26)
    local = plancheck("batch", str(feed), "--workers", "1", "--out", str(tmp_path / "findings.jsonl"),
                      "--rejects", str(tmp_path / "rejects.csv"), cwd=tmp_path)
    out, rejects = f"s3://{BUCKET}/out/2026-11-23/findings.jsonl", f"s3://{BUCKET}/out/2026-11-23/rejects.csv"
    remote = plancheck("batch", str(feed), "--workers", "1", "--out", out, "--rejects", rejects, cwd=tmp_path)
    assert local.returncode == remote.returncode == 1, remote.stderr
    strip = lambda data: [line for line in data.splitlines() if b'"batch_summary"' not in line]  # noqa: E731
    assert strip(read_object(out)) == strip((tmp_path / "findings.jsonl").read_bytes()) and strip(read_object(out))
    assert read_object(rejects) == (tmp_path / "rejects.csv").read_bytes()
    summary = json.loads(read_object(out).splitlines()[-1])
    assert summary["event"] == "batch_summary" and summary["rejects_file"] == rejects


def test_a_run_that_fails_leaves_no_object_behind(s3, tmp_path):
    """The feed cannot be read: exit 2, and neither output object appears (nor does an old one change)."""
    out = f"s3://{BUCKET}/failed/findings.jsonl"
    import fsspec

    fsspec.filesystem("s3").pipe_file(f"s3://{BUCKET}/failed/rejects.csv", b"yesterday's rejects\n")
    result = plancheck("batch", f"s3://{BUCKET}/no/such/feed.csv", "--out", out, "--rejects",
                       f"s3://{BUCKET}/failed/rejects.csv", cwd=tmp_path)
    assert result.returncode == 2 and "feed file not found" in result.stderr, result.stderr
    assert not object_exists(out)
    assert read_object(f"s3://{BUCKET}/failed/rejects.csv") == b"yesterday's rejects\n"


@pytest.mark.parametrize(("out", "message"), [
    ("s3://no-such-bucket/findings.jsonl", "--out: no-such-bucket does not exist"),
    (f"s3://{BUCKET}/inputs/feed.csv", "--out: is an input of this run"),
    (f"s3://{BUCKET}/out/", "--out: is a folder"),
])
def test_an_output_url_that_cannot_be_written_is_refused_before_any_work(out, message, s3, tmp_path, plans):
    upload(feed_with_bad_rows(tmp_path / "feed.csv", plans, 27), "inputs/feed.csv")
    result = plancheck("batch", f"s3://{BUCKET}/inputs/feed.csv", "--out", out, "--rejects",
                       str(tmp_path / "r.csv"), cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not (tmp_path / "r.csv").exists()


def test_two_outputs_at_one_url_are_refused(s3, tmp_path, plans):
    feed = feed_with_bad_rows(tmp_path / "feed.csv", plans, 28)
    same = f"s3://{BUCKET}/out/both.jsonl"
    result = plancheck("batch", str(feed), "--out", same, "--rejects", same, cwd=tmp_path)
    assert result.returncode == 2 and "--rejects: is the same object as --out" in result.stderr, result.stderr


def test_the_history_hashes_the_object_s_content(s3, tmp_path, plans):
    """A recorded run names the URL as its input, with the SHA-256 of the content (equal to the local file's)."""
    pytest.importorskip("sqlalchemy")
    local_feed = feed_with_bad_rows(tmp_path / "feed.csv", plans, 25)
    url = upload(local_feed, "feeds/recorded.csv")
    db = f"sqlite:///{tmp_path / 'history.db'}"
    result = plancheck("batch", url, "--workers", "1", "--db", db, "--out", str(tmp_path / "events.jsonl"),
                       "--rejects", str(tmp_path / "rejects.csv"), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    shown = plancheck("runs", "--db", db, "--format", "jsonl", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    import hashlib

    runs = [json.loads(line) for line in shown.stdout.splitlines() if line.strip()]
    inputs = next(r for r in runs if r.get("command") == "batch")["inputs"]
    assert inputs == [{"file": url, "sha256": hashlib.sha256(local_feed.read_bytes()).hexdigest(),
                       "bytes": local_feed.stat().st_size}]


def test_yearend_takes_its_contribution_totals_from_a_feed_on_s3(s3, tmp_path):
    """`yearend s3://.../census.csv --feed s3://...` gives what the same files on disk give: the tests, corrections
    and counts."""
    import csv

    from plancheck.documents.feed.reader import COLUMNS

    census = ROOT / "samples" / "census-2026.csv"
    feed = tmp_path / "ytd.csv"
    with census.open() as source, feed.open("w", newline="") as target:
        writer = csv.DictWriter(target, fieldnames=COLUMNS)
        writer.writeheader()
        for row in csv.DictReader(source):  # each participant's year in two pay dates, and one row of no one
            for month in ("06", "12"):
                half = lambda column: f"{float(row[column] or 0) / 2:.2f}"  # noqa: E731 - test data, typed as text
                writer.writerow({"plan_id": row["plan_id"], "employee_id": row["employee_id"],
                                 "birth_date": row["birth_date"], "pay_date": f"2026-{month}-15",
                                 "compensation": half("compensation"), "pretax": half("pretax"), "roth": half("roth"),
                                 "after_tax": half("after_tax"), "employer_match": half("employer_match"),
                                 "employer_nonelective": half("employer_nonelective")})
        writer.writerow({"plan_id": "acme-mega-backdoor", "employee_id": "NOBODY", "birth_date": "1980-01-01",
                         "pay_date": "2026-06-15", "compensation": "1000", "pretax": "10", "roth": "0",
                         "after_tax": "0", "employer_match": "0", "employer_nonelective": "0"})
    url = upload(feed, "yearend/ytd.csv")
    census_url = upload(census, "yearend/census-2026.csv")
    answers = []
    for census_at, where in ((str(census), str(feed)), (census_url, url)):
        result = plancheck("yearend", census_at, "--feed", where, "--out", str(tmp_path / "out.jsonl"),
                           "--rejects", str(tmp_path / "census.rejects.csv"), cwd=tmp_path)
        assert result.returncode in (0, 1), result.stderr
        events = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
        summary = events[-1]
        assert summary["event"] == "yearend_run_summary" and summary["feed"]["feed"] == where
        assert summary["census"] == census_at
        del summary["feed"]["feed"], summary["census"], summary["seconds"], summary["rows_per_second"]
        answers.append((events, (tmp_path / "ytd.rejects.csv").read_text()))
    assert answers[0] == answers[1]
    feed_counts = answers[0][0][-1]["feed"]
    assert (feed_counts["rows_read"], feed_counts["rows_checked"], feed_counts["rows_rejected"]) == (31, 30, 1)
    assert "NOBODY" in answers[0][1]


@pytest.mark.parametrize(("where", "message"), [
    (f"s3://{BUCKET}/no/such/feed.csv", "feed file not found"),
    ("nosuchprotocol://bucket/feed.csv", "cannot use this URL"),
])
def test_a_feed_url_that_cannot_be_read_is_a_clear_input_error(where, message, s3, tmp_path):
    result = plancheck("batch", where, "--workers", "1", "--out", str(tmp_path / "e.jsonl"),
                       "--rejects", str(tmp_path / "r.csv"), cwd=tmp_path)
    assert result.returncode == 2 and message in result.stderr and where in result.stderr, result.stderr
    assert not (tmp_path / "e.jsonl").exists() and not (tmp_path / "r.csv").exists()


def test_file_urls_are_the_local_path(tmp_path):
    source = Source.of(f"file://{tmp_path}/a%20b.csv")
    assert source.local == tmp_path / "a b.csv" and source.url is None
    remote = Source.of("s3://bucket/feeds/nightly.2026.csv")
    assert (remote.name, remote.stem, remote.suffix, str(remote)) == (
        "nightly.2026.csv", "nightly.2026", ".csv", "s3://bucket/feeds/nightly.2026.csv")


def test_a_feed_url_without_credentials_is_a_clear_input_error(s3, tmp_path, plans):
    """No AWS credentials in the environment (nor an instance role to find): exit 2 naming the URL and the store's
    reason, no traceback, no output written."""
    url = upload(feed_with_bad_rows(tmp_path / "feed.csv", plans, 29), "feeds/credentials.csv")
    env = {k: v for k, v in os.environ.items() if k not in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    env.update(AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "none"),
               AWS_CONFIG_FILE=str(tmp_path / "none"))
    result = cli("batch", url, "--out", "findings.jsonl", "--rejects", "rejects.csv", cwd=tmp_path, env=env)
    assert result.returncode == 2, result.stderr
    assert f"error: {url}: cannot reach it: Unable to locate credentials" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "findings.jsonl").exists()


def test_an_object_replaced_while_the_batch_reads_it_stops_the_run(s3, tmp_path, plans):
    """A new version of the object uploaded once the first rows are read: its ETag is not the one the run opened."""
    from plancheck.checks.batch.run import run_batch
    from plancheck.errors import InputError
    from plancheck.sinks import events
    from plancheck.sinks.batch import BatchFiles

    local = feed_with_bad_rows(tmp_path / "feed.csv", plans, 36)
    url = upload(local, "feeds/replaced.csv")
    replaced: list[bool] = []

    def replace(_rows: int) -> None:
        if not replaced:
            changed = tmp_path / "changed.csv"
            changed.write_bytes(local.read_bytes().replace(b"2024-", b"2025-", 1))
            upload(changed, "feeds/replaced.csv")
            replaced.append(True)

    events.configure(io.BytesIO())
    with (tmp_path / "r.csv").open("wb") as handle, pytest.raises(InputError, match="the feed changed"):
        run_batch(url, ROOT / "plans", ROOT / "rules", 1, BatchFiles(handle), "r.csv", on_read=replace)
    assert replaced


def test_the_report_of_a_run_goes_to_object_storage(s3, tmp_path, plans):
    """`batch --html URL --xlsx URL` and `report RUN --html URL`: the objects are the report and the workbook."""
    pytest.importorskip("sqlalchemy")
    feed = feed_with_bad_rows(tmp_path / "feed.csv", plans, 37)
    db = f"sqlite:///{tmp_path / 'history.db'}"
    html, xlsx = f"s3://{BUCKET}/reports/night.html", f"s3://{BUCKET}/reports/night.xlsx"
    result = plancheck("batch", str(feed), "--workers", "1", "--db", db, "--html", html, "--xlsx", xlsx,
                       "--out", str(tmp_path / "events.jsonl"), "--rejects", str(tmp_path / "r.csv"), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    page = read_object(html)
    assert page.lstrip().lower().startswith(b"<!doctype html") and b"</html>" in page[-200:]
    assert read_object(xlsx)[:2] == b"PK"  # a workbook is a zip file
    run = json.loads((tmp_path / "events.jsonl").read_text().splitlines()[-1])["history_run"]
    again = f"s3://{BUCKET}/reports/again.html"
    result = plancheck("report", str(run), "--db", db, "--html", again, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert read_object(again).lstrip().lower().startswith(b"<!doctype html")
    bad = plancheck("report", str(run), "--db", db, "--html", "s3://no-such-bucket/r.html", cwd=tmp_path)
    assert bad.returncode == 2 and "no-such-bucket does not exist" in bad.stderr
