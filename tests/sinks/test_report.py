"""The morning report: the HTML file opened in a real headless Chromium, and the Excel workbook.

The browser tests need Debian's Chromium (`/usr/bin/chromium`, installed by scripts/bootstrap as
root) and Playwright for Python; they are skipped, saying which is missing, where either is not.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from pathlib import Path

import pytest

from helpers import ROOT, plancheck
from helpers.history import FEED
from helpers.history import batch as _batch
from helpers.history import findings_of as _findings
from helpers.history import without as _without
from plancheck.money import display_cents, parse_cents

CHROMIUM = os.environ.get("PLANCHECK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]
SCREENSHOT = ROOT / "docs" / "report-screenshot.png"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Two recorded nights (the second without two employees), the second with --html and --xlsx."""
    tmp = tmp_path_factory.mktemp("report")
    db = str(tmp / "history.sqlite")
    _, first = _batch(FEED, tmp, db, "n1")
    gone = sorted({f["employee_id"] for f in _findings(first)})[:2]
    feed2 = _without(FEED, set(gone), tmp / "feed2.csv")
    result = plancheck("batch", feed2, "--out", tmp / "n2.jsonl", "--rejects", tmp / "n2.rejects.csv",
                       "--workers", "1", "--db", db, "--html", tmp / "report.html", "--xlsx", tmp / "report.xlsx")
    assert result.returncode == 1, result.stderr
    events = [json.loads(line) for line in (tmp / "n2.jsonl").read_text().splitlines()]
    return {"tmp": tmp, "db": db, "summary": events[-1], "findings": _findings(events)}


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium): the HTML report is not opened in a browser")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.skip("Playwright for Python is not installed (pip install playwright): browser tests skipped")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def test_report_file_is_self_contained(recorded):
    html = (recorded["tmp"] / "report.html").read_text()
    assert "<script src" not in html and "https://cdn" not in html and "<link " not in html
    assert "vegaEmbed" in html
    assert 'data-encoding="json"' in html, "a small run's findings are embedded as plain JSON"


