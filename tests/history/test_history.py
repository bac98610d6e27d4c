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

from helpers import ROOT, pg, plancheck
from helpers.history import FEED
from helpers.history import batch as _batch
from helpers.history import findings_of as _findings
from helpers.history import rows_where as _rows_where
from helpers.history import without as _without

_names = itertools.count()


@pytest.fixture(scope="session")
def postgres():
    if pg.server_binaries() is None:
        pytest.skip("no PostgreSQL server binary (initdb, pg_ctl) on this machine: PostgreSQL history tests skipped")
    server = pg.Server()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])  # a PostgreSQL server: slow
def db(request, tmp_path) -> str:
    """A fresh, empty history database."""
    if request.param == "sqlite":
        return str(tmp_path / "history.sqlite")
    return request.getfixturevalue("postgres").create(f"history_{next(_names)}")


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


def test_the_schema_revision_named_in_the_code_is_the_newest_migration():
    from plancheck.history.store import HEAD, head_revision

    assert HEAD == head_revision()


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


# -- the scope's year: runs over dated data are compared year by year -----------------------------


def _moved_back(rows_of: Path, years: int, to: Path) -> Path:
    """The 2026 feed with every pay date (and limitation year) `years` earlier; birth dates kept.

    A row whose date does not parse (the sample has a few, on purpose) is copied as it is; the
    sample's one row dated 2027 (rejected: no limits for 2027) is left out, so the feed covers one year.
    """
    with rows_of.open(newline="") as source, to.open("w", newline="") as target:
        reader = csv.reader(source)
        writer = csv.writer(target, lineterminator="\n")
        header = next(reader)
        writer.writerow(header)
        pay, limitation = header.index("pay_date"), header.index("limitation_year")
        for row in reader:
            if pay < len(row):
                try:
                    day = dt.date.fromisoformat(row[pay])
                    if day.year != 2026:
                        continue
                    row[pay] = day.replace(year=day.year - years, day=min(day.day, 28) if day.month == 2 else day.day
                                           ).isoformat()
                except ValueError:
                    pass
            if limitation < len(row) and row[limitation].strip().isdigit():
                row[limitation] = str(int(row[limitation]) - years)
            writer.writerow(row)
    return to


def _joined(first: Path, second: Path, to: Path) -> Path:
    """One feed with the rows of both (the header once)."""
    lines = second.read_text().splitlines(keepends=True)
    to.write_text(first.read_text() + "".join(lines[1:]))
    return to


@pytest.fixture(scope="module")
def feed_2025(tmp_path_factory) -> tuple[Path, list[dict]]:
    """The sample feed moved back to 2025, and its findings from a run that records nothing."""
    tmp = tmp_path_factory.mktemp("feed2025")
    feed = _moved_back(FEED, 1, tmp / "payroll-2025.csv")
    _, events = _batch(feed, tmp, None, "plain")
    findings = _findings(events)
    assert {f["year"] for f in findings} == {2025} and events[-1]["years"] == [2025]
    return feed, findings


def _counts(summary: dict) -> tuple[int, int, int]:
    return summary["new"], summary["recurring"], summary["resolved"]


def _employees(findings: list[dict], first: int, last: int) -> set[str]:
    return set(sorted({f["employee_id"] for f in findings})[first:last])


