"""The run history under faults: a damaged, locked, read-only, half-built or newer database, a PostgreSQL
server restarted under the batch, hostile fingerprints and run numbers.

Each case keeps the promise of docs/nothing-lost.md: exit status 2 with one line on stderr naming the
database, what is wrong and what to do; never a traceback; no earlier output changed. Each test
makes the fault first; the PostgreSQL cases run on a server of their own (restarted by the tests),
skipped, saying why, where no server binary is installed.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, pg, plancheck

FEED = ROOT / "samples" / "payroll-2026.csv"
_names = itertools.count()


@pytest.fixture(scope="module")
def postgres():
    """A server of this module's own: the tests restart it."""
    if pg.server_binaries() is None:
        pytest.skip("no PostgreSQL server binary (initdb, pg_ctl) on this machine: PostgreSQL fault tests skipped")
    server = pg.Server()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    """A fresh, empty history database."""
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite")
    return request.getfixturevalue("postgres").create(f"faults_{next(_names)}")


def _one_error_line(result, *naming: str) -> str:
    """Exit status 2, exactly one line on stderr (an `error:` naming each of `naming`), no traceback."""
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for name in naming:
        assert name in lines[0], lines[0]
    return lines[0]


def _batch_args(tmp_path: Path, db: str) -> list:
    return ["batch", FEED, "--out", tmp_path / "night.jsonl", "--rejects", tmp_path / "night.rejects.csv",
            "--workers", "1", "--db", db]


def _finding(employee: str, year: int = 2026) -> dict:
    return {"event": "violation", "rule": "402g-deferral-limit", "severity": "error", "plan_id": "p",
            "employee_id": employee, "year": year, "amount": "24000.00", "limit": "23500.00", "excess": "500.00"}


def _record(store, findings: list[dict]) -> dict:
    from plancheck.history.recording import HistoryRun, scope_of

    run = HistoryRun(store, "batch", scope_of("batch", ["p"], None), []).start("test")
    events = [run.finding(f) for f in findings]
    summary = run.close([("p", 2026)])
    run.finish({"event": "batch_summary", **summary}, 1)
    return summary | {"events": events, "run": run.id}


# -- a damaged SQLite file -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    """An SQLite history holding one batch run of the sample feed."""
    tmp = tmp_path_factory.mktemp("recorded")
    result = plancheck(*_batch_args(tmp, str(tmp / "history.sqlite")))
    assert result.returncode in (0, 1), result.stderr
    with sqlite3.connect(tmp / "history.sqlite") as connection:  # one file: the WAL written back into it
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return tmp / "history.sqlite"


@pytest.fixture(scope="module")
def fingerprint(recorded) -> str:
    """A fingerprint recorded in `recorded`."""
    with sqlite3.connect(recorded) as connection:
        found = connection.execute("SELECT fingerprint FROM findings LIMIT 1").fetchone()[0]
    connection.close()
    return found


