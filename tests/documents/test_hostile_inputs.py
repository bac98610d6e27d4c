"""Each hostile input of issue 7, by name: nothing destroyed, one bad record never stops a batch, clear exit 2s."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from helpers.hostile import GOOD, ROOT, batch, cli, digest, feed_bytes, good_rows, row
from plancheck.documents.feed.reader import COLUMNS
from plancheck.money import MAX_CENTS, parse_cents
from plancheck.sinks.files import OutputLock

PLANS = ROOT / "plans"


@pytest.fixture
def feed(tmp_path: Path) -> Path:
    path = tmp_path / "feed.csv"
    path.write_bytes(feed_bytes(good_rows(3)))
    return path


def assert_clean_error(status: int, err: str, *expected: str) -> None:
    assert status == 2, err
    assert "Traceback" not in err
    for text in expected:
        assert text in err, err


# -- Data destroyed or lost -------------------------------------------------------------------

@pytest.mark.parametrize("option", ["--out", "--rejects"])
def test_an_output_that_is_the_feed_is_refused_and_the_feed_kept(capsys, tmp_path, feed, option):
    before = digest(feed)
    other = "--rejects" if option == "--out" else "--out"
    status, err = cli(capsys, "batch", feed, "--plans", PLANS, option, feed, other, tmp_path / "x")
    assert_clean_error(status, err, f"{option}: is an input of this run")
    assert digest(feed) == before and not (tmp_path / "x").exists()


def test_an_output_that_is_a_plan_or_rule_file_is_refused(capsys, tmp_path, feed):
    plans = tmp_path / "plans"
    shutil.copytree(PLANS, plans)
    plan_file = plans / "acme-mega-backdoor.yaml"
    before = digest(plan_file)
    status, err = cli(capsys, "batch", feed, "--plans", plans, "--out", plan_file, "--rejects", tmp_path / "r.csv")
    assert_clean_error(status, err, "is an input of this run")
    assert digest(plan_file) == before
    rule = next((ROOT / "rules" / "limits").glob("*.yaml"))
    status, err = cli(capsys, "election", ROOT / "samples/elections/acme-high-earner-2026.yaml", "--plan",
                      PLANS / "acme-mega-backdoor.yaml", "--out", rule)
    assert_clean_error(status, err, "is an input of this run")


def test_an_output_through_a_hard_link_to_the_feed_is_refused(capsys, tmp_path, feed):
    link = tmp_path / "alias.jsonl"
    os.link(feed, link)
    status, err = cli(capsys, "batch", feed, "--plans", PLANS, "--out", link, "--rejects", tmp_path / "r.csv")
    assert_clean_error(status, err, "is an input of this run")


def test_two_outputs_that_are_one_file_are_refused(capsys, tmp_path, feed):
    status, err = cli(capsys, "batch", feed, "--plans", PLANS, "--out", tmp_path / "a", "--rejects", tmp_path / "a")
    assert_clean_error(status, err, "--rejects: is the same file as --out")
    assert not (tmp_path / "a").exists()


@pytest.mark.parametrize("breakage", ["missing feed", "bad plans"])
def test_a_run_that_fails_early_leaves_an_existing_out_untouched(capsys, tmp_path, feed, breakage):
    out = tmp_path / "out.jsonl"
    out.write_text("yesterday's findings\n")
    plans = tmp_path / "plans"
    plans.mkdir()
    (plans / "broken.yaml").write_text("plan_id: [\n")
    args = ([tmp_path / "nope.csv", "--plans", PLANS] if breakage == "missing feed" else [feed, "--plans", plans])
    status, err = cli(capsys, "batch", *args, "--out", out, "--rejects", tmp_path / "r.csv")
    assert_clean_error(status, err)
    assert out.read_text() == "yesterday's findings\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["feed.csv", "out.jsonl", "plans"])


def test_a_bad_rejects_path_is_found_before_the_work(capsys, tmp_path, feed):
    status, err = cli(capsys, "batch", feed, "--plans", PLANS, "--out", tmp_path / "o.jsonl",
                      "--rejects", tmp_path / "missing-dir" / "r.csv")
    assert_clean_error(status, err, "--rejects: directory", "does not exist")
    assert not (tmp_path / "o.jsonl").exists()


def test_an_output_that_is_a_directory_is_refused(capsys, tmp_path, feed):
    status, err = cli(capsys, "batch", feed, "--plans", PLANS, "--out", tmp_path, "--rejects", tmp_path / "r.csv")
    assert_clean_error(status, err, "--out: is a directory")


def test_a_second_run_on_the_same_outputs_exits_2_naming_the_first(capsys, tmp_path, feed):
    out = tmp_path / "o.jsonl"
    with OutputLock([out]):
        status, err = cli(capsys, "batch", feed, "--plans", PLANS, "--out", out, "--rejects", tmp_path / "r.csv")
    assert_clean_error(status, err, f"another plancheck run (pid {os.getpid()})")
    assert not out.exists()


def test_a_lock_left_by_a_killed_run_is_taken_over(capsys, tmp_path, feed):
    out = tmp_path / "o.jsonl"
    Path(f"{out}.lock").write_text("999999999\n")
    status, err = cli(capsys, "batch", feed, "--plans", PLANS, "--out", out, "--rejects", tmp_path / "r.csv")
    assert status == 0, err
    assert out.exists() and not Path(f"{out}.lock").exists()


def withdrawal_csv(tmp_path: Path, first: str) -> Path:
    rows = (ROOT / "samples" / "withdrawals.csv").read_text().splitlines()
    path = tmp_path / "requests.csv"
    path.write_text("\n".join([rows[0], first, rows[2]]) + "\n")
    return path


def withdrawals(capsys, path: Path) -> tuple[int, list[dict]]:
    out = path.with_suffix(".jsonl")
    status, _ = cli(capsys, "withdrawals", path, "--plans", PLANS, "--out", out)
    return status, [json.loads(line) for line in out.read_text().splitlines()]


def test_withdrawals_unbalanced_quote_does_not_swallow_the_next_request(capsys, tmp_path):
    first = (ROOT / "samples" / "withdrawals.csv").read_text().splitlines()[1].replace(",", ',"', 1)
    status, events = withdrawals(capsys, withdrawal_csv(tmp_path, first))
    summary = events[-1]
    assert (summary["requests_read"], summary["requests_checked"], summary["requests_rejected"]) == (2, 1, 1)
    rejected = [e for e in events if e["event"] == "request_rejected"]
    assert rejected[0]["line"] == 2 and "unbalanced quote" in rejected[0]["reason"]


def test_withdrawals_extra_fields_are_a_rejected_request(capsys, tmp_path):
    first = (ROOT / "samples" / "withdrawals.csv").read_text().splitlines()[1] + ",surprise,123-45-6789"
    _, events = withdrawals(capsys, withdrawal_csv(tmp_path, first))
    rejected = [e for e in events if e["event"] == "request_rejected"]
    assert len(rejected) == 1 and rejected[0]["line"] == 2 and "got 15" in rejected[0]["reason"]
    assert events[-1]["requests_checked"] == 1


# -- One bad record must not stop a night's batch -----------------------------------------------

def assert_one_rejected(result, line: int, reason: str, checked: int) -> None:
    assert result.status in (0, 1), result.stderr
    summary = result.summary
    assert summary["rows_read"] == summary["rows_checked"] + summary["rows_rejected"] == len(result.rejects) + checked
    assert summary["rows_checked"] == checked
    assert reason in result.reasons()[line], result.reasons()


def test_a_quoted_field_with_a_newline_is_read_and_numbered_by_its_first_line(capsys, tmp_path):
    lines = good_rows(4)
    lines[1] = lines[1].replace(b"E1", b'"E1"') + b',"a note\nover two lines"'
    header = [*COLUMNS, "note"]
    others = [line + b",plain" for i, line in enumerate(lines) if i != 1]
    data = feed_bytes([others[0], lines[1], *others[1:], b",".join([b"no-such-plan", *good_rows(1)[0].split(b",")[1:]])
                       + b",x"], header)
    result = batch(capsys, tmp_path, data)
    # the unknown plan sits after the two-line record: line 2 + 1 + 2 lines + 2 more rows = 7
    assert_one_rejected(result, 7, "unknown plan", checked=4)


@pytest.mark.parametrize("where", ["middle", "last line"])
def test_an_unbalanced_quote_rejects_its_line_and_the_next_rows_are_read(capsys, tmp_path, where):
    lines = good_rows(5)
    bad = 1 if where == "middle" else 4
    lines[bad] = lines[bad].replace(b"E1,", b'"E1,', 1)
    result = batch(capsys, tmp_path, feed_bytes(lines))
    assert_one_rejected(result, bad + 2, "unbalanced quote", checked=4)
    assert result.rejects[0]["raw"].startswith('acme-mega-backdoor,"E1')


def test_a_non_utf8_byte_rejects_only_its_row(capsys, tmp_path):
    lines = good_rows(3)
    lines[1] = lines[1].replace(b"E1", b"E\xff1")
    result = batch(capsys, tmp_path, feed_bytes(lines))
    assert_one_rejected(result, 3, "not valid UTF-8", checked=2)


def test_a_field_over_one_megabyte_rejects_only_its_row(capsys, tmp_path):
    lines = [line + b",x" for line in good_rows(3)]
    lines[1] = lines[1][:-1] + b"z" * 1_100_000
    result = batch(capsys, tmp_path, feed_bytes(lines, [*COLUMNS, "comment"]))
    assert_one_rejected(result, 3, "record longer than 1,000,000 bytes", checked=2)
    assert len(result.rejects[0]["raw"]) < 300 and len(result.stderr) < 2000


@pytest.mark.parametrize("size", [20_000, 500_000])
def test_a_huge_employee_id_rejects_only_its_row_and_is_echoed_short(capsys, tmp_path, size):
    lines = good_rows(3)
    lines[2] = lines[2].replace(b"E1", b"E" * size)
    result = batch(capsys, tmp_path, feed_bytes(lines))
    assert_one_rejected(result, 4, "employee_id: longer than 256 characters", checked=2)
    reject = result.rejects[0]
    assert len(reject["employee_id"]) < 300 and len(reject["reason"]) < 200


def test_a_200_megabyte_line_is_rejected_with_bounded_memory(tmp_path):
    """In a fresh process: the line is skipped chunk by chunk, never held whole (peak well under 200 MB more)."""
    feed = tmp_path / "feed.csv"
    with feed.open("wb") as handle:
        handle.write(feed_bytes(good_rows(2)))
        chunk = b"x" * (8 << 20)
        for _ in range(25):
            handle.write(chunk)
        handle.write(b"\n" + good_rows(3)[2] + b"\n")
    # The child's own peak (VmHWM, reset at exec): ru_maxrss would also count the pytest process
    # it was forked from, whatever size the tests before this one left it at.
    script = ("import sys\nfrom plancheck.cli import run\nstatus = run(sys.argv[1:])\n"
              "hwm = next(line for line in open('/proc/self/status') if line.startswith('VmHWM:'))\n"
              "print(int(hwm.split()[1]) // 1024, status)")
    result = subprocess.run([sys.executable, "-c", script, "batch", str(feed), "--plans", str(PLANS), "--out",
                             str(tmp_path / "o.jsonl"), "--rejects", str(tmp_path / "r.csv"), "--workers", "1"],
                            capture_output=True, text=True, cwd=tmp_path)
    peak_mb, status = map(int, result.stdout.split())
    assert status == 0 and "Traceback" not in result.stderr
    assert peak_mb < 400, peak_mb
    summary = json.loads((tmp_path / "o.jsonl").read_text().splitlines()[-1])
    assert (summary["rows_read"], summary["rows_checked"], summary["rows_rejected"]) == (4, 3, 1)
    assert '4,"record longer than 1,000,000 bytes"' in (tmp_path / "r.csv").read_text()


def test_a_repeated_header_column_is_exit_2_naming_it(capsys, tmp_path):
    data = feed_bytes([line + b",1" for line in good_rows(1)], [*COLUMNS, "pretax"])
    result = batch(capsys, tmp_path, data)
    assert_clean_error(result.status, result.stderr, "column 'pretax' appears more than once")


def test_a_header_that_is_not_utf8_is_exit_2(capsys, tmp_path):
    data = feed_bytes(good_rows(1), [*COLUMNS, "d\xe9partement"]).replace("é".encode(), b"\xe9")
    result = batch(capsys, tmp_path, data)
    assert_clean_error(result.status, result.stderr, "not UTF-8")


@pytest.mark.parametrize(("kind", "values"), [
    (pa.list_(pa.string()), [["E1"]]),
    (pa.struct([("id", pa.string())]), [{"id": "E1"}]),
    (pa.binary(), [b"E1"]),
])
def test_parquet_nested_or_binary_columns_are_a_clear_error(capsys, tmp_path, kind, values):
    columns = {c: pa.array([v], pa.string()) for c, v in zip(COLUMNS, GOOD)}
    columns["employee_id"] = pa.array(values, kind)
    path = tmp_path / "feed.parquet"
    pq.write_table(pa.table(columns), path)
    status, err = cli(capsys, "batch", path, "--plans", PLANS, "--out", tmp_path / "o", "--rejects", tmp_path / "r")
    assert_clean_error(status, err, "employee_id (", "type plancheck cannot read")


def test_the_rejects_file_shows_only_the_feeds_own_columns(capsys, tmp_path):
    header = [*COLUMNS, "ssn"]
    lines = [line + b",123-45-6789" for line in good_rows(3)]
    lines[0] = lines[0] + b",extra"            # a long row
    lines[1] = b"acme-mega-backdoor,E1,123-45-6789"  # a short row whose third field lands in birth_date
    result = batch(capsys, tmp_path, feed_bytes(lines, header))
    assert list(result.rejects[0]) == ["line", "reason", *COLUMNS, "raw"]
    text = (tmp_path / "rejects.csv").read_text()
    assert text.count("123-45-6789") == 1 and "ssn" not in text.splitlines()[0]
    width = len(header)
    assert {r["reason"] for r in result.rejects} == {f"expected {width} fields, got {width + 1}",
                                                     f"expected {width} fields, got 3"}
    assert all(r["raw"] == "" for r in result.rejects)


# -- Numbers, nesting, disks, signals ------------------------------------------------------------

def test_money_maximum_is_one_figure_everywhere(capsys, tmp_path):
    assert parse_cents("99999999.99") == MAX_CENTS
    with pytest.raises(ValueError, match=r"at most \$99,999,999.99"):
        parse_cents("100000000.00")
    lines = [",".join(row(pretax="99999999.99")).encode(),
             ",".join(row(pretax="10000000000000000", pay_date="2024-01-19")).encode()]
    result = batch(capsys, tmp_path, feed_bytes(lines))
    assert result.reasons() == {3: "pretax: expected at most $99,999,999.99, got '10000000000000000'"}


def test_an_election_of_1e16_per_period_is_exit_2_not_a_wrapped_figure(capsys, tmp_path):
    election = tmp_path / "e.yaml"
    election.write_text("employee: {id: E1, birth_date: 1980-01-01, compensation: {annual: 100000}}\n"
                        "election: {start_date: 2024-01-01, pretax: {amount: 10000000000000000}}\n")
    status, err = cli(capsys, "election", election, "--plan", PLANS / "acme-mega-backdoor.yaml")
    assert_clean_error(status, err, "election.pretax.amount: expected at most $99,999,999.99")


def test_a_withdrawal_above_the_maximum_is_rejected(capsys, tmp_path):
    first = (ROOT / "samples" / "withdrawals.csv").read_text().splitlines()[1].replace("10000.00", "1e16", 1)
    first = first.replace("1e16", "10000000000000000")
    _, events = withdrawals(capsys, withdrawal_csv(tmp_path, first))
    rejected = [e for e in events if e["event"] == "request_rejected"]
    assert len(rejected) == 1 and "at most $99,999,999.99" in rejected[0]["reason"]


@pytest.mark.parametrize("suffix", [".yaml", ".json"])
def test_10000_levels_of_nesting_is_exit_2(capsys, tmp_path, suffix):
    election = tmp_path / f"e{suffix}"
    election.write_text("[" * 10_000 + "]" * 10_000)
    status, err = cli(capsys, "election", election, "--plan", PLANS / "acme-mega-backdoor.yaml")
    assert_clean_error(status, err, "nesting deeper than 100 levels")


def test_a_full_disk_is_exit_2_naming_the_file(capsys, tmp_path, feed):
    status, err = cli(capsys, "batch", feed, "--plans", PLANS, "--out", "/dev/full", "--rejects", tmp_path / "r.csv")
    assert_clean_error(status, err, "error: /dev/full: cannot write: No space left on device")
    assert not (tmp_path / "r.csv").exists()


def test_a_closed_pipe_ends_quietly(tmp_path):
    """`plancheck batch ... | head -1`: no traceback, no 'Exception ignored', a sensible status."""
    feed = tmp_path / "feed.csv"
    feed.write_bytes(feed_bytes([",".join(row(pay_date=f"2024-{m:02d}-05", roth="0.00", after_tax="9000.00"))
                                 .encode() for m in range(1, 13)]))
    process = subprocess.Popen([sys.executable, "-m", "plancheck", "batch", str(feed), "--plans", str(PLANS),
                                "--rejects", str(tmp_path / "r.csv")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               cwd=tmp_path, bufsize=0)
    process.stdout.read(1)
    process.stdout.close()
    err = process.stderr.read().decode()
    assert process.wait(timeout=60) in (0, 1, 2)
    assert "Traceback" not in err and "Exception ignored" not in err and "BrokenPipe" not in err


def test_a_10_megabyte_value_is_echoed_short(capsys, tmp_path):
    election = tmp_path / "e.yaml"
    election.write_text(f"plan_id: {'P' * 10_000_000}\nemployee: {{id: E1, birth_date: 1980-01-01, "
                        "compensation: {annual: 100000}}\nelection: {start_date: 2024-01-01}\n")
    status, err = cli(capsys, "election", election, "--plan", PLANS / "acme-mega-backdoor.yaml")
    assert_clean_error(status, err)
    assert len(err) < 2000


@pytest.mark.parametrize("args", [["--rules", "--rules-dir", "/nonexistent"], ["--rules", "--rules-dir", "EMPTY"],
                                  ["EMPTY"], ["--year", "-5"]],
                         ids=["rules dir missing", "rules dir empty", "empty plan folder", "year -5"])
def test_audits_of_nothing_or_of_nonsense_are_exit_2(capsys, tmp_path, args):
    (tmp_path / "empty").mkdir()
    args = [str(tmp_path / "empty") if a == "EMPTY" else a for a in args]
    status, err = cli(capsys, "audit", *args)
    assert status == 2 and "Traceback" not in err


def test_two_plans_with_one_plan_id_is_exit_2(capsys, tmp_path):
    for name in ("a.yaml", "b.yaml"):
        shutil.copy(PLANS / "acme-mega-backdoor.yaml", tmp_path / name)
    status, err = cli(capsys, "audit", tmp_path)
    assert_clean_error(status, err, "duplicate plan_id 'acme-mega-backdoor', also in")


def test_a_feed_of_nothing_but_garbage_is_all_rejects(capsys, tmp_path):
    """Every record unreadable (bad bytes, wrong field counts): all rejected, counts reconcile, exit 0."""
    data = feed_bytes([b"only,three,fields" if k % 2 else b"\xff\xfe,1,2" for k in range(500)])
    result = batch(capsys, tmp_path, data)
    assert result.status == 0 and result.summary["rows_rejected"] == result.summary["rows_read"] == 500