@pytest.mark.slow  # a real Chromium
def test_report_in_chromium(recorded, browser):
    summary = recorded["summary"]
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))
    page.goto((recorded["tmp"] / "report.html").as_uri())
    assert page.evaluate("window.chartsRendered.then(function (ok) { return ok; })") is True
    assert page.evaluate("window.findingsReady") == summary["findings"] + summary["resolved"]
    assert problems == []
    assert all(url.startswith("file:") for url in requests), requests

    # Every chart drew marks.
    for chart in ("by_rule", "by_plan", "trend"):
        assert page.locator(f"#chart-{chart} svg .mark-rect path, #chart-{chart} svg .mark-line path").count() > 0, chart

    # The headline numbers are the run's counts.
    def headline(name: str) -> int:
        return int(page.locator(f"[data-count={name}]").inner_text())
    assert headline("findings") == summary["findings"]
    assert (headline("new"), headline("recurring"), headline("resolved"), headline("acknowledged")) == (
        summary["new"], summary["recurring"], summary["resolved"], summary["acknowledged"])
    assert summary["resolved"] > 0

    # The headline first says how bad: findings by severity, with the dollars at stake, as an administrator reads money.
    severities = summary["findings_by_severity"]
    assert (headline("error"), headline("warning"), headline("info")) == (
        severities["error"], severities["warning"], severities["info"])
    at_stake = sum(abs(parse_cents(f["excess"], allow_negative=True)) for f in recorded["findings"]
                   if f["severity"] == "error" and f.get("excess") is not None)
    assert page.locator("[data-at-stake=error]").inner_text() == f"{display_cents(at_stake)} over limits or owed"

    # The table starts with the errors, the largest excess first; money reads $1,234.56.
    errors = [f for f in recorded["findings"] if f["severity"] == "error"]
    largest = max(errors, key=lambda f: abs(parse_cents(f["excess"], allow_negative=True)) if f.get("excess") else -1)
    first_row = page.locator("#findings tbody tr").first
    assert first_row.get_attribute("data-severity") == "error"
    assert first_row.locator("td.num").nth(2).inner_text() == display_cents(parse_cents(largest["excess"],
                                                                                         allow_negative=True))
    shown_money = page.locator("#findings tbody td.num").all_inner_texts()
    assert all(text == "" or text.lstrip("-").startswith("$") for text in shown_money) and any("," in t for t in shown_money)
    severities_in_order = page.eval_on_selector_all("#findings tbody tr", "rows => rows.map(r => r.dataset.severity)")
    assert severities_in_order == sorted(severities_in_order, key=["error", "warning", "info"].index)

    # The filters work.
    rows = page.locator("#findings tbody tr")
    assert rows.count() == min(summary["findings"], 100) and int(page.locator("#shown").inner_text()) == summary["findings"]
    rule = "match-formula-mismatch"
    page.select_option("select[data-filter=rule]", rule)
    visible = page.locator("#findings tbody tr:visible")
    assert visible.count() == sum(1 for f in recorded["findings"] if f["rule"] == rule) > 0
    assert int(page.locator("#shown").inner_text()) == visible.count()
    page.select_option("select[data-filter=severity]", "warning")
    assert page.locator("#findings tbody tr:visible").count() == 0
    page.select_option("select[data-filter=rule]", "")
    page.select_option("select[data-filter=severity]", "")
    page.select_option("select[data-filter=status]", "new")
    assert page.locator("#findings tbody tr:visible").count() == summary["new"]
    page.select_option("select[data-filter=status]", "")
    plan = "acme-mega-backdoor"
    page.select_option("select[data-filter=plan]", plan)
    assert page.locator("#findings tbody tr:visible").count() == sum(1 for f in recorded["findings"] if f["plan_id"] == plan)
    page.select_option("select[data-filter=plan]", "")

    # What got fixed is listed.
    page.select_option("select[data-filter=status]", "resolved")
    assert page.locator("#findings tbody tr").count() == summary["resolved"] == int(page.locator("#shown").inner_text())
    last_seen = page.locator("#findings tbody tr", has_text=f"last seen in run {summary['previous_run']}")
    assert last_seen.count() == summary["resolved"]
    page.select_option("select[data-filter=status]", "")

    # Each finding's citation and year-to-date figures are on the page.
    first = recorded["findings"][0]
    assert first["citation"] in page.content()
    assert page.locator("dl.ytd dt", has_text="annual_additions (year to date)").count() > 0

    # The screenshot: the whole page, its table filtered to one rule so that it stays readable.
    page.select_option("select[data-filter=rule]", "402g-deferral-limit")
    page.locator("#findings tbody tr:visible details").first.evaluate("d => d.open = true")
    page.screenshot(path=str(recorded["tmp"] / "report.png"), full_page=True)
    if os.environ.get("PLANCHECK_UPDATE_SCREENSHOT"):
        SCREENSHOT.parent.mkdir(exist_ok=True)
        shutil.copyfile(recorded["tmp"] / "report.png", SCREENSHOT)
    page.select_option("select[data-filter=rule]", "")
    page.emulate_media(media="print")
    assert page.locator(".filters").is_hidden(), "filters are not printed"
    closed = page.locator("#findings tbody tr details:not([open]) p").first
    assert closed.is_visible(), "printed, a folded finding shows its message and figures"
    assert len(page.pdf()) > 10_000
    page.close()


def test_report_command_and_workbook(recorded):
    from openpyxl import load_workbook

    summary = recorded["summary"]
    tmp = recorded["tmp"]
    result = plancheck("report", summary["history_run"], "--xlsx", tmp / "again.xlsx", "--db", recorded["db"])
    assert result.returncode == 0, result.stderr
    for name in ("report.xlsx", "again.xlsx"):
        book = load_workbook(tmp / name, read_only=True)
        sheets = book.sheetnames
        assert sheets[:3] == ["Summary", "All findings", "Resolved"]
        by_rule = summary["findings_by_rule"]
        assert len(sheets) == 3 + len(by_rule)
        total = 0
        for sheet in sheets[3:]:
            rows = list(book[sheet].iter_rows(values_only=True))
            assert rows[0][0] == "status"
            total += len(rows) - 1
            rule = next(r for r in by_rule if r[:31] == sheet)
            assert len(rows) - 1 == by_rule[rule]
        assert total == summary["findings"]
        every = list(book["All findings"].iter_rows(values_only=True))
        assert len(every) - 1 == summary["findings"] and every[0][4] == "rule"
        assert sorted(r[4] for r in every[1:]) == sorted(f["rule"] for f in recorded["findings"])
        gone = list(book["Resolved"].iter_rows(values_only=True))
        assert len(gone) - 1 == summary["resolved"] and {r[0] for r in gone[1:]} == {summary["previous_run"]}
        # Dates are dates (they sort and filter as dates), money numbers with a currency format.
        date_column = every[0].index("date")
        assert all(isinstance(r[date_column], dt.datetime) for r in every[1:] if r[date_column] is not None)
        values = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row and row[0]}
        assert (values["new"], values["recurring"], values["resolved"]) == (summary["new"], summary["recurring"],
                                                                            summary["resolved"])


