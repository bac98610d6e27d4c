"""The morning report: the HTML file opened in a real headless Chromium, and the Excel workbook.

The browser tests need Debian's Chromium (`/usr/bin/chromium`, installed by scripts/bootstrap as
root) and Playwright for Python; they are skipped, saying which is missing, where either is not.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from helpers import ROOT, plancheck
from test_history import FEED, _batch, _findings, _without

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

    # The filters work.
    rows = page.locator("#findings tbody tr")
    assert rows.count() == summary["findings"]
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
    assert page.locator("#resolved tbody tr").count() == summary["resolved"]

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
        assert sheets[0] == "Summary"
        by_rule = summary["findings_by_rule"]
        assert len(sheets) == 1 + len(by_rule)
        total = 0
        for sheet in sheets[1:]:
            rows = list(book[sheet].iter_rows(values_only=True))
            assert rows[0][0] == "status"
            total += len(rows) - 1
            rule = next(r for r in by_rule if r[:31] == sheet)
            assert len(rows) - 1 == by_rule[rule]
        assert total == summary["findings"]
        values = {row[0]: row[1] for row in book["Summary"].iter_rows(values_only=True) if row and row[0]}
        assert (values["new"], values["recurring"], values["resolved"]) == (summary["new"], summary["recurring"],
                                                                            summary["resolved"])


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
    assert (tmp_path / "audit.xlsx").stat().st_size > 0 and "mega-backdoor-ready" in (tmp_path / "audit.html").read_text()


def test_report_output_that_is_an_input_is_refused(tmp_path):
    result = plancheck("audit", "--db", str(tmp_path / "h.sqlite"), "--html", ROOT / "plans" / "acme-mega-backdoor.yaml")
    assert result.returncode == 2
    assert (ROOT / "plans" / "acme-mega-backdoor.yaml").read_text().startswith(("#", "plan_id", "---"))
