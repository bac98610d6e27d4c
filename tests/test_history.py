"""Run history: recording, new / recurring / resolved across runs, acknowledgements, `runs`, `db upgrade`.

Each test runs against SQLite and against a real PostgreSQL server the tests start themselves
(skipped, saying why, where no server binary is installed).
"""

from __future__ import annotations

import csv
import datetime as dt
import itertools
import json
from collections import Counter
from pathlib import Path

import pytest

import pg
from helpers import ROOT, plancheck

FEED = ROOT / "samples" / "payroll-2026.csv"
_names = itertools.count()


@pytest.fixture(scope="session")
def postgres():
    if pg.server_binaries() is None:
        pytest.skip("no PostgreSQL server binary (initdb, pg_ctl) on this machine: PostgreSQL history tests skipped")
    server = pg.Server()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request, tmp_path) -> str:
    """A fresh, empty history database."""
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite")
    return request.getfixturevalue("postgres").create(f"history_{next(_names)}")


def _events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _findings(events: list[dict]) -> list[dict]:
    return [e for e in events if e["event"] in ("violation", "warning", "notice")]


def _without(rows_of: Path, employees: set[str], to: Path) -> Path:
    """The feed less every row of `employees`."""
    with rows_of.open(newline="") as source, to.open("w", newline="") as target:
        reader = csv.reader(source)
        writer = csv.writer(target, lineterminator="\n")
        header = next(reader)
        writer.writerow(header)
        column = header.index("employee_id")
        writer.writerows(row for row in reader if len(row) <= column or row[column] not in employees)
    return to


def _batch(feed: Path, tmp_path: Path, db: str | None, name: str) -> tuple[int, list[dict]]:
    args = ["batch", feed, "--out", tmp_path / f"{name}.jsonl", "--rejects", tmp_path / f"{name}.rejects.csv",
            "--workers", "1"]
    result = plancheck(*args, *(["--db", db] if db else []))
    assert result.returncode in (0, 1), result.stderr
    return result.returncode, _events(tmp_path / f"{name}.jsonl")


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> list[dict]:
    """The sample feed's findings, from a run that records nothing."""
    tmp = tmp_path_factory.mktemp("baseline")
    _, events = _batch(FEED, tmp, None, "plain")
    assert "status" not in events[0], "without --db the events are unchanged"
    return _findings(events)


def _key(finding: dict) -> tuple:
    return (finding["plan_id"], finding["employee_id"], finding["year"], finding["rule"])


def test_three_runs_new_recurring_resolved(db, tmp_path, baseline):
    by_employee = Counter(f["employee_id"] for f in baseline)
    flagged = sorted(by_employee)
    group_a, group_b = set(flagged[:5]), set(flagged[5:12])
    in_a = {_key(f) for f in baseline if f["employee_id"] in group_a}
    in_b = {_key(f) for f in baseline if f["employee_id"] in group_b}
    everything = {_key(f) for f in baseline}
    assert in_a and in_b and not in_a & in_b

    # Night 1: the whole feed; night 2: group A gone; night 3: group A back, group B gone.
    _, night1 = _batch(FEED, tmp_path, db, "n1")
    _, night2 = _batch(_without(FEED, group_a, tmp_path / "feed2.csv"), tmp_path, db, "n2")
    _, night3 = _batch(_without(FEED, group_b, tmp_path / "feed3.csv"), tmp_path, db, "n3")

    expected = [  # new, recurring, resolved, worked out from the unrecorded run
        (len(everything), 0, 0),
        (0, len(everything - in_a), len(in_a)),
        (len(in_a), len(everything - in_a - in_b), len(in_b)),
    ]
    for night, (new, recurring, resolved) in zip((night1, night2, night3), expected):
        summary = night[-1]
        assert summary["event"] == "batch_summary"
        assert (summary["new"], summary["recurring"], summary["resolved"]) == (new, recurring, resolved)
        statuses = Counter(f["status"] for f in _findings(night))
        assert statuses == Counter({"new": new, "recurring": recurring}) - Counter()

    first_run, third_run = night1[-1]["history_run"], night3[-1]["history_run"]
    for finding in _findings(night3):
        if finding["employee_id"] in group_a:
            assert (finding["status"], finding["first_seen"]) == ("new", third_run)
        else:
            assert (finding["status"], finding["first_seen"]) == ("recurring", first_run)
    # Findings of a recorded run equal the unrecorded run's, less the history fields.
    history_fields = {"fingerprint", "status", "first_seen", "acknowledged"}
    assert [{k: v for k, v in f.items() if k not in history_fields} for f in _findings(night1)] == baseline

    listed = plancheck("runs", "--db", db, "--format", "jsonl")
    assert listed.returncode == 0, listed.stderr
    runs = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [r["run"] for r in runs] == [third_run, night2[-1]["history_run"], first_run]
    assert [(r["new"], r["recurring"], r["resolved"]) for r in runs] == expected[::-1]
    assert runs[0]["inputs"][0]["file"].endswith("feed3.csv") and len(runs[0]["inputs"][0]["sha256"]) == 64

    shown = plancheck("runs", "show", third_run, "--db", db, "--format", "jsonl")
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    assert sum(1 for e in lines if e["event"] == "resolved") == len(in_b)
    assert sum(1 for e in lines if e["event"] in ("violation", "warning", "notice")) == len(everything - in_b)

    diff = plancheck("runs", "diff", night2[-1]["history_run"], third_run, "--db", db, "--format", "jsonl")
    totals = json.loads(diff.stdout.splitlines()[-1])
    assert (totals["added"], totals["removed"]) == (len(in_a), len(in_b))
    text = plancheck("runs", "diff", first_run, third_run, "--db", db)
    assert f"{len(in_b)} removed" in text.stdout