def _damaged(kind: str, recorded: Path, to: Path) -> Path:
    """A history file damaged as disks and people damage them."""
    if kind == "garbage":
        to.write_bytes(os.urandom(5000))
    elif kind == "text":
        to.write_text("not a database\n")
    elif kind == "truncated":
        shutil.copyfile(recorded, to)
        os.truncate(to, recorded.stat().st_size // 2)
    elif kind == "overwritten":
        # Every page but the schema's and alembic_version's: the revision reads, the runs do not.
        shutil.copyfile(recorded, to)
        with sqlite3.connect(to) as connection:
            page = connection.execute("PRAGMA page_size").fetchone()[0]
            keep = {1, connection.execute("SELECT rootpage FROM sqlite_master WHERE name = 'alembic_version'")
                    .fetchone()[0]}
        connection.close()
        with to.open("r+b") as handle:
            for number in range(2, to.stat().st_size // page + 1):
                if number not in keep:
                    handle.seek((number - 1) * page)
                    handle.write(os.urandom(page))
    return to


DAMAGES = ["garbage", "text", "truncated", "overwritten"]


@pytest.mark.parametrize("kind", DAMAGES)
@pytest.mark.parametrize("command", [["runs"], ["runs", "show", "1"], ["runs", "diff", "1", "1"],
                                     ["report", "1", "--html", "REPORT"], ["ack", "0123456789abcdef", "--reason", "x"],
                                     ["db", "upgrade"]])
def test_a_damaged_sqlite_file_is_one_line_exit_2_for_every_history_command(kind, command, recorded, tmp_path):
    damaged = _damaged(kind, recorded, tmp_path / "history.sqlite")
    before = damaged.read_bytes()
    args = [tmp_path / "report.html" if a == "REPORT" else a for a in command]
    line = _one_error_line(plancheck(*args, "--db", damaged), str(damaged), "damaged")
    assert "backup" in line
    assert not (tmp_path / "report.html").exists()
    assert damaged.read_bytes() == before, "a damaged history is never written to"


@pytest.mark.parametrize("kind", DAMAGES)
def test_a_batch_on_a_damaged_sqlite_file_stops_before_the_work_and_leaves_the_outputs(kind, recorded, tmp_path,
                                                                                        monkeypatch):
    from plancheck.checks.batch import run

    damaged = _damaged(kind, recorded, tmp_path / "history.sqlite")
    (tmp_path / "night.jsonl").write_text("last night's findings\n")
    (tmp_path / "night.rejects.csv").write_text("last night's rejects\n")

    def ran(*_args, **_kwargs):
        raise AssertionError("the batch read the feed although its history cannot record it")

    monkeypatch.setattr(run, "run_batch", ran)
    _one_error_line(plancheck(*_batch_args(tmp_path, str(damaged))), str(damaged), "damaged")
    assert (tmp_path / "night.jsonl").read_text() == "last night's findings\n"
    assert (tmp_path / "night.rejects.csv").read_text() == "last night's rejects\n"


def _findings_damaged(recorded: Path, to: Path) -> Path:
    """A copy of `recorded` whose findings table (only) is overwritten with random bytes."""
    shutil.copyfile(recorded, to)
    with sqlite3.connect(to) as connection:
        try:
            pages = [n for (n,) in connection.execute("SELECT pageno FROM dbstat WHERE name = 'findings'")]
        except sqlite3.OperationalError:
            pytest.skip("this SQLite has no dbstat table to find the findings' pages")
        size = connection.execute("PRAGMA page_size").fetchone()[0]
    connection.close()
    with to.open("r+b") as handle:
        for number in pages:
            handle.seek((number - 1) * size)
            handle.write(os.urandom(size))
    return to


def test_damaged_findings_of_a_small_history_stop_the_batch_before_the_work(recorded, tmp_path, monkeypatch):
    from plancheck.checks.batch import run

    db = _findings_damaged(recorded, tmp_path / "history.sqlite")

    def ran(*_args, **_kwargs):
        raise AssertionError("the batch read the feed although its history cannot record it")

    monkeypatch.setattr(run, "run_batch", ran)
    _one_error_line(plancheck(*_batch_args(tmp_path, str(db))), str(db), "damaged")


def test_damaged_findings_of_a_large_history_are_met_as_they_stream_and_leave_the_outputs(recorded, tmp_path,
                                                                                         monkeypatch):
    """A history above VERIFY_WHOLE_BYTES is checked before the work but for the findings of earlier runs: damage
    there (as damage appearing during the night) is met when the run first reads the night before: exit 2, the
    outputs of the night before stay as they were, nothing recorded."""
    from plancheck.history import schema

    db = _findings_damaged(recorded, tmp_path / "history.sqlite")
    monkeypatch.setattr(schema, "VERIFY_WHOLE_BYTES", 0)
    (tmp_path / "night.jsonl").write_text("last night's findings\n")
    _one_error_line(plancheck(*_batch_args(tmp_path, str(db))), str(db), "damaged")
    assert (tmp_path / "night.jsonl").read_text() == "last night's findings\n"
    assert not (tmp_path / "night.rejects.csv").exists()
    assert len(plancheck("runs", "--db", db, "--format", "jsonl").stdout.splitlines()) == 1, "the run is not recorded"


@pytest.mark.parametrize("kind", ["overwritten", "garbage"])
def test_a_large_history_is_still_checked_but_for_its_findings_before_the_work(kind, recorded, tmp_path,
                                                                                monkeypatch):
    from plancheck.checks.batch import run
    from plancheck.history import schema

    damaged = _damaged(kind, recorded, tmp_path / "history.sqlite")
    monkeypatch.setattr(schema, "VERIFY_WHOLE_BYTES", 0)

    def ran(*_args, **_kwargs):
        raise AssertionError("the batch read the feed although its history cannot record it")

    monkeypatch.setattr(run, "run_batch", ran)
    _one_error_line(plancheck(*_batch_args(tmp_path, str(damaged))), str(damaged), "damaged")


@pytest.mark.parametrize("damage, command", [
    ("UPDATE findings SET event = '{\"event\": \"viol'", ["runs", "show", "1"]),
    ("UPDATE findings SET event = 'not json'", ["report", "1", "--html", "REPORT"]),
    ("UPDATE runs SET counts = '{broken'", ["runs"]),
    ("UPDATE runs SET inputs = '[{'", ["runs", "diff", "1", "1"]),
])
def test_a_stored_record_that_is_not_json_is_one_line_exit_2(damage, command, db, tmp_path):
    """Damage SQLite cannot see (a record edited by hand, or half written by another tool)."""
    import sqlalchemy as sa

    from plancheck.history.store import Store

    if db.startswith("postgresql") and "UPDATE runs" in damage:
        pytest.skip("PostgreSQL's json columns refuse what is not JSON")
    store = Store(db).ready()
    _record(store, [_finding("E1")])
    with store.engine.begin() as connection:
        connection.execute(sa.text(damage))
    args = [tmp_path / "report.html" if a == "REPORT" else a for a in command]
    _one_error_line(plancheck(*args, "--db", db), "damaged", "not JSON")
    assert not (tmp_path / "report.html").exists()


@pytest.mark.parametrize("command", ["batch", "election", "withdrawals", "audit", "yearend"])
def test_a_history_that_fails_as_the_run_ends_leaves_the_outputs(command, tmp_path, monkeypatch):
    """The database fails when the run's end is recorded (locked past the wait, say): exit 2, and --out is the
    night before's, not a file the history does not know."""
    import sqlalchemy as sa

    from plancheck.history.faults import database_problem
    from plancheck.history.recording import HistoryRun

    def locked(run, *_args):
        raise database_problem(run.store.engine, sa.exc.OperationalError("UPDATE runs", {}, Exception(
            "database is locked")))

    monkeypatch.setattr(HistoryRun, "finish", locked)
    out = tmp_path / "out.jsonl"
    out.write_text("the night before\n")
    samples = ROOT / "samples"
    args = {"batch": _batch_args(tmp_path, "h")[:-2],
            "election": ["election", samples / "elections" / "acme-high-earner-2026.yaml", "--plan",
                         ROOT / "plans" / "acme-mega-backdoor.yaml"],
            "withdrawals": ["withdrawals", samples / "withdrawals.yaml"],
            "audit": ["audit"],
            "yearend": ["yearend", samples / "census-2026.csv", "--year", "2026", "--rejects", tmp_path / "r.csv"]}
    args[command] = [a for a in args[command] if a not in ("--out", tmp_path / "night.jsonl")]
    result = plancheck(*args[command], "--out", out, "--db", tmp_path / "history.sqlite")
    _one_error_line(result, "locked")
    assert out.read_text() == "the night before\n"
    assert plancheck("runs", "--db", tmp_path / "history.sqlite", "--format", "jsonl").stdout == ""


@pytest.mark.parametrize("command", ["batch", "audit", "yearend"])
def test_a_history_that_fails_while_the_report_is_written_leaves_the_outputs(command, tmp_path, monkeypatch):
    """--html reads the run back from the history; the database failing then is exit 2 with --out the night
    before's and no report."""
    import sqlalchemy as sa

    from plancheck.history.faults import database_problem
    from plancheck.history.store import Store

    def lost(store, *_args):
        raise database_problem(store.engine, sa.exc.OperationalError("SELECT", {}, Exception(
            "server closed the connection unexpectedly")))

    monkeypatch.setattr(Store, "resolved", lost)
    out = tmp_path / "out.jsonl"
    out.write_text("the night before\n")
    args = {"batch": [a for a in _batch_args(tmp_path, "h")[:-2] if a not in ("--out", tmp_path / "night.jsonl")],
            "audit": ["audit"],
            "yearend": ["yearend", ROOT / "samples" / "census-2026.csv", "--year", "2026", "--rejects",
                        tmp_path / "r.csv"]}[command]
    result = plancheck(*args, "--out", out, "--html", tmp_path / "report.html", "--db", tmp_path / "history.sqlite")
    _one_error_line(result, "lost its connection")
    assert out.read_text() == "the night before\n"
    assert not (tmp_path / "report.html").exists()
    assert plancheck("runs", "--db", tmp_path / "history.sqlite", "--format", "jsonl").stdout == ""


def test_a_directory_given_as_the_database_is_exit_2(tmp_path):
    folder = tmp_path / "history.sqlite"
    folder.mkdir()
    for args in (["runs"], _batch_args(tmp_path, str(folder))[:-2]):
        _one_error_line(plancheck(*args, "--db", folder), str(folder), "directory")
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize("special", ["/dev/null", "/dev/full", "fifo"])
def test_a_device_or_a_pipe_given_as_the_database_is_exit_2(special, tmp_path):
    if special == "fifo":
        special = tmp_path / "fifo"
        os.mkfifo(special)
    _one_error_line(plancheck("runs", "--db", special), str(special), "not a regular file")


def test_a_dangling_symlink_as_the_database_is_refused_not_followed(tmp_path):
    """Followed, it made the link's target folder (anywhere: /nonexistent as root) and a database there."""
    target = tmp_path / "elsewhere" / "deep" / "history.sqlite"
    (tmp_path / "history.sqlite").symlink_to(target)
    _one_error_line(plancheck("runs", "--db", tmp_path / "history.sqlite"), "symbolic link to nothing")
    assert not (tmp_path / "elsewhere").exists()


def test_a_database_under_a_file_is_exit_2(tmp_path):
    (tmp_path / "plain").write_text("x")
    _one_error_line(plancheck("runs", "--db", tmp_path / "plain" / "history.sqlite"), "plain")


def test_an_empty_database_option_is_refused_not_taken_for_the_default(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANCHECK_DB", str(tmp_path / "default.sqlite"))
    for args in (["runs"], _batch_args(tmp_path, "")[:-2]):
        _one_error_line(plancheck(*args, "--db", ""), "--db", "give")
    assert not (tmp_path / "default.sqlite").exists()


def test_an_empty_file_is_a_new_history(tmp_path):
    """Both sides: a zero-byte file is an empty SQLite database, and becomes a history."""
    (tmp_path / "history.sqlite").write_bytes(b"")
    result = plancheck(*_batch_args(tmp_path, str(tmp_path / "history.sqlite")))
    assert result.returncode in (0, 1), result.stderr


# -- locked and read-only ----------------------------------------------------------------------------------


def test_a_locked_sqlite_history_is_exit_2_before_the_work(recorded, fingerprint, tmp_path, monkeypatch):
    from plancheck.history import store

    monkeypatch.setattr(store, "BUSY_SECONDS", 0.2)
    db = tmp_path / "history.sqlite"
    shutil.copyfile(recorded, db)
    (tmp_path / "night.jsonl").write_text("last night's findings\n")
    holder = sqlite3.connect(db, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        line = _one_error_line(plancheck(*_batch_args(tmp_path, str(db))), str(db), "locked")
        assert "try again" in line
        _one_error_line(plancheck("ack", fingerprint, "--reason", "x", "--db", db), "locked")
        # Reading is not blocked by a writer (WAL).
        assert plancheck("runs", "--db", db).returncode == 0
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert (tmp_path / "night.jsonl").read_text() == "last night's findings\n"
    assert plancheck(*_batch_args(tmp_path, str(db))).returncode in (0, 1), "once released, the night runs"


def test_a_read_only_sqlite_history_is_exit_2_before_the_work(recorded, fingerprint, tmp_path):
    """A database opened read-only (an SQLite URI with mode=ro, as on a read-only mount): recording is refused at
    once; reading it still works."""
    db = tmp_path / "history.sqlite"
    shutil.copyfile(recorded, db)
    url = f"sqlite:///file:{db}?mode=ro&uri=true"
    (tmp_path / "night.jsonl").write_text("last night's findings\n")
    line = _one_error_line(plancheck(*_batch_args(tmp_path, url)), "read-only")
    assert "writable" in line
    assert (tmp_path / "night.jsonl").read_text() == "last night's findings\n"
    _one_error_line(plancheck("ack", fingerprint, "--reason", "x", "--db", url), "read-only")
    assert plancheck("runs", "--db", url).returncode == 0
    assert not list(tmp_path.glob("file:*")), "a URI is not a folder to make"


def _mounted(mount: str, folder: Path, *args) -> subprocess.CompletedProcess:
    """plancheck run in a mount namespace of its own where `mount` (a shell command, $1 the folder) has been run."""
    return subprocess.run(["unshare", "--mount", "sh", "-c", f'{mount} && shift && exec "$@"', "sh", str(folder),
                           sys.executable, "-m", "plancheck", *map(str, args)], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})


@pytest.fixture()
def mounts(tmp_path):
    """`_mounted`, where this machine lets a test mount filesystems (unshare --mount needs CAP_SYS_ADMIN)."""
    probe = subprocess.run(["unshare", "--mount", "sh", "-c", f'mount -t tmpfs -o size=64k tmpfs "{tmp_path}"'],
                           capture_output=True) if shutil.which("unshare") else None
    if probe is None or probe.returncode != 0:
        pytest.skip("cannot mount a filesystem here (unshare --mount needs CAP_SYS_ADMIN)")
    return _mounted


READ_ONLY = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1"'


def test_a_history_on_a_read_only_filesystem_is_read_but_never_recorded_into(recorded, fingerprint, tmp_path,
                                                                               mounts):
    """An archive on read-only media: `runs`, `runs show`, `report` read it (immutable: SQLite alone cannot open a
    WAL database there); a batch or an ack is exit 2 naming the read-only filesystem."""
    archive = tmp_path / "archive"
    archive.mkdir()
    db = archive / "history.sqlite"
    shutil.copyfile(recorded, db)
    before = db.read_bytes()
    for args in (_batch_args(tmp_path, str(db)), ["ack", fingerprint, "--reason", "x", "--db", db]):
        line = _one_error_line(mounts(READ_ONLY, archive, *args), str(db), "read-only filesystem")
        assert "writable" in line
    assert not (tmp_path / "night.jsonl").exists()
    listed = mounts(READ_ONLY, archive, "runs", "--format", "jsonl", "--db", db)
    assert listed.returncode == 0 and len(listed.stdout.splitlines()) == 1, listed.stderr
    shown = mounts(READ_ONLY, archive, "runs", "show", "1", "--db", db)
    assert shown.returncode == 0 and fingerprint[:12] in shown.stdout, shown.stderr
    reported = mounts(READ_ONLY, archive, "report", "1", "--html", tmp_path / "report.html", "--db", db)
    assert reported.returncode == 0 and (tmp_path / "report.html").stat().st_size > 0, reported.stderr
    assert db.read_bytes() == before


def test_a_history_whose_disk_fills_during_the_night_is_exit_2_and_leaves_the_outputs(recorded, tmp_path, mounts):
    small = tmp_path / "small"
    small.mkdir()
    (tmp_path / "night.jsonl").write_text("last night's findings\n")
    room = recorded.stat().st_size // 1024 + 60  # the history and 60 KiB: less than a night's findings
    fill = f'mount -t tmpfs -o size={room}k tmpfs "$1" && cp "{recorded}" "$1/history.sqlite"'
    result = mounts(fill, small, *_batch_args(tmp_path, str(small / "history.sqlite")))
    line = _one_error_line(result, str(small / "history.sqlite"), "disk is full")
    assert "free space" in line
    assert (tmp_path / "night.jsonl").read_text() == "last night's findings\n"
    assert not (tmp_path / "night.rejects.csv").exists()


# -- half built, newer ---------------------------------------------------------------------------------------


@pytest.fixture()
def failing_migration(monkeypatch):
    """The last step of the last migration fails (a disk that fills, a connection that drops)."""
    import sqlalchemy as sa
    from alembic.operations import Operations

    create_index = Operations.create_index

    def failing(self, name, *args, **kwargs):
        if name == "ix_run_plan_years_cover":
            raise sa.exc.OperationalError("CREATE INDEX", {}, Exception("database or disk is full"))
        return create_index(self, name, *args, **kwargs)

    monkeypatch.setattr(Operations, "create_index", failing)
    return monkeypatch


def _tables(db: str) -> set[str]:
    import sqlalchemy as sa

    from plancheck.history.store import Store

    with Store(db).engine.connect() as connection:
        return set(sa.inspect(connection).get_table_names())


def test_a_first_run_that_fails_part_way_leaves_no_half_built_database(db, tmp_path, failing_migration):
    _one_error_line(plancheck(*_batch_args(tmp_path, db)), "disk is full")
    assert _tables(db) == set(), "the creation is one transaction"
    failing_migration.undo()
    assert plancheck(*_batch_args(tmp_path, db)).returncode in (0, 1), "the next night creates it"
    assert len(plancheck("runs", "--db", db, "--format", "jsonl").stdout.splitlines()) == 1


def test_an_upgrade_that_fails_part_way_leaves_the_previous_version(db, failing_migration):
    from plancheck.history.store import Store

    Store(db).upgrade("0001")
    tables = _tables(db)
    _one_error_line(plancheck("db", "upgrade", "--db", db), "disk is full")
    assert Store(db).revision() == "0001" and _tables(db) == tables
    failing_migration.undo()
    assert plancheck("db", "upgrade", "--db", db).returncode == 0


_RACE = """
import sys, time
import alembic.command
from plancheck.history.store import Store
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
Store(sys.argv[1]).ready()
"""


def test_first_runs_started_together_all_find_one_database(db):
    """Four first runs at the same instant: each takes the creation's lock in turn, and those after the first find
    the database made (before: 'database is locked' at once, or a duplicate table)."""
    import time

    start = time.time() + 4
    racers = [subprocess.Popen([sys.executable, "-c", _RACE, db, str(start)], stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONPATH": str(ROOT / "src")}) for _ in range(4)]
    for racer in racers:
        _, err = racer.communicate(timeout=120)
        assert racer.returncode == 0, err
    assert "runs" in _tables(db)


def test_a_half_built_database_left_by_an_earlier_plancheck_is_built_again(db, tmp_path):
    """Before the creation was one transaction, a failed first run left tables without a revision; empty, they
    are plancheck's own unfinished work, and the next run builds the database again."""
    import sqlalchemy as sa

    from plancheck.history.store import Store

    store = Store(db)
    store.upgrade("0001")
    with store.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM alembic_version"))
    assert plancheck(*_batch_args(tmp_path, db)).returncode in (0, 1)
    assert Store(db).revision() == "0004"


def test_tables_with_rows_but_no_revision_are_refused_not_dropped(db):
    import sqlalchemy as sa

    from plancheck.history.store import Store

    store = Store(db)
    with store.engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE runs (id INTEGER PRIMARY KEY, payroll TEXT)"))
        connection.execute(sa.text("INSERT INTO runs VALUES (1, 'someone else''s')"))
    _one_error_line(plancheck("runs", "--db", db), "not plancheck's history")
    with store.engine.connect() as connection:
        assert connection.execute(sa.text("SELECT payroll FROM runs")).scalar() == "someone else's"


@pytest.mark.parametrize("command", [["db", "upgrade"], ["runs"], ["runs", "show", "1"], ["runs", "diff", "1", "1"],
                                     ["report", "1", "--html", "REPORT"], ["ack", "0123456789abcdef", "--reason", "x"],
                                     ["batch"]])
def test_a_database_from_a_newer_plancheck_says_so(command, db, tmp_path):
    import sqlalchemy as sa

    from plancheck.history.store import Store

    Store(db).ready()
    with Store(db).engine.begin() as connection:
        connection.execute(sa.text("UPDATE alembic_version SET version_num = '0099'"))
    args = _batch_args(tmp_path, db)[:-2] if command == ["batch"] else \
        [tmp_path / "report.html" if a == "REPORT" else a for a in command]
    line = _one_error_line(plancheck(*args, "--db", db), "newer plancheck", "0099", "upgrade plancheck")
    assert "db upgrade" not in line
    with Store(db).engine.connect() as connection:
        assert connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == "0099"
    assert not (tmp_path / "report.html").exists() and not (tmp_path / "night.jsonl").exists()


def test_the_known_revisions_are_the_migrations():
    from alembic.script import ScriptDirectory

    from plancheck.history.schema import REVISIONS, _alembic_config

    script = ScriptDirectory.from_config(_alembic_config(None))
    assert list(REVISIONS) == [r.revision for r in reversed(list(script.walk_revisions()))]


# -- PostgreSQL ------------------------------------------------------------------------------------------------


def test_a_postgresql_restart_between_two_runs_does_not_fail_the_second(postgres):
    """One store (one pool) over two nights, the server restarted between them: the pool's connection is dead,
    and is replaced before use."""
    from plancheck.history.store import Store

    store = Store(postgres.create(f"faults_{next(_names)}")).ready()
    first = _record(store, [_finding("E1"), _finding("E2")])
    postgres.restart()
    second = _record(store, [_finding("E1")])
    assert (second["new"], second["recurring"], second["resolved"]) == (0, 1, 1)
    assert second["previous_run"] == first["run"]


def test_a_postgresql_restart_while_the_batch_reads_the_feed_does_not_fail_the_night(postgres, tmp_path, monkeypatch):
    from plancheck.checks.batch import run

    db = postgres.create(f"faults_{next(_names)}")
    run_batch = run.run_batch

    def restarted_first(*args, **kwargs):
        postgres.restart()
        return run_batch(*args, **kwargs)

    monkeypatch.setattr(run, "run_batch", restarted_first)
    result = plancheck(*_batch_args(tmp_path, db))
    assert result.returncode in (0, 1), result.stderr
    assert len(plancheck("runs", "--db", db, "--format", "jsonl").stdout.splitlines()) == 1


def test_a_postgresql_table_locked_by_another_session_is_exit_2_in_seconds(postgres, tmp_path, monkeypatch):
    """Before, the batch waited for the lock for as long as it was held (all night)."""
    import psycopg

    from plancheck.history import store

    monkeypatch.setattr(store, "BUSY_SECONDS", 0.5)
    db = postgres.create(f"faults_{next(_names)}")
    store.Store(db).ready()
    (tmp_path / "night.jsonl").write_text("last night's findings\n")
    with psycopg.connect(db) as holder:
        holder.execute("LOCK TABLE runs IN ACCESS EXCLUSIVE MODE")
        line = _one_error_line(plancheck(*_batch_args(tmp_path, db)), "locked")
        assert "try again" in line
    assert (tmp_path / "night.jsonl").read_text() == "last night's findings\n"
    assert plancheck(*_batch_args(tmp_path, db)).returncode in (0, 1), "once released, the night runs"


@contextlib.contextmanager
def _closed_port():
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yield port


def test_a_postgresql_server_that_is_down_is_one_line_exit_2(tmp_path):
    with _closed_port() as port:
        url = f"postgresql://nobody@127.0.0.1:{port}/none"
        for args in (["runs"], ["runs", "show", "1"], _batch_args(tmp_path, url)[:-2]):
            line = _one_error_line(plancheck(*args, "--db", url), "127.0.0.1", "cannot be reached")
            assert "nobody@" in line


def test_a_postgresql_database_or_user_that_is_not_there_is_named(postgres):
    missing = _one_error_line(plancheck("runs", "--db", postgres.url("nowhere")), "is not on the server", "createdb")
    assert '"nowhere"' in missing
    _one_error_line(plancheck("runs", "--db", f"postgresql://ghost@127.0.0.1:{postgres.port}/postgres"),
                    "refused the login", "ghost")


def test_a_password_in_the_url_is_not_printed(tmp_path):
    with _closed_port() as port:
        line = _one_error_line(plancheck("runs", "--db", f"postgresql://nobody:s3cret@127.0.0.1:{port}/none"))
    assert "s3cret" not in line


# -- hostile fingerprints and run numbers ---------------------------------------------------------------------


@pytest.mark.parametrize("pattern", ["%%%%%%%%", "________", "%", "_", "0%%%%%%%", "\\%%%%%%%", "[0-9a-f]*%%%"])
def test_ack_acknowledges_only_the_finding_it_names(pattern, db):
    from plancheck.history.store import Store

    store = Store(db).ready()
    recorded = _record(store, [_finding("E1")])  # one finding: any pattern matching everything names it
    fingerprint = recorded["events"][0]["fingerprint"]
    assert not fingerprint.startswith(pattern)
    _one_error_line(plancheck("ack", pattern, "--reason", "wildcard", "--db", db), "FINGERPRINT")
    assert store.acks() == []
    named = plancheck("ack", fingerprint[:8].upper(), "--reason", "named", "--db", db)
    assert named.returncode == 0, named.stderr
    assert [a["fingerprint"] for a in store.acks()] == [fingerprint]


@pytest.mark.parametrize("run", ["99999999999999999999", "9223372036854775808", "2147483648", "0"])
def test_a_run_number_beyond_any_run_is_no_such_run(run, db, tmp_path):
    from plancheck.history.store import Store

    _record(Store(db).ready(), [_finding("E1")])
    for args in (["runs", "show", run], ["runs", "diff", "1", run], ["runs", "diff", run, "1"],
                 ["report", run, "--html", tmp_path / "r.html"]):
        _one_error_line(plancheck(*args, "--db", db), f"no run {run}")
    assert not (tmp_path / "r.html").exists()
    assert plancheck("runs", "show", "1", "--db", db).returncode == 0


def test_a_negative_run_number_is_no_such_run(db):
    from plancheck.history.store import Store

    Store(db).ready()
    _one_error_line(plancheck("runs", "show", "--db", db, "--", "-1"), "no run -1")


def test_a_huge_limit_lists_every_run(db):
    from plancheck.history.store import Store

    store = Store(db).ready()
    _record(store, [_finding("E1")])
    listed = plancheck("runs", "--limit", "99999999999999999999", "--format", "jsonl", "--db", db)
    assert listed.returncode == 0, listed.stderr
    assert len(listed.stdout.splitlines()) == 1


def test_a_report_of_an_empty_history_names_the_run(db, tmp_path):
    _one_error_line(plancheck("report", "1", "--html", tmp_path / "r.html", "--db", db), "no run 1")
    assert not (tmp_path / "r.html").exists()
    assert plancheck("runs", "--db", db).returncode == 0
