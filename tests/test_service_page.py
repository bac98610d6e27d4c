"""The administrators' page in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest

from helpers import ROOT
from service_server import running

CHROMIUM = Path(os.environ.get("PLANCHECK_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
TOKEN = "page-test-token-0123456789abcdef"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the service extra) is not installed")
pytestmark = pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser at {CHROMIUM}: install Debian's chromium "
                                "(scripts/bootstrap does as root) to run the page test")


@pytest.fixture(scope="module")
def page_at():
    with running(ROOT / "rules", ROOT / "plans", watch_interval=None, token=TOKEN.encode()) as (url, _log):
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
            try:
                yield url, browser
            finally:
                browser.close()


def fill(page, values: dict[str, str]) -> None:
    for field, value in values.items():
        page.fill(f"#{field}", value)


def open_page(url, browser):
    """The page with the token entered and the plans listed; every request the page makes is recorded."""
    page = browser.new_page()
    hosts: list[str] = []
    page.on("request", lambda request: hosts.append(urlparse(request.url).netloc))
    page.goto(url + "/")
    page.fill("#token", TOKEN)
    page.dispatch_event("#token", "change")
    page.wait_for_selector("#plan option[value='monthly-mega-backdoor']", state="attached")
    return page, hosts


def test_seed_election_shows_44500_of_after_tax_room(page_at):
    url, browser = page_at
    page, hosts = open_page(url, browser)
    page.select_option("#plan", "monthly-mega-backdoor")
    fill(page, {"employee_id": "E-1001", "birth_date": "1979-06-15", "annual": "150000", "fica": "140000",
                "ytd_pretax": "21000", "ytd_match": "1375", "start_date": "2024-12-01", "pretax_value": "2000"})
    page.click("#check")
    page.wait_for_selector("#results:not([hidden])")
    assert page.inner_text("#room-year") == "$44,500.00"
    assert "none" in page.inner_text("#findings tbody")
    assert "$23,000.00" in page.inner_text("#projection")
    assert page.is_hidden("#nearest")
    assert set(hosts) == {urlparse(url).netloc}, "the page must load nothing from the network"
    page.close()


def test_findings_and_nearest_compliant_election_are_shown(page_at):
    url, browser = page_at
    page, _ = open_page(url, browser)
    page.select_option("#plan", "monthly-mega-backdoor")
    fill(page, {"birth_date": "1970-03-01", "annual": "240000", "fica": "200000", "start_date": "2026-01-01",
                "pretax_value": "2500"})
    page.click("#check")
    page.wait_for_selector("#results:not([hidden])")
    findings = page.inner_text("#findings tbody")
    assert "roth-catch-up-required" in findings and "error" in findings
    assert page.inner_text("#room-year").startswith("$")
    assert page.is_visible("#nearest")
    assert "$2,500.00" in page.inner_text("#nearest-schedule")
    page.close()


def test_bad_input_names_the_field(page_at):
    url, browser = page_at
    page, _ = open_page(url, browser)
    fill(page, {"birth_date": "1980-01-01", "annual": "12.345", "start_date": "2026-01-01"})
    page.click("#check")
    page.wait_for_selector("#status.error")
    assert "employee.compensation.annual" in page.inner_text("#status")
    page.close()