def test_a_feed_moving_to_a_new_year_resolves_nothing_of_the_old_year(db, tmp_path, baseline, feed_2025):
    """2025, 2025 less group A, then 2026 (nothing of 2025 resolved), a late 2025 feed (compared with the
    last 2025 run, not the 2026 one), then 2026 less group B (compared with the first 2026 run)."""
    feed25, base25 = feed_2025
    keys25, keys26 = {_key(f) for f in base25}, {_key(f) for f in baseline}
    group_a, group_b = _employees(base25, 0, 5), _employees(baseline, 5, 12)
    a25 = {k for k in keys25 if k[1] in group_a}
    b26 = {k for k in keys26 if k[1] in group_b}
    assert a25 and b26

    _, n1 = _batch(feed25, tmp_path, db, "n1")
    _, n2 = _batch(_without(feed25, group_a, tmp_path / "f2.csv"), tmp_path, db, "n2")
    _, n3 = _batch(FEED, tmp_path, db, "n3")
    _, n4 = _batch(feed25, tmp_path, db, "n4")
    _, n5 = _batch(_without(FEED, group_b, tmp_path / "f5.csv"), tmp_path, db, "n5")
    run = [None] + [night[-1]["history_run"] for night in (n1, n2, n3, n4, n5)]

    assert _counts(n1[-1]) == (len(keys25), 0, 0)
    assert _counts(n2[-1]) == (0, len(keys25 - a25), len(a25))
    assert _counts(n3[-1]) == (len(keys26), 0, 0), "a new year: all new, nothing of 2025 resolved"
    assert n3[-1]["previous_run"] is None
    assert n3[-1]["by_year"] == [{"year": 2026, "covered": True, "previous_run": None, "new": len(keys26),
                                  "recurring": 0, "resolved": 0}]
    assert _counts(n4[-1]) == (len(a25), len(keys25 - a25), 0), "2025 again: compared with the last 2025 run"
    assert n4[-1]["previous_run"] == run[2]
    assert _counts(n5[-1]) == (0, len(keys26 - b26), len(b26)), "2026 again: compared with the 2026 run"
    assert n5[-1]["previous_run"] == run[3]

    for finding in _findings(n4):
        expected = ("new", run[4]) if finding["employee_id"] in group_a else ("recurring", run[1])
        assert (finding["status"], finding["first_seen"]) == expected
    assert {(f["status"], f["first_seen"]) for f in _findings(n5)} == {("recurring", run[3])}

    shown = [json.loads(line) for line in plancheck("runs", "show", run[5], "--db", db, "--format",
                                                    "jsonl").stdout.splitlines()]
    resolved = [e for e in shown if e["event"] == "resolved"]
    assert {(e["employee_id"] in group_b, e["year"], e["previous_run"]) for e in resolved} == {(True, 2026, run[3])}
    assert len(resolved) == len(b26)
    listed = plancheck("runs", "--db", db).stdout.splitlines()
    assert listed[1].rstrip().endswith("covering 2026") and listed[2].rstrip().endswith("covering 2025")


def test_a_two_year_feed_compares_each_year_with_the_last_run_that_covered_it(db, tmp_path, baseline, feed_2025):
    """2025 less group A, 2026 less group B, then one feed of both years (2026 also less group C):
    2025 is compared with the first run, 2026 with the second."""
    feed25, base25 = feed_2025
    keys25, keys26 = {_key(f) for f in base25}, {_key(f) for f in baseline}
    group_a, group_b, group_c = _employees(base25, 0, 5), _employees(baseline, 5, 12), _employees(baseline, 12, 15)
    assert not group_b & group_c
    a25 = {k for k in keys25 if k[1] in group_a}
    b26, c26 = ({k for k in keys26 if k[1] in group} for group in (group_b, group_c))
    assert a25 and b26 and c26

    _, n1 = _batch(_without(feed25, group_a, tmp_path / "f1.csv"), tmp_path, db, "n1")
    _, n2 = _batch(_without(FEED, group_b, tmp_path / "f2.csv"), tmp_path, db, "n2")
    both = _joined(feed25, _without(FEED, group_c, tmp_path / "f3-2026.csv"), tmp_path / "f3.csv")
    _, n3 = _batch(both, tmp_path, db, "n3")
    first, second, third = (night[-1]["history_run"] for night in (n1, n2, n3))

    summary = n3[-1]
    assert summary["years"] == [2025, 2026]
    assert summary["by_year"] == [
        {"year": 2025, "covered": True, "previous_run": first, "new": len(a25), "recurring": len(keys25 - a25),
         "resolved": 0},
        {"year": 2026, "covered": True, "previous_run": second, "new": len(b26), "recurring": len(keys26 - b26 - c26),
         "resolved": len(c26)},
    ]
    assert _counts(summary) == (len(a25) + len(b26), len(keys25 - a25) + len(keys26 - b26 - c26), len(c26))
    assert summary["previous_run"] == second
    statuses = Counter((f["year"], f["status"], f["first_seen"]) for f in _findings(n3))
    assert statuses == Counter({(2025, "new", third): len(a25), (2025, "recurring", first): len(keys25 - a25),
                                (2026, "new", third): len(b26), (2026, "recurring", second): len(keys26 - b26 - c26)})

    from plancheck.history.store import Store
    store = Store(db).ready()
    assert [(y["year"], y["previous_run"], y["resolved"]) for y in store.run_years(third)] == [
        (2025, first, 0), (2026, second, len(c26))]
    assert {(r["employee_id"] in group_c, r["year"], r["previous_run"]) for r in store.resolved(third)} == {
        (True, 2026, second)}
    text = plancheck("runs", "show", third, "--db", db).stdout
    assert f"year 2025: compared with run {first}, new {len(a25)}" in text
    assert f"year 2026: compared with run {second}" in text


