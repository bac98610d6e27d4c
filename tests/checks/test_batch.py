"""Batch checks over payroll feeds: independent answers, rejects, counts, determinism, formats."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from helpers import ROOT, plancheck, run_batch_files
from helpers.feeds import COLUMNS, feed_with_bad_rows, random_feed
from helpers.oracle import first_breaks
from plancheck.documents.plan import Plan, load_plans
from plancheck.execution import partition
from plancheck.sinks import events


def batch(feed: Path, tmp_path: Path, workers: int = 1,
          plans_dir: Path = ROOT / "plans") -> tuple[list[dict], dict, list[dict]]:
    """Run a batch in-process; return finding events, the summary, and the reject rows."""
    out = io.BytesIO()
    events.configure(out)
    rejects = tmp_path / "rejects.csv"
    run_batch_files(feed, plans_dir, rejects, workers)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    findings = [e for e in lines if e["event"] in ("violation", "warning", "notice")]
    summary = next(e for e in lines if e["event"] == "batch_summary")
    with rejects.open() as handle:
        return findings, summary, list(csv.DictReader(handle))


@pytest.mark.parametrize("seed", range(8))
def test_findings_match_an_independent_implementation(seed, tmp_path, plans):
    """Random shuffled feeds: every (employee, rule, first pay date) agrees with a row-by-row oracle."""
    feed = tmp_path / "feed.csv"
    random_feed(feed, plans, seed)
    findings, summary, _ = batch(feed, tmp_path)
    got = {(f["plan_id"], f["employee_id"], f["rule"], f["pay_date"]) for f in findings}
    assert got == first_breaks(feed, plans)
    assert summary["rows_read"] == summary["rows_checked"] + summary["rows_rejected"]


@pytest.fixture
def grouped_plans(tmp_path: Path) -> tuple[Path, dict[str, Plan]]:
    """The bundled plans, three of them made plans of one employer (a controlled group)."""
    folder = tmp_path / "grouped-plans"
    folder.mkdir()
    for source in sorted((ROOT / "plans").glob("*.yaml")):
        text = source.read_text()
        if source.stem in ("acme-mega-backdoor", "cedar-tiered-match", "monthly-mega-backdoor"):
            text += "\nemployer: acme-group\n"
        (folder / source.name).write_text(text)
    return folder, {pid: plan for pid, (plan, _) in load_plans(folder).items()}


@pytest.mark.parametrize("seed", range(6))
def test_employer_groups_limitation_years_and_unknown_wages_match_the_oracle(seed, tmp_path, grouped_plans):
    """Employees in two plans of one employer, deposits for the year before, wages left empty: the oracle agrees."""
    folder, plans = grouped_plans
    feed = tmp_path / "feed.csv"
    random_feed(feed, plans, 200 + seed, employees=50, variety=True)
    findings, summary, _ = batch(feed, tmp_path, plans_dir=folder)
    got = {(f["plan_id"], f["employee_id"], f["rule"], f["pay_date"]) for f in findings}
    assert got == first_breaks(feed, plans)
    assert summary["rows_read"] == summary["rows_checked"] + summary["rows_rejected"] and not summary["rows_rejected"]


@pytest.mark.parametrize("seed", range(3))
def test_roth_catch_up_rules_match_the_oracle(seed, tmp_path, plans):
    """2026 feeds of 50+ high earners around the $150,000 threshold: Roth catch-up findings agree with the oracle."""
    feed = tmp_path / "feed.csv"
    random_feed(feed, plans, 100 + seed, high_earners_2026=True)
    findings, _, _ = batch(feed, tmp_path)
    got = {(f["plan_id"], f["employee_id"], f["rule"], f["pay_date"]) for f in findings}
    expected = first_breaks(feed, plans)
    assert got == expected
    assert {"roth-catch-up-required", "roth-catch-up-without-roth-program"} <= {rule for _, _, rule, _ in expected}


def test_one_finding_per_employee_and_rule(tmp_path, plans):
    """A rule that stays broken is reported once, at the first pay date."""
    feed = tmp_path / "feed.csv"
    random_feed(feed, plans, 99, employees=60)
    findings, _, _ = batch(feed, tmp_path)
    keys = [(f["plan_id"], f["employee_id"], f["year"], f["rule"]) for f in findings]
    assert len(keys) == len(set(keys)) and findings


def write_feed(path: Path, rows: list[list[str]], header: list[str] = COLUMNS) -> Path:
    path.write_text("\n".join(",".join(r) for r in [header, *rows]) + "\n")
    return path


GOOD = ["acme-mega-backdoor", "E1", "1980-05-05", "2024-01-05", "5000.00", "500.00", "0.00", "0.00", "150.00", "0", "",
        ""]


def with_(**changes: str) -> list[str]:
    row = list(GOOD)
    for key, value in changes.items():
        row[COLUMNS.index(key)] = value
    return row


def test_bad_rows_are_rejected_with_line_and_reason_and_counts_reconcile(tmp_path):
    """Each kind of bad row lands in the reject file with its line and reason; the run goes on."""
    feed = write_feed(tmp_path / "feed.csv", [
        GOOD,                                                     # line 2: fine
        with_(pay_date="2024-01-19", pretax="abc"),               # 3
        with_(pay_date="2024-02-30"),                             # 4
        with_(plan_id="no-such-plan"),                            # 5
        with_(pay_date="2027-01-08"),                             # 6
        list(GOOD),                                               # 7: duplicate of line 2
        with_(pay_date="2024-02-02", compensation="-5.00"),       # 8
        with_(pay_date="2024-02-16", roth="1.234"),               # 9
        ["acme-mega-backdoor", "E1", "1980-05-05"],               # 10: too few fields
        with_(employee_id="", pay_date="2024-03-01"),             # 11
        with_(employee_id="E2", birth_date="2030-01-01"),         # 12
        with_(pay_date="2024-03-15", birth_date="1981-01-01"),    # 13: conflicts with line 2
        with_(pay_date="2024-03-29"),                             # 14: fine
    ])
    findings, summary, rejects = batch(feed, tmp_path)
    reasons = {int(r["line"]): r["reason"] for r in rejects}
    assert sorted(reasons) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
    assert reasons[3].startswith("pretax: expected dollars") and "'abc'" in reasons[3]
    assert reasons[4] == "pay_date: expected a date YYYY-MM-DD, got '2024-02-30'"
    assert "unknown plan 'no-such-plan'" in reasons[5]
    assert "no IRS limits for 2027" in reasons[6]
    assert reasons[7] == "duplicate of line 2: same plan_id, employee_id and pay_date"
    assert "compensation" in reasons[8] and "'-5.00'" in reasons[8]
    assert "roth" in reasons[9]
    assert reasons[10] == "expected 12 fields, got 3"
    assert reasons[11].startswith("employee_id: required")
    assert reasons[12] == "birth_date: must be before pay_date"
    assert reasons[13] == "birth_date: differs from line 2 for the same plan_id and employee_id"
    assert (summary["rows_read"], summary["rows_checked"], summary["rows_rejected"]) == (13, 2, 11)
    rejected_row = next(r for r in rejects if r["line"] == "5")
    assert rejected_row["plan_id"] == "no-such-plan" and rejected_row["pretax"] == "500.00"


def test_extra_columns_are_reported_once(tmp_path):
    """Unknown columns are ignored and named in one event."""
    header = COLUMNS + ["department"]
    feed = write_feed(tmp_path / "feed.csv", [GOOD + ["sales"], with_(pay_date="2024-01-19") + ["sales"]], header)
    out = io.BytesIO()
    events.configure(out)
    run_batch_files(feed, ROOT / "plans", tmp_path / "r.csv")
    names = [json.loads(line)["event"] for line in out.getvalue().splitlines()]
    assert names.count("feed_columns_ignored") == 1
    assert json.loads(out.getvalue().splitlines()[0])["columns"] == ["department"]


def test_missing_column_is_a_clear_error(tmp_path):
    """A feed without a required column stops with exit 2 and names the column."""
    feed = write_feed(tmp_path / "feed.csv", [GOOD[:-1]], COLUMNS[:-1])
    result = plancheck("batch", str(feed), "--rejects", str(tmp_path / "r.csv"))
    assert result.returncode == 2 and "missing column(s) other_plan_deferrals" in result.stderr
    assert "Traceback" not in result.stderr


def test_parquet_gives_the_same_findings_as_csv(tmp_path, plans):
    """The same feed as Parquet yields the same findings (rows numbered instead of lines)."""
    feed = tmp_path / "feed.csv"
    random_feed(feed, plans, 7)
    table = pacsv.read_csv(feed, convert_options=pacsv.ConvertOptions(
        column_types={c: "string" for c in COLUMNS}, strings_can_be_null=False))
    pq.write_table(table, tmp_path / "feed.parquet")
    from_csv, _, _ = batch(feed, tmp_path)
    from_parquet, summary, _ = batch(tmp_path / "feed.parquet", tmp_path)
    strip = lambda fs: [{k: v for k, v in f.items() if k not in ("line", "run_id")} for f in fs]  # noqa: E731
    assert strip(from_csv) == strip(from_parquet) and summary["rows_rejected"] == 0


def test_output_is_identical_whatever_the_worker_count(tmp_path, plans, monkeypatch):
    """Several partitions, 1 or 2 workers: byte-identical findings and identical rejects."""
    monkeypatch.setattr(partition, "PARTITION_BYTES", 20_000)
    feed = tmp_path / "feed.csv"
    random_feed(feed, plans, 3, employees=120)
    with feed.open("a") as handle:
        handle.write("acme-mega-backdoor,E9,1980-01-01,2024-02-30,1,1,1,1,1,1,,\n")
    outputs = []
    for workers in (1, 2):
        out = io.BytesIO()
        events.configure(out)
        outcome = run_batch_files(feed, ROOT / "plans", tmp_path / f"r{workers}.csv", workers)
        assert outcome.summary["partitions"] > 2
        outputs.append([line for line in out.getvalue().splitlines() if b"batch_summary" not in line])
    assert outputs[0] == outputs[1] and outputs[0]
    assert (tmp_path / "r1.csv").read_bytes() == (tmp_path / "r2.csv").read_bytes()


def test_empty_feed(tmp_path):
    """A header-only feed checks nothing and says so."""
    feed = write_feed(tmp_path / "feed.csv", [])
    findings, summary, rejects = batch(feed, tmp_path)
    assert findings == [] and rejects == [] and summary["rows_read"] == 0


def test_batch_cli_exit_codes(tmp_path):
    """`python -m plancheck` as its own process: exit 1 when an error finding exists, 0 when the feed is clean."""
    clean = write_feed(tmp_path / "clean.csv", [GOOD])
    bad = write_feed(tmp_path / "bad.csv", [with_(roth="0.00", after_tax="9000.00")])
    run = lambda f: subprocess.run([sys.executable, "-m", "plancheck", "batch", str(f), "--rejects",  # noqa: E731
                                    str(tmp_path / "r.csv"), "--out", str(tmp_path / "o.jsonl")], cwd=ROOT,
                                   capture_output=True, text=True)
    assert run(clean).returncode == 0
    assert run(bad).returncode == 1


def test_a_wider_prescreen_changes_nothing_because_the_engine_decides(tmp_path, plans, monkeypatch):
    """If the numpy pre-screen let every row through, the engine would decline the extra rows: same findings."""
    import numpy as np

    from plancheck.checks.batch import check

    feed = tmp_path / "feed.csv"
    random_feed(feed, plans, 7, employees=25)
    exact, _, _ = batch(feed, tmp_path)
    monkeypatch.setattr(check, "evaluate_columns", lambda condition, facts: np.ones(len(facts["period"]), dtype=bool))
    wide, _, _ = batch(feed, tmp_path)
    assert wide == exact and exact


def test_parquet_row_groups_are_read_in_parallel_with_the_rows_numbered_as_one_read(tmp_path, plans, monkeypatch):
    """A Parquet feed of many row groups: ranges of whole row groups, and 1 or 2 workers give identical output."""
    from plancheck.documents.feed.reader import open_feed

    monkeypatch.setattr(partition, "PARTITION_ROWS", 800)
    feed = feed_with_bad_rows(tmp_path / "feed.parquet", plans, 5, parquet_row_group=500)
    spans = open_feed(feed).ranges(8)
    assert len(spans) > 2 and spans[0].first_line == 1
    assert all(b.start == a.stop and b.first_line == a.first_line + 500 * (a.stop - a.start)
               for a, b in zip(spans, spans[1:]))
    outputs = []
    for workers in (1, 2):
        out = io.BytesIO()
        events.configure(out)
        outcome = run_batch_files(feed, ROOT / "plans", tmp_path / f"r{workers}.csv", workers)
        assert outcome.summary["partitions"] > 2 and outcome.summary["rows_rejected"] >= 5
        outputs.append([line for line in out.getvalue().splitlines() if b"batch_summary" not in line])
    assert outputs[0] == outputs[1] and outputs[0]
    assert (tmp_path / "r1.csv").read_bytes() == (tmp_path / "r2.csv").read_bytes()
    table = pq.read_table(feed)
    with (tmp_path / "r2.csv").open() as handle:
        for reject in csv.DictReader(handle):  # `line` is the 1-based row, whichever range read it
            assert table.column("pay_date")[int(reject["line"]) - 1].as_py() == reject["pay_date"]


def test_the_open_files_limit_is_raised_for_a_partition_per_file():
    """A spill task and the merge hold a file per partition: a soft limit below that is raised (never past the hard)."""
    import resource

    from plancheck.execution.process import allow_open_files

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
        allow_open_files(1088)
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == min(1088, hard)
        allow_open_files(100)  # never lowered
        assert resource.getrlimit(resource.RLIMIT_NOFILE)[0] == min(1088, hard)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_feed_replaced_while_the_batch_reads_it_stops_the_run(workers, tmp_path, plans, monkeypatch):
    """The feed grows (a transfer still writing it) once the first rows are read: the ranges read afterwards
    would not be one file, so the run stops with exit 2 naming the feed, whatever the worker count."""
    from plancheck.checks.batch.run import run_batch
    from plancheck.documents.feed.reader import open_feed
    from plancheck.errors import InputError
    from plancheck.sinks.batch import BatchFiles

    monkeypatch.setattr(partition, "PARTITION_BYTES", 12_000)
    monkeypatch.setattr(partition, "PARTITION_ROWS", 150)
    feed = feed_with_bad_rows(tmp_path / "feed.csv", plans, 33)
    assert open_feed(feed).version
    grown: list[int] = []

    def grow(_rows: int) -> None:
        if not grown:
            with feed.open("ab") as handle:
                grown.append(handle.write(feed.read_bytes().splitlines(keepends=True)[1]))

    events.configure(io.BytesIO())
    with (tmp_path / "rejects.csv").open("wb") as handle, \
            pytest.raises(InputError, match="the feed changed while it was being read"):
        run_batch(feed, ROOT / "plans", ROOT / "rules", workers, BatchFiles(handle), "rejects.csv", on_read=grow)
    assert grown


def test_a_feed_rewritten_after_it_was_opened_is_another_version(tmp_path, plans):
    """Same size is not enough: the modification time (for a URL, the ETag) is part of the version."""
    import os

    from plancheck.documents.feed.reader import open_feed
    from plancheck.errors import InputError

    feed = feed_with_bad_rows(tmp_path / "feed.csv", plans, 34)
    opened = open_feed(feed)
    opened.unchanged()
    data = feed.read_bytes()
    feed.write_bytes(data.replace(b"2024-", b"2025-", 1))  # the same length, other content
    stat = feed.stat()
    os.utime(feed, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000))
    with pytest.raises(InputError, match="the feed changed while it was being read"):
        opened.unchanged()


def test_a_typed_parquet_feed_reads_as_its_text_does(tmp_path, plans, monkeypatch):
    """Decimal money and date32 dates go to the partitions as they are and are converted without text: the
    findings and rejects are byte for byte those of the same values as text, bad values included (negative,
    above the maximum, a null where a value is required or optional)."""
    import decimal

    import pyarrow as pa
    import pyarrow.compute as pc

    from plancheck.documents.feed.reader import as_text

    monkeypatch.setattr(partition, "PARTITION_ROWS", 300)
    rows = random_feed(tmp_path / "source.csv", plans, 35, employees=60, variety=True)
    money = ("compensation", "pretax", "roth", "after_tax", "employer_match", "employer_nonelective",
             "prior_year_fica_wages", "other_plan_deferrals")
    bad = {5: ("pretax", "-5.00"), 17: ("after_tax", "-0.01"), 29: ("compensation", "123456789.00"),
           41: ("roth", None), 53: ("pay_date", None), 65: ("birth_date", None), 77: ("other_plan_deferrals", None),
           89: ("employer_match", None), 101: ("prior_year_fica_wages", None)}
    columns = {}
    for name in COLUMNS:
        values = [row[name] for row in rows]
        for at, (column, value) in bad.items():
            if column == name:
                values[at] = value
        if name in money:
            columns[name] = pa.array([None if v in (None, "") else decimal.Decimal(v) for v in values],
                                     type=pa.decimal128(14, 2))
        elif name in ("birth_date", "pay_date"):
            columns[name] = pc.cast(pa.array(values, type=pa.string()), pa.date32())
        else:
            columns[name] = pa.array(values, type=pa.string())
    typed = pa.table(columns)
    text = pa.table({name: as_text(typed.column(name).combine_chunks()) for name in COLUMNS})
    pq.write_table(typed, tmp_path / "typed.parquet", row_group_size=250)
    pq.write_table(text, tmp_path / "text.parquet", row_group_size=250)
    outputs = {}
    for name in ("typed", "text"):
        out = io.BytesIO()
        events.configure(out)
        outcome = run_batch_files(tmp_path / f"{name}.parquet", ROOT / "plans", tmp_path / f"{name}.csv", 2)
        lines = [line for line in out.getvalue().splitlines() if b'"batch_summary"' not in line]
        outputs[name] = ([json.loads(line) | {"run_id": ""} for line in lines],
                         (tmp_path / f"{name}.csv").read_text(), outcome.summary)
    assert outputs["typed"][0] == outputs["text"][0] and outputs["text"][0]
    assert outputs["typed"][1] == outputs["text"][1]
    reasons = outputs["text"][1]
    for expected in ("pretax: expected dollars", "after_tax: expected dollars", "compensation: expected at most",
                     "roth: expected dollars", "pay_date: expected a date", "birth_date: expected a date",
                     "employer_match: expected dollars", "after_tax: expected dollars"):
        assert expected in reasons, expected
    assert "other_plan_deferrals" not in reasons.split("\n", 1)[1] and "prior_year_fica_wages:" not in reasons
    summary = outputs["typed"][2]
    assert summary["rows_rejected"] == 7 and summary["partitions"] > 2
    assert summary["rows_read"] == summary["rows_checked"] + summary["rows_rejected"]


@pytest.mark.parametrize(("scale", "values", "optional", "cents", "ok", "too_big"), [
    (2, ["12.34", "0.00", None, "-0.01", "99999999.99", "100000000.00"], False,
     [1234, 0, 0, 0, 9_999_999_999, 0], [True, True, False, False, True, True], [False] * 5 + [True]),
    (2, [None, "7.00"], True, [0, 700], [True, True], [False, False]),
    (0, ["12", "99999999", "100000000"], False, [1200, 9_999_999_900, 0], [True] * 3, [False, False, True]),
    (3, ["12.300", "12.345", "-1.000"], False, [1230, 0, 0], [True, False, False], [False] * 3),
    (6, ["0.010000", "0.010001"], False, [1, 0], [True, False], [False, False]),
    (2, ["1" + "0" * 25, "-" + "1" * 25], False, [0, 0], [True, False], [True, False]),  # beyond int64 unscaled
])
def test_decimal_money_converts_exactly_or_says_why(scale, values, optional, cents, ok, too_big):
    """A decimal of scale 2 is its cents; another scale is whole cents exactly or refused; negative and null (where
    required) are refused; above the maximum, however many digits, is too big."""
    import decimal

    import pyarrow as pa

    from plancheck.documents.feed.parse import money_cents

    column = pa.array([None if v is None else decimal.Decimal(v) for v in values], type=pa.decimal128(38, scale))
    got = money_cents(column, optional)
    assert [got[0].tolist(), got[1].tolist(), got[2].tolist()] == [cents, ok, too_big]