def _one_error_employee(baseline: list[dict]) -> str:
    errors = Counter(f["employee_id"] for f in baseline if f["severity"] == "error")
    return sorted(e for e, n in errors.items() if n == 1)[0]


def test_acknowledged_finding_stops_counting_until_it_expires(db, tmp_path, baseline, monkeypatch):
    from plancheck.history import store

    employee = _one_error_employee(baseline)
    others = {f["employee_id"] for f in baseline} - {employee}
    feed = _without(FEED, others, tmp_path / "one.csv")
    status, events = _batch(feed, tmp_path, db, "a1")
    error = next(f for f in _findings(events) if f["severity"] == "error")
    assert status == 1

    acked = plancheck("ack", error["fingerprint"][:12], "--reason", "corrected by payroll on 3/1",
                      "--until", "2027-01-31", "--db", db)
    assert acked.returncode == 0, acked.stderr
    record = json.loads(acked.stdout)
    assert (record["fingerprint"], record["reason"], record["until"]) == (error["fingerprint"],
                                                                          "corrected by payroll on 3/1", "2027-01-31")
    assert record["acknowledged_by"]

    monkeypatch.setattr(store, "today", lambda: dt.date(2027, 1, 31))
    status, events = _batch(feed, tmp_path, db, "a2")
    assert status == 0, "the one error finding is acknowledged"
    again = next(f for f in _findings(events) if f["fingerprint"] == error["fingerprint"])
    assert again["acknowledged"] is True and again["status"] == "recurring"
    assert events[-1]["acknowledged"] == 1

    monkeypatch.setattr(store, "today", lambda: dt.date(2027, 2, 1))
    status, events = _batch(feed, tmp_path, db, "a3")
    assert status == 1, "the acknowledgement expired"
    assert events[-1]["acknowledged"] == 0
    assert store.Store(db).acks()[0]["reason"] == "corrected by payroll on 3/1", "who acknowledged what is kept"


def test_acknowledgement_lapses_when_the_figures_change(db):
    from plancheck.history.recording import HistoryRun, scope_of
    from plancheck.history.store import Store

    history = Store(db).ready()
    finding = {"event": "violation", "rule": "402g-deferral-limit", "severity": "error", "plan_id": "p",
               "employee_id": "E1", "year": 2026, "amount": "24000.00", "limit": "23500.00", "excess": "500.00"}
    scope = scope_of("batch", ["p"], None)
    run = HistoryRun(history, "batch", scope, []).start()
    run.finding(finding)
    run.close(), run.finish({"event": "batch_summary"}, 1)
    history.acknowledge(run.finding(finding)["fingerprint"][:10], "known", None)

    same = HistoryRun(history, "batch", scope, []).start()
    assert same.finding(finding)["acknowledged"] is True and same.unacknowledged_errors == 0
    larger = HistoryRun(history, "batch", scope, []).start()
    assert larger.finding(finding | {"amount": "24100.00", "excess": "600.00"})["acknowledged"] is False
    assert larger.unacknowledged_errors == 1