def test_every_findings_sheet_has_an_autofilter_over_its_rows(recorded):
    from openpyxl import load_workbook

    book = load_workbook(recorded["tmp"] / "report.xlsx")
    for name in book.sheetnames[1:]:
        sheet = book[name]
        assert sheet.auto_filter.ref == f"A1:{sheet.cell(1, sheet.max_column).column_letter}{sheet.max_row}", name
        assert sheet.freeze_panes == "A2"


def test_report_needs_an_output_and_a_run(recorded):
    assert plancheck("report", 1, "--db", recorded["db"]).returncode == 2
    missing = plancheck("report", 999, "--html", recorded["tmp"] / "x.html", "--db", recorded["db"])
    assert missing.returncode == 2 and "no run 999" in missing.stderr
    assert not (recorded["tmp"] / "x.html").exists()


def test_html_and_xlsx_on_audit_and_yearend(tmp_path):
    db = str(tmp_path / "h.sqlite")
    audit = plancheck("audit", "--db", db, "--html", tmp_path / "audit.html", "--xlsx", tmp_path / "audit.xlsx")
    assert audit.returncode == 0, audit.stderr
    yearend = plancheck("yearend", ROOT / "samples" / "census-2026.csv", "--year", "2026", "--rejects",
                        tmp_path / "r.csv", "--html", tmp_path / "yearend.html", "--db", db)
    assert yearend.returncode == 1, yearend.stderr
    summary = json.loads(yearend.stdout.splitlines()[-1])
    html = (tmp_path / "yearend.html").read_text()
    assert f'data-count="findings">{summary["findings"]}<' in html and "acp-test-failed" in html
    # The year-end report shows each test's figures, the HCEs' corrections and their deadlines, from the run.
    events = [json.loads(line) for line in yearend.stdout.splitlines()]
    acp = next(e for e in events if e["event"] == "yearend_summary" and e["plan_id"] == "acme-mega-backdoor")["acp"]
    row = html[html.index('data-plan="acme-mega-backdoor" data-test="acp"'):]
    row = row[:row.index("</tr>")]
    assert f'{acp["hce"]}%' in row and f'{acp["limit"]}%' in row and "FAIL" in row
    assert display_cents(parse_cents(acp["excess"])) in row and "2027-03-15" in row and "2027-12-31" in row
    hce_table = html[html.index('id="hce-corrections"'):]
    hce_table = hce_table[:hce_table.index("</table>")]
    for c in (e for e in events if e["event"] == "correction" and e.get("hce")):
        assert c["employee_id"] in hce_table and display_cents(parse_cents(c["amount"])) in hce_table
    assert (tmp_path / "audit.xlsx").stat().st_size > 0 and "mega-backdoor-ready" in (tmp_path / "audit.html").read_text()


def test_report_output_that_is_an_input_is_refused(tmp_path):
    result = plancheck("audit", "--db", str(tmp_path / "h.sqlite"), "--html", ROOT / "plans" / "acme-mega-backdoor.yaml")
    assert result.returncode == 2
    assert (ROOT / "plans" / "acme-mega-backdoor.yaml").read_text().startswith(("#", "plan_id", "---"))


RULES = (("402g-deferral-limit", "error", "violation"), ("match-formula-mismatch", "error", "violation"),
         ("after-tax-acp-risk", "warning", "warning"))


