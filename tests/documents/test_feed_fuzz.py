"""Byte-level fuzzing of payroll feeds through the real command line.

Valid feeds are mutated (quotes, newlines, carriage returns, stray and invalid bytes, field
counts, huge fields) and run through `plancheck batch`. Whatever the bytes: no exception, exit
0 or 1 (the header is never touched), counts reconcile, the rejects file holds one row per
rejected record, every record is either checked or rejected (records as an independent
line-by-line reading of the rules in docs/jobs/batch.md, "Batch feeds", finds them), and the input file is unchanged.
"""

from __future__ import annotations

import random
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.hostile import batch, digest, feed_bytes, good_rows
from plancheck.documents.feed import reader as feed_module
from plancheck.documents.feed import records as records_module
from plancheck.documents.feed.reader import LINE, PROVISIONAL_LINE, Feed, FeedRange, open_feed, renumber
from plancheck.documents.feed.records import MAX_RECORD_BYTES, MAX_RECORD_LINES

SEEDS = st.integers(min_value=0, max_value=2**32 - 1)
MUTATIONS = st.lists(st.sampled_from(["quote", "newline", "cr", "crlf", "bytes", "comma", "delete", "uncomma",
                                      "huge", "open_quote_line", "quoted_newline", "blank"]), min_size=1, max_size=6)


def mutate(body: bytes, mutations: list[str], rng: random.Random) -> bytes:
    """Apply each mutation at a random place of the feed's body."""
    data = bytearray(body)
    for kind in mutations:
        at = rng.randrange(len(data) + 1)
        if kind == "quote":
            data[at:at] = b'"'
        elif kind == "newline":
            data[at:at] = b"\n"
        elif kind == "cr":
            data[at:at] = b"\r"
        elif kind == "crlf":
            data[at:at] = b"\r\n"
        elif kind == "bytes":
            data[at:at] = bytes(rng.choice([0x00, 0xff, 0xc3, 0xe2, 0x82, 0x22, 0x2c, 0x0a]) for _ in range(rng.randint(1, 4)))
        elif kind == "comma":
            data[at:at] = b","
        elif kind == "delete":
            del data[at:at + rng.randint(1, 40)]
        elif kind == "uncomma" and b"," in data:
            where = data.find(b",", at)
            if where >= 0:
                del data[where]
        elif kind == "huge":
            size = rng.choice([300, 5_000, 70_000, MAX_RECORD_BYTES + 10])
            data[at:at] = b"9" * size
        elif kind == "open_quote_line":
            line_start = data.rfind(b"\n", 0, at) + 1
            data[line_start:line_start] = b'"'
        elif kind == "quoted_newline":
            data[at:at] = b'"a\nb"'
        elif kind == "blank":
            data[at:at] = b"\n\n"
    return bytes(data)


def expected_record_lines(data: bytes, limit: int = MAX_RECORD_BYTES) -> list[int]:
    """First line of every record, read line by line as docs/jobs/batch.md states the rules (independent of records.py);
    `limit` is the longest record in bytes (MAX_RECORD_BYTES, or what a test lowered it to)."""
    MAX_RECORD_BYTES = limit  # noqa: N806 - the rule's own name, shadowed on purpose
    body = data.split(b"\n", 1)[1] if b"\n" in data else b""
    lines = body.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    first_lines, i = [], 0
    while i < len(lines):
        line = lines[i]
        if len(line) > MAX_RECORD_BYTES or line.count(b'"') % 2 == 0:
            if line not in (b"", b"\r"):
                first_lines.append(i + 2)
            i += 1
            continue
        size, closed = len(line), None
        for j in range(i + 1, min(len(lines), i + MAX_RECORD_LINES)):
            size += 1 + len(lines[j])
            if len(lines[j]) > MAX_RECORD_BYTES or size > MAX_RECORD_BYTES:
                break
            if lines[j].count(b'"') % 2:
                closed = j
                break
        first_lines.append(i + 2)
        i = closed + 1 if closed is not None else i + 1
    return first_lines