def test_other_commands_record(db, tmp_path):
    for args in (["audit"], ["withdrawals", ROOT / "samples" / "withdrawals.yaml"],
                 ["yearend", ROOT / "samples" / "census-2026.csv", "--year", "2026", "--rejects", tmp_path / "r.csv"],
                 ["election", ROOT / "samples" / "elections" / "acme-high-earner-2026.yaml",
                  "--plan", ROOT / "plans" / "acme-mega-backdoor.yaml", "--record"]):
        for _ in range(2):
            result = plancheck(*args, "--db", db)
            assert result.returncode in (0, 1), result.stderr
            events = [json.loads(line) for line in result.stdout.splitlines()]
    runs = [json.loads(line) for line in plancheck("runs", "--db", db, "--format", "jsonl").stdout.splitlines()]
    assert [r["command"] for r in runs] == ["election", "election", "yearend", "yearend", "withdrawals",
                                            "withdrawals", "audit", "audit"]
    for second, first in zip(runs[::2], runs[1::2]):
        assert second["new"] == 0 and second["recurring"] == first["new"] == first["findings"], second
    assert events[-1]["recurring"] == events[-1]["findings"]


def test_failed_run_is_not_recorded(db, tmp_path):
    result = plancheck("batch", tmp_path / "missing.csv", "--out", tmp_path / "o.jsonl", "--rejects",
                       tmp_path / "r.csv", "--db", db)
    assert result.returncode == 2
    assert plancheck("runs", "--db", db, "--format", "jsonl").stdout == ""


def test_bad_database_is_exit_2(tmp_path):
    result = plancheck("runs", "--db", "postgresql://nobody@127.0.0.1:1/none")
    assert result.returncode == 2 and "history database" in result.stderr and "Traceback" not in result.stderr


def test_older_database_upgrades_in_place(db, tmp_path):
    from plancheck.history.store import Store, head_revision

    Store(db).upgrade("0001")  # the schema of the first version: no acknowledgements
    refused = plancheck("runs", "--db", db)
    assert refused.returncode == 2 and "plancheck db upgrade" in refused.stderr
    upgraded = plancheck("db", "upgrade", "--db", db)
    assert upgraded.returncode == 0 and "(was 0001)" in upgraded.stdout
    assert Store(db).revision() == head_revision()
    assert plancheck("runs", "--db", db).returncode == 0


def test_sqlite_is_in_wal_mode(tmp_path):
    import sqlalchemy as sa

    from plancheck.history.store import Store

    store = Store(str(tmp_path / "h.sqlite")).ready()
    with store.engine.connect() as connection:
        assert connection.execute(sa.text("PRAGMA journal_mode")).scalar() == "wal"


def test_plancheck_db_environment_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("PLANCHECK_DB", str(tmp_path / "env.sqlite"))
    assert plancheck("audit").returncode in (0, 1)
    assert (tmp_path / "env.sqlite").exists()
    assert len(plancheck("runs", "--format", "jsonl").stdout.splitlines()) == 1


def test_runs_text_output(tmp_path):
    db = str(tmp_path / "h.sqlite")
    first = plancheck("audit", "--db", db)
    second = plancheck("audit", "--db", db)
    assert (first.returncode, second.returncode) == (0, 0)
    listed = plancheck("runs", "--db", db).stdout.splitlines()
    assert listed[0].split()[:3] == ["run", "command", "started"] and len(listed) == 3
    shown = plancheck("runs", "show", "2", "--db", db).stdout
    assert shown.startswith("Run 2: audit") and "recurring" in shown and "first seen in run 1" in shown
    assert "0 added, 0 removed, 0 changed" in plancheck("runs", "diff", "1", "2", "--db", db).stdout
    assert plancheck("runs", "show", "9", "--db", db).returncode == 2
    bad = plancheck("ack", "0123", "--reason", "x", "--db", db)
    assert bad.returncode == 2 and "at least 8 characters" in bad.stderr
    assert plancheck("ack", "0" * 12, "--reason", "x", "--until", "tomorrow", "--db", db).returncode == 2