def _finding(employee: str, year: int, rule: str = "402g-deferral-limit") -> dict:
    return {"event": "violation", "rule": rule, "severity": "error", "plan_id": "p", "employee_id": employee,
            "year": year, "amount": "24000.00", "limit": "23500.00", "excess": "500.00"}


def _record(store, findings: list[dict], years: list[int] | None, command: str = "batch") -> dict:
    from plancheck.history.recording import HistoryRun, scope_of

    run = HistoryRun(store, command, scope_of(command, ["p"], None), []).start("test")
    events = [run.finding(f) for f in findings]
    summary = run.close(None if years is None else [("p", year) for year in years])
    run.finish({"event": "batch_summary", **summary}, 1)
    return summary | {"events": events}


def test_a_covered_year_without_findings_resolves_every_finding_of_that_year_only(db):
    from plancheck.history.store import Store

    store = Store(db).ready()
    first = _record(store, [_finding("E1", 2025), _finding("E2", 2025), _finding("E3", 2026)], [2025, 2026])
    clean = _record(store, [], [2026])
    assert _counts(clean) == (0, 0, 1) and clean["previous_run"] == first["history_run"]
    assert [r["employee_id"] for r in store.resolved(clean["history_run"])] == ["E3"]
    nothing = _record(store, [], [])
    assert _counts(nothing) == (0, 0, 0) and nothing["by_year"] == [], "a run that covered no year resolves nothing"
    again = _record(store, [_finding("E1", 2025)], [2025])
    assert _counts(again) == (0, 1, 1) and again["previous_run"] == first["history_run"]


def test_a_finding_of_a_year_the_input_did_not_cover_is_classified_but_resolves_nothing(db):
    """Employer money of January 2026 allocated to 2025 (`limitation_year`) gives a 2025 finding in a run
    whose pay dates are all in 2026: it is compared with the last 2025 run, which it does not resolve."""
    from plancheck.history.store import Store

    store = Store(db).ready()
    december = _record(store, [_finding("E1", 2025), _finding("E2", 2025, "415c-annual-additions")], [2025])
    january = _record(store, [_finding("E2", 2025, "415c-annual-additions"), _finding("E9", 2026)], [2026])
    assert _counts(january) == (1, 1, 0)
    assert january["events"][0]["first_seen"] == december["history_run"]
    assert january["by_year"] == [
        {"year": 2025, "covered": False, "previous_run": december["history_run"], "new": 0, "recurring": 1,
         "resolved": 0},
        {"year": 2026, "covered": True, "previous_run": None, "new": 1, "recurring": 0, "resolved": 0}]


def test_runs_not_over_dated_data_compare_with_the_last_run_of_the_scope(db):
    """An audit's findings name the documents' plan year, but the audit checks the documents as they now
    stand: a document moved to a new plan year resolves its old year's findings."""
    from plancheck.history.store import Store

    store = Store(db).ready()
    first = _record(store, [_finding("", 2025, "catch-up-without-roth")], None, command="audit")
    second = _record(store, [_finding("", 2026, "catch-up-without-roth")], None, command="audit")
    assert _counts(second) == (1, 0, 1) and second["previous_run"] == first["history_run"]
    assert "by_year" not in second


