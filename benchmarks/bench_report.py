"""Benchmark the HTML report of a large night: its size, the time to write it, and to open it in Chromium.

Records two nights of N synthetic findings shaped like a batch's (default 100,000; ten year-to-date
amounts, a message of about 150 characters) into a fresh SQLite file, the second resolving a tenth
of the first, writes the second night's report (`plancheck report RUN --html`), and opens it in
headless Chromium (Debian's, through Playwright; skipped, saying so, where either is missing):
the time until the table shows its first page, to filter every finding by a rule, to search an
employee, and the page's JavaScript heap. Not a test: it prints figures.

    python benchmarks/bench_report.py [--findings 100000]
"""

from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

CHROMIUM = os.environ.get("PLANCHECK_CHROMIUM", "/usr/bin/chromium")
YTD = ("compensation", "deferrals", "deferrals_employer", "deferrals_all_plans", "catch_up", "after_tax",
       "employer_match", "match_expected", "employer_nonelective", "annual_additions")
RULES = (("402g-deferral-limit", "error", "violation"), ("match-formula-mismatch", "error", "violation"),
         ("after-tax-acp-risk", "warning", "warning"), ("contributions-exceed-pay", "error", "violation"))
PLANS = ("acme-mega-backdoor", "bayside-safe-harbor", "cedar-tiered-match")


def finding(i: int) -> dict:
    rule, severity, event = RULES[i % len(RULES)]
    cents = 2_450_000 + i * 7 % 100_000
    return {"event": event, "rule": rule, "severity": severity, "title": f"The title of {rule}",
            "plan_id": PLANS[i % len(PLANS)], "employee_id": f"E{i:07d}", "year": 2026, "period": 20,
            "pay_date": "2026-10-16", "line": i + 2, "limit": "24500.00", "amount": f"{cents // 100}.{cents % 100:02d}",
            "excess": f"{(cents - 2_450_000) // 100}.{cents % 100:02d}",
            "citation": f"IRC 402(g)(1)(A); the citation of {rule}",
            "message": f"Deferrals of ${cents // 100:,}.{cents % 100:02d} this year in the plans of this employer exceed "
                       f"the 2026 402(g) limit of $24,500.00 as the plan must apply it (employee {i}).",
            "ytd": {name: f"{(i * 13 + n * 1000) % 150_000}.{n:02d}" for n, name in enumerate(YTD)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--findings", type=int, default=100_000)
    args = parser.parse_args()
    from plancheck.cli_history import write_reports
    from plancheck.history.recording import HistoryRun, scope_of
    from plancheck.history.store import Store

    n = args.findings
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(str(Path(tmp) / "h.sqlite")).ready()
        for numbers in (range(n), range(n // 10, n + n // 10)):
            run = HistoryRun(store, "batch", scope_of("batch", PLANS), []).start("bench")
            for i in numbers:
                run.finding(finding(i))
            summary = {"event": "batch_summary", "findings": len(numbers), **run.close([2026])}
            run.finish(summary, 1)
        html = Path(tmp) / "report.html"
        start = time.perf_counter()
        write_reports(store, summary["history_run"], html, None)
        seconds = time.perf_counter() - start
        text = html.read_text()
        encoding = "gzip+base64" if 'data-encoding="gzip+base64"' in text else "json"
        print(f"report of {summary['findings']:,} findings and {summary['resolved']:,} resolved: "
              f"{html.stat().st_size / 1e6:.1f} MB ({encoding}), written in {seconds:.2f} s, "
              f"peak memory {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")
        _open(html, summary["findings"])


def _open(html: Path, findings: int) -> None:
    if not Path(CHROMIUM).exists():
        print(f"no Chromium at {CHROMIUM}: not opened")
        return
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("Playwright is not installed: not opened")
        return
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--headless", "--no-sandbox",
                                                                             "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1366, "height": 900})
        start = time.perf_counter()
        page.goto(html.as_uri(), wait_until="domcontentloaded")
        rows = page.evaluate("window.findingsReady")
        ready = time.perf_counter() - start
        page.evaluate("window.chartsRendered")
        charts = time.perf_counter() - start
        start = time.perf_counter()
        page.select_option("select[data-filter=rule]", RULES[1][0])
        filtered = time.perf_counter() - start
        shown = int(page.locator("#shown").inner_text())
        page.select_option("select[data-filter=rule]", "")
        start = time.perf_counter()
        page.fill("input[data-filter=search]", f"E{findings - 7:07d}")
        page.wait_for_function("document.getElementById('shown').textContent === '1'")
        searched = time.perf_counter() - start  # includes the 150 ms the search waits for typing to stop
        heap = page.evaluate("performance.memory ? performance.memory.usedJSHeapSize : 0") / 1e6
        print(f"opened in Chromium: {rows:,} rows readable in {ready:.2f} s (charts drawn at {charts:.2f} s); "
              f"a rule filter over all of them {filtered * 1000:.0f} ms ({shown:,} match); an employee search "
              f"{searched * 1000:.0f} ms; JavaScript heap {heap:.0f} MB")
        browser.close()


if __name__ == "__main__":
    main()