def mutated_feed(seed: int, mutations: list[str], rows: int) -> bytes:
    header, body = feed_bytes(good_rows(rows, employee=f"E{seed % 7}") + good_rows(3, employee="X")).split(b"\n", 1)
    return header + b"\n" + mutate(body, mutations, random.Random(seed))


def read_all(feed: Feed, spans: list[FeedRange]) -> tuple[list[int], list[int]]:
    """Lines of the rows read and of the records rejected, over the given ranges of the feed, each range
    renumbered from the line counts of those before it as the batch does (reader.renumber)."""
    read: list[tuple[list[int], list[int]]] = []
    past: list[int | None] = []
    for span in spans:
        feed.bad_rows = []
        lines = [line for block in feed.csv_batches(span) for line in block.column(LINE).to_pylist()]
        read.append((lines, [bad.line for bad in feed.bad_rows]))
        past.append(feed.next_line)
    rows: list[int] = []
    rejected: list[int] = []
    for (lines, bad), shift in zip(read, renumber(spans, past)):
        rows.extend(line + shift for line in lines)
        rejected.extend(line + shift for line in bad)
    return rows, rejected


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=SEEDS, mutations=MUTATIONS, rows=st.integers(min_value=1, max_value=60), pieces=st.integers(2, 9))
def test_mutated_feeds_split_into_the_expected_records_whatever_the_ranges(tmp_path, monkeypatch, seed, mutations,
                                                                           rows, pieces):
    """Every record is read or rejected exactly once, at its first line, however the feed is cut for workers."""
    monkeypatch.setattr(feed_module, "MIN_RANGE_CHUNK", 64)
    data = mutated_feed(seed, mutations, rows)
    read, rejected = read_whole_and_cut(tmp_path / "feed.csv", data, pieces)
    assert sorted(read + rejected) == expected_record_lines(data)


def read_whole_and_cut(path: Path, data: bytes, pieces: int) -> tuple[list[int], list[int]]:
    """Write `data` to `path`; read it whole and in `pieces` ranges (which must tile it), the same records at the
    same lines either way; the whole reading's lines of rows and of rejected records."""
    path.write_bytes(data)
    whole = read_all(open_feed(path), [FeedRange(open_feed(path).data_start, len(data), 2)])
    feed = open_feed(path)
    spans = feed.ranges(pieces)
    assert [s.start for s in spans[1:]] == [s.stop for s in spans[:-1]] and spans[-1].stop == len(data)
    cut = read_all(feed, spans)
    assert sorted(whole[0]) == sorted(cut[0]) and sorted(whole[1]) == sorted(cut[1])
    return whole


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=SEEDS, mutations=MUTATIONS, rows=st.integers(min_value=20, max_value=80), pieces=st.integers(2, 9))
def test_ranges_cut_between_quotes_read_every_record_once_at_its_line(tmp_path, monkeypatch, seed, mutations, rows,
                                                                      pieces):
    """With the longest record lowered to 400 bytes, cuts land between the quotes of a small feed: each range
    renumbered from the ones before it reads exactly the records of a whole reading, at the same lines."""
    monkeypatch.setattr(records_module, "MAX_RECORD_BYTES", 400)
    data = mutated_feed(seed, mutations, rows)
    read, rejected = read_whole_and_cut(tmp_path / "feed.csv", data, pieces)
    assert sorted(read + rejected) == expected_record_lines(data, limit=400)


def test_a_plain_feed_is_cut_without_reading_it_whole(tmp_path):
    """No quote anywhere: every cut is placed by a window read (provisional line numbers), and the renumbered
    ranges give each row the line a whole reading gives."""
    path = tmp_path / "feed.csv"
    data = feed_bytes(good_rows(3000))
    path.write_bytes(data)
    feed = open_feed(path)
    spans = feed.ranges(6)
    assert len(spans) == 6 and spans[0].first_line == 2
    assert all(s.first_line == PROVISIONAL_LINE for s in spans[1:])
    assert all(data[s.start - 1:s.start] == b"\n" for s in spans[1:])
    assert read_all(feed, spans) == (list(range(2, 3002)), [])