def test_runs_recorded_before_the_years_were_kept_are_carried_over(db):
    """A database at revision 0002 (runs compared as a whole, resolutions worked out on reading) upgrades in
    place: a batch run covered the years of its findings, what each run resolved is stored, and a
    withdrawal finding's year becomes its request date's."""
    import sqlalchemy as sa

    from plancheck.history.fingerprint import fingerprint
    from plancheck.history.recording import scope_of
    from plancheck.history.store import Store, head_revision, now
    from plancheck.history.tables import findings, runs

    store = Store(db)
    store.upgrade("0002")

    def finding(run_id: int, event: dict) -> dict:
        return {"run_id": run_id, "fingerprint": fingerprint(event), "figures": "f", "rule": event["rule"],
                "severity": "error", "plan_id": "p", "employee_id": event["employee_id"], "year": event.get("year"),
                "status": "new", "first_seen": run_id, "acknowledged": False, "event": json.dumps(event)}

    old = [_finding("E1", 2026), _finding("E2", 2026), _finding("E3", 2025)]
    request = {"event": "violation", "rule": "hardship-not-permitted", "employee_id": "E7", "request_id": "R1",
               "request_date": "2026-03-02"}
    with store.engine.begin() as connection:
        def run(command: str, counts: dict) -> int:
            scope, label = scope_of(command, ["p"], None)
            return connection.execute(runs.insert().values(
                command=command, scope=scope, scope_label=label, inputs=[], started_at=now(), ended_at=now(),
                counts=counts, exit_status=1)).inserted_primary_key[0]
        first = run("batch", {"previous_run": None})
        connection.execute(findings.insert(), [finding(first, e) for e in old])
        second = run("batch", {"previous_run": first})
        connection.execute(findings.insert(), [finding(second, old[0])])
        requests = run("withdrawals", {"previous_run": None})
        connection.execute(findings.insert(), [finding(requests, request)])

    assert store.upgrade()[1] == head_revision()
    assert [(y["year"], y["previous_run"], y["resolved"]) for y in store.run_years(second)] == [
        (2025, first, 1), (2026, first, 1)]
    assert [(y["year"], y["previous_run"]) for y in store.run_years(first)] == [(2025, None), (2026, None)]
    assert sorted(r["employee_id"] for r in store.resolved(second)) == ["E2", "E3"]
    assert [f["year"] for f in store.findings(requests)] == [2026]
    assert [y["year"] for y in store.run_years(requests)] == [2026]
    with store.engine.connect() as connection:
        assert connection.execute(sa.select(sa.func.count()).select_from(findings)
                                  .where(findings.c.year.is_(None))).scalar() == 0

    # The next run is compared year by year with the carried-over runs.
    store.ready()
    after = _record(store, [_finding("E1", 2026), _finding("E3", 2025)], [2026])
    assert after["by_year"] == [
        {"year": 2025, "covered": False, "previous_run": second, "new": 1, "recurring": 0, "resolved": 0},
        {"year": 2026, "covered": True, "previous_run": second, "new": 0, "recurring": 1, "resolved": 0}]


def test_a_database_error_while_findings_stream_is_exit_2_and_removes_the_run(tmp_path):
    """The findings are written by the run's writer thread: its error is raised in the run, as an input error."""
    import sqlalchemy as sa

    from plancheck.errors import InputError
    from plancheck.history import recording
    from plancheck.history.store import Store

    store = Store(str(tmp_path / "h.sqlite")).ready()
    run = recording.HistoryRun(store, "batch", recording.scope_of("batch", ["p"], None), []).start("test")
    with store.engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE findings RENAME TO gone"))
    with pytest.raises(InputError, match="history database"):
        for n in range(recording.CHUNK * 4):
            run.finding(_finding(f"E{n}", 2026))
        run.close([("p", 2026)])
    with store.engine.begin() as connection:
        connection.execute(sa.text("ALTER TABLE gone RENAME TO findings"))
    run.abort()
    assert store.runs(completed=False) == []


def _fingerprint_as_first_recorded(event: dict) -> str:
    """The fingerprint as plancheck's first history wrote it (databases keep it: it must never change)."""
    import hashlib

    def text(value):
        return "" if value is None else str(value)
    year = event.get("year")
    if year is None and event.get("request_date"):
        year = str(event["request_date"])[:4]
    plan = event.get("plan_id") or event.get("file")
    parts = [text(plan), text(event.get("employee_id")), text(year), text(event.get("rule"))]
    subject = event.get("request_id") or (event.get("field") if event.get("rule") == "plan-document-invalid" else None)
    if subject is not None:
        parts.append(text(subject))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def test_fingerprints_and_figures_are_those_recorded_by_earlier_versions(baseline):
    import hashlib

    from plancheck.history.fingerprint import figures, finding_year, fingerprint

    odd = [{"rule": "plan-document-invalid", "file": "plans/x.yaml", "field": "match.tiers", "year": None},
           {"rule": "hardship-not-permitted", "plan_id": "p", "employee_id": "E1", "request_id": "R-7",
            "request_date": "2025-12-31"},
           {"rule": "r", "plan_id": "", "file": None, "employee_id": None, "year": "2026", "amount": None},
           {"rule": "r", "plan_id": "p", "employee_id": 12, "year": 2026, "request_id": 0, "limit": "1.00"}]
    for event in baseline + odd:
        assert fingerprint(event) == _fingerprint_as_first_recorded(event), event
        get = event.get
        expected = "|".join("" if get(k) is None else str(get(k)) for k in ("amount", "limit", "excess"))
        assert figures(event) == hashlib.sha256(expected.encode()).hexdigest()
    assert [finding_year(e) for e in odd] == [None, 2025, 2026, 2026]