def _synthetic(i: int) -> dict:
    """Finding number i: employee E{i:07d}, one of three rules, one of two plans, figures in exact dollars."""
    rule, severity, event = RULES[i % 3]
    return {"event": event, "rule": rule, "severity": severity, "title": f"title of {rule}",
            "plan_id": ("acme-mega-backdoor", "bayside-safe-harbor")[i % 2], "employee_id": f"E{i:07d}",
            "year": 2026, "period": 20, "pay_date": "2026-10-16", "line": i + 2, "limit": "24500.00",
            "amount": f"{24500 + i // 100}.{i % 100:02d}", "excess": f"{i // 100}.{i % 100:02d}",
            "citation": f"citation of {rule}", "message": f"Finding {i} <b>not bold</b> & escaped",
            "ytd": {"compensation": "150000.00", "deferrals": "24600.00", "annual_additions": f"{30000 + i}.00"}}


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """Two recorded nights of synthetic findings: 12,500, then 12,000 of them (the first 500 resolved) and 300
    new ones; the second night's HTML report, well past the 5,000 rows the table once stopped at."""
    from plancheck.cli_history import write_reports
    from plancheck.history.recording import HistoryRun, scope_of
    from plancheck.history.store import Store

    tmp = tmp_path_factory.mktemp("large")
    store = Store(str(tmp / "history.sqlite")).ready()
    nights = []
    for numbers in (range(12_500), range(500, 12_800)):
        scope = scope_of("batch", ["acme-mega-backdoor", "bayside-safe-harbor"])
        run = HistoryRun(store, "batch", scope, []).start("t")
        events = [run.finding(_synthetic(i)) for i in numbers]
        summary = {"event": "batch_summary", "findings": len(events), **run.close([(plan, 2026) for plan in ("acme-mega-backdoor", "bayside-safe-harbor")])}
        run.finish(summary, 1)
        nights.append((summary, events))
    (summary, events) = nights[1]
    write_reports(store, summary["history_run"], tmp / "large.html", None)
    return {"path": tmp / "large.html", "summary": summary, "events": events, "first_run": nights[0][0]["history_run"]}


def test_large_report_is_compressed_and_reasonable(large):
    html = large["path"].read_text()
    assert 'data-encoding="gzip+base64"' in html
    assert "<b>not bold</b>" not in html, "texts of the data cannot open tags in the page"
    assert large["path"].stat().st_size < 3_000_000, "12,800 rows stay a file that can be mailed"


def _table_order(events: list[dict]) -> list[dict]:
    """The order the report's table shows findings: errors, warnings, notices; the largest excess first; as recorded."""
    rank = {"error": 0, "warning": 1, "info": 2}
    return [e for _, e in sorted(enumerate(events), key=lambda pair: (
        rank[pair[1]["severity"]], -abs(parse_cents(pair[1]["excess"], allow_negative=True)), pair[0]))]