def test_a_cut_moves_past_a_quote_it_would_fall_after(tmp_path, monkeypatch):
    """A quoted field with a newline just before a target offset: the cut lands a record-length after it."""
    monkeypatch.setattr(records_module, "MAX_RECORD_BYTES", 500)
    rows = good_rows(400)
    plain = feed_bytes(rows)
    data_start = plain.index(b"\n") + 1
    target = data_start + (len(plain) - data_start) // 2  # where ranges(2) looks first
    at = plain.count(b"\n", 0, target - 200) - 1  # the row 200 bytes before it
    fields = rows[at].split(b",")
    fields[1] = b'"' + fields[1] + b'\nX"'  # a quoted employee id holding a newline (a rejected value, one record)
    rows[at] = b",".join(fields)
    data = feed_bytes(rows)
    path = tmp_path / "feed.csv"
    path.write_bytes(data)
    feed = open_feed(path)
    spans = feed.ranges(2)
    quote = data.rindex(b'"')
    assert quote < target and len(spans) == 2 and spans[1].start > quote + 500
    assert spans[1].first_line == PROVISIONAL_LINE
    whole = read_all(feed, [FeedRange(feed.data_start, len(data), 2)])
    cut = read_all(feed, spans)  # a block's quoted records come after its plain ones: compare the sets of lines
    assert sorted(cut[0]) == sorted(whole[0]) and cut[1] == whole[1] and len(whole[0]) + len(whole[1]) == 400


def test_a_fully_quoted_feed_is_cut_by_reading_its_records(tmp_path):
    """Quotes everywhere: no window is free of them, so the cuts come from the record splitting, numbered exactly."""
    rows = [b",".join(b'"' + field + b'"' for field in row.split(b",")) for row in good_rows(3000)]
    data = feed_bytes(rows)
    path = tmp_path / "feed.csv"
    path.write_bytes(data)
    feed = open_feed(path)
    feed_module.MIN_RANGE_CHUNK, saved = 4096, feed_module.MIN_RANGE_CHUNK
    try:
        spans = feed.ranges(4)
    finally:
        feed_module.MIN_RANGE_CHUNK = saved
    assert len(spans) == 4 and all(s.first_line > 2 for s in spans[1:])
    assert read_all(feed, spans) == (list(range(2, 3002)), [])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(seed=SEEDS, mutations=MUTATIONS, rows=st.integers(min_value=1, max_value=30))
def test_mutated_feeds_never_break_the_batch(capsys, tmp_path, seed, mutations, rows):
    """Through the command line: exit 0/1 (or 2 when a mutated pay date left the years rules/limits covers, said in
    one line), counts reconcile, rejects hold each rejected record once, input unchanged."""
    data = mutated_feed(seed, mutations, rows)
    result = batch(capsys, tmp_path, data)
    uncovered = result.summary["years_without_limits"]
    assert result.status in ((2,) if uncovered else (0, 1)), result.stderr
    assert [line.startswith("error:") for line in result.stderr.splitlines()].count(True) == (1 if uncovered else 0)
    assert "Traceback" not in result.stderr and len(result.stderr) < 5000
    assert digest(tmp_path / "feed.csv") == digest_of(data)
    summary = result.summary
    assert summary["rows_read"] == summary["rows_checked"] + summary["rows_rejected"]
    assert summary["rows_rejected"] == len(result.rejects)
    records = expected_record_lines(data)
    assert summary["rows_read"] == len(records)
    rejected = [int(r["line"]) for r in result.rejects]
    assert len(set(rejected)) == len(rejected) and set(rejected) <= set(records)
    assert all(len(value) <= 230 for r in result.rejects for key, value in r.items() if key not in ("reason", "line"))


def digest_of(data: bytes) -> str:
    import hashlib
    return hashlib.sha256(data).hexdigest()


def test_the_oracle_itself_sees_quoted_newlines_and_unbalanced_quotes():
    """The reference reading must be able to disagree: check it on a hand-made feed."""
    data = b'h\na\n"b\nc"\nd\n"e\nf\n\ng\n'
    assert expected_record_lines(data) == [2, 3, 5, 6, 7, 9]