def test_a_run_of_many_chunks_is_written_whole_and_in_order(db, monkeypatch):
    from plancheck.history import recording
    from plancheck.history.store import Store

    monkeypatch.setattr(recording, "CHUNK", 50)
    store = Store(db).ready()
    first = _record(store, [_finding(f"E{n:05d}", 2026) for n in range(1_001)], [2026])
    assert [f["employee_id"] for f in store.findings(first["history_run"])] == [f"E{n:05d}" for n in range(1_001)]
    again = _record(store, [_finding("E00000", 2026)], [2026])
    assert _counts(again) == (0, 1, 1_000)


def _plan_rows(rows_of: Path, plans: set[str], to: Path) -> Path:
    """The feed's rows of `plans` only."""
    return _rows_where(rows_of, "plan_id", lambda plan: plan in plans, to)


def test_plans_whose_feeds_come_separately_do_not_resolve_each_other(db, tmp_path, baseline):
    """One recordkeeper's feed per plan, run one after the other into one history: a plan's run compares only
    with the last run that had that plan's rows, resolves nothing of the other plans, and a run of the
    whole feed afterwards finds every finding recurring and nothing resolved."""
    plans = sorted({f["plan_id"] for f in baseline})
    assert len(plans) >= 2
    first, rest = plans[0], set(plans[1:])
    runs = {}
    for name, subset in (("first", {first}), ("rest", rest)):
        _, events = _batch(_plan_rows(FEED, subset, tmp_path / f"{name}.csv"), tmp_path, db, name)
        runs[name] = events[-1]
        mine = [f for f in baseline if f["plan_id"] in subset]
        assert _counts(runs[name]) == (len(mine), 0, 0), f"{name}: all new, and nothing of the other plans resolved"
    _, events = _batch(FEED, tmp_path, db, "whole")
    whole = events[-1]
    assert _counts(whole) == (0, len(baseline), 0)
    firsts = {f["plan_id"]: f["first_seen"] for f in _findings(events)}
    assert firsts[first] == runs["first"]["history_run"]
    assert {firsts[plan] for plan in rest} == {runs["rest"]["history_run"]}
    from plancheck.history.store import Store
    covered = Store(db).ready().run_plan_years(whole["history_run"])
    assert {(c["plan_id"], c["previous_run"]) for c in covered if c["year"] == 2026} >= {
        (first, runs["first"]["history_run"]), *((plan, runs["rest"]["history_run"]) for plan in rest)}
    # The first plan fixes one finding: only that one is resolved, the other plans' findings are not touched.
    fixed = next(f for f in baseline if f["plan_id"] == first)
    _, events = _batch(_without(_plan_rows(FEED, {first}, tmp_path / "first-again.csv"), {fixed["employee_id"]},
                                tmp_path / "first-fixed.csv"), tmp_path, db, "first-fixed")
    again = events[-1]
    gone = [f for f in baseline if f["plan_id"] == first and f["employee_id"] == fixed["employee_id"]]
    assert again["resolved"] == len(gone) and again["new"] == 0 and again["previous_run"] == whole["history_run"]


def test_a_plan_s_findings_compare_with_the_last_run_that_covered_that_plan(db):
    from plancheck.history.recording import HistoryRun, scope_of
    from plancheck.history.store import Store

    store = Store(db).ready()

    def record(findings: list[tuple[str, str]], covered: list[str]) -> dict:
        run = HistoryRun(store, "batch", scope_of("batch", ["x", "y"], None), []).start("test")
        for plan, employee in findings:
            run.finding({**_finding(employee, 2026), "plan_id": plan})
        summary = run.close([(plan, 2026) for plan in covered])
        run.finish({"event": "batch_summary", **summary}, 1)
        return summary

    x1 = record([("x", "E1"), ("x", "E2")], ["x"])
    y1 = record([("y", "E7")], ["y"])
    assert _counts(y1) == (1, 0, 0) and y1["previous_run"] is None
    x2 = record([("x", "E1")], ["x"])
    assert _counts(x2) == (0, 1, 1) and x2["previous_run"] == x1["history_run"]
    assert [r["employee_id"] for r in store.resolved(x2["history_run"])] == ["E2"]
    y2 = record([], ["y"])
    assert _counts(y2) == (0, 0, 1) and [r["employee_id"] for r in store.resolved(y2["history_run"])] == ["E7"]
    both = record([("x", "E1"), ("y", "E8")], ["x", "y"])
    assert _counts(both) == (1, 1, 0)
    assert [(c["plan_id"], c["previous_run"], c["resolved"]) for c in store.run_plan_years(both["history_run"])] == [
        ("x", x2["history_run"], 0), ("y", y2["history_run"], 0)]
    assert both["by_year"] == [{"year": 2026, "covered": True, "previous_run": y2["history_run"], "new": 1,
                                "recurring": 1, "resolved": 0}]