@pytest.mark.slow  # a real Chromium
def test_every_finding_of_a_large_report_is_reachable(large, browser):
    """A finding far beyond row 5,000 is found by the search, by filters and by paging; the counts match."""
    summary, recorded_events = large["summary"], large["events"]
    events = _table_order(recorded_events)
    counts = (summary["findings"], summary["new"], summary["recurring"], summary["resolved"])
    assert counts == (12_300, 300, 12_000, 500)
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    problems: list[str] = []
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.goto(large["path"].as_uri())
    assert page.evaluate("window.findingsReady") == 12_300 + 500
    shown = lambda: int(page.locator("#shown").inner_text())  # noqa: E731
    rows = page.locator("#findings tbody tr")
    assert shown() == 12_300 and rows.count() == 100
    assert page.locator("#range").inner_text().startswith("findings 1\u2013100 of 12,300 (page 1 of 123)")

    # The search finds finding 11,234 (row 10,735 of the run): exactly one row, with its figures and fingerprint.
    target = next(e for e in events if e["employee_id"] == "E0011234")
    assert recorded_events.index(target) > 5_000
    page.fill("input[data-filter=search]", "e0011234")
    page.wait_for_function("document.getElementById('shown').textContent === '1'")
    assert rows.count() == 1
    row = rows.first
    assert row.get_attribute("data-employee") == "E0011234"
    assert row.locator("td.num").nth(2).inner_text() == display_cents(parse_cents(target["excess"]))
    assert row.locator("details code").text_content() == target["fingerprint"][:16]
    message = row.locator("details p").text_content()
    assert message == "Finding 11234 <b>not bold</b> & escaped", "data is text, never markup"
    for typed in (target["fingerprint"][:12], target["fingerprint"]):
        page.fill("input[data-filter=search]", "")
        page.fill("input[data-filter=search]", typed)
        page.wait_for_function("document.getElementById('shown').textContent === '1'")
        assert rows.first.get_attribute("data-employee") == "E0011234"
    page.fill("input[data-filter=search]", "")
    page.wait_for_function("document.getElementById('shown').textContent === '12300'")

    # Filters count over every finding, not over a page.
    rule, plan = RULES[1][0], "bayside-safe-harbor"
    page.select_option("select[data-filter=rule]", rule)
    assert shown() == sum(1 for e in events if e["rule"] == rule)
    page.select_option("select[data-filter=plan]", plan)
    page.select_option("select[data-filter=status]", "new")
    expected = [e for e in events if e["rule"] == rule and e["plan_id"] == plan and e["status"] == "new"]
    assert shown() == len(expected) == rows.count() > 0
    listed = [rows.nth(i).get_attribute("data-employee") for i in range(rows.count())]
    assert listed == [e["employee_id"] for e in expected]
    page.select_option("select[data-filter=rule]", "")
    page.select_option("select[data-filter=plan]", "")
    page.select_option("select[data-filter=status]", "resolved")
    first_resolved = _table_order([_synthetic(i) for i in range(500)])[0]["employee_id"]
    assert shown() == 500 and rows.first.get_attribute("data-employee") == first_resolved
    assert f"last seen in run {large['first_run']}" in rows.first.inner_text()
    page.select_option("select[data-filter=status]", "")

    # Paging reaches the last row, in the table's order (errors first, the largest excess first).
    page.click("[data-page=next]")
    assert page.locator("#findings").get_attribute("data-page") == "2"
    assert rows.first.get_attribute("data-employee") == events[100]["employee_id"]
    page.click("[data-page=last]")
    assert rows.count() == 100 and rows.last.get_attribute("data-employee") == events[-1]["employee_id"]
    assert page.locator("[data-page=next]").is_disabled()
    page.select_option("#page-size", "500")
    assert rows.count() == 500 and page.locator("#findings").get_attribute("data-page") == "1"

    # A headline tile filters the table; printed, the page on screen and what it shows are printed.
    page.click("[data-status-filter=new]")
    assert shown() == summary["new"] == 300
    page.emulate_media(media="print")
    assert page.locator(".filters").is_hidden() and page.locator("[data-page=next]").is_hidden()
    assert page.locator("#range").is_visible() and "status new" in page.locator("#range").inner_text()
    assert problems == []
    page.close()


def test_a_count_of_zero_is_not_painted_as_an_alarm():
    """Red says "look here": a tile of zero new findings or errors carries no colour class; one above zero does."""
    from plancheck.sinks.report_data import RunReport
    from plancheck.sinks.report_html import FindingsTable, render_html

    def tiles(new: int, errors: int) -> str:
        report = RunReport(run={"id": 1, "command": "batch", "scope_label": "feed", "started_at": None, "exit_status": 0,
                                "ruleset_revision": "r", "counts": {}, "inputs": []},
                           counts={"findings": errors, "new": new, "recurring": 0, "resolved": 0, "acknowledged": 0},
                           by_rule=[], by_plan=[], trend=[], resolved_from=[],
                           by_severity={"error": {"count": errors, "at_stake": 123456}, "warning": {"count": 0, "at_stake": 0},
                                        "info": {"count": 0, "at_stake": 0}})
        return render_html(report, FindingsTable())

    quiet = tiles(0, 0)
    assert 'class="tile new"' in quiet and 'class="tile error"' in quiet
    loud = tiles(3, 2)
    assert 'class="tile new has"' in loud and 'class="tile error has"' in loud
    assert "$1,234.56 over limits or owed" in loud
