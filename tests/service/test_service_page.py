"""The administrators' page in a real headless Chromium (Debian's /usr/bin/chromium, driven by Playwright)."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest

from helpers import ROOT
from helpers.service_server import running

CHROMIUM = Path(os.environ.get("PLANCHECK_CHROMIUM", "/usr/bin/chromium"))
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", "--disable-sync"]
TOKEN = "page-test-token-0123456789abcdef"

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright (the service extra) is not installed")
pytestmark = [pytest.mark.slow,  # the page in a real Chromium: not in the fast tier (pytest -m 'not slow')
              pytest.mark.skipif(not CHROMIUM.exists(), reason=f"no browser at {CHROMIUM}: install Debian's chromium "
                                "(scripts/bootstrap does as root) to run the page test")]


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def page_at(browser):
    """(URL, browser) of a service started with a token file."""
    with running(ROOT / "rules", ROOT / "plans", watch_interval=None, token=TOKEN.encode()) as (url, _log):
        yield url, browser


@pytest.fixture(scope="module")
def open_page_at(browser):
    """(URL, browser) of a service started without a token file (loopback only)."""
    with running(ROOT / "rules", ROOT / "plans", watch_interval=None) as (url, _log):
        yield url, browser


def fill(page, values: dict[str, str]) -> None:
    for field, value in values.items():
        page.fill(f"#{field}", value)


def recorded(page) -> tuple[list[str], list[dict]]:
    """The hosts of every request the page makes, and each API call's URL and Authorization header."""
    hosts: list[str] = []
    calls: list[dict] = []

    def note(request) -> None:
        hosts.append(urlparse(request.url).netloc)
        if urlparse(request.url).path.startswith("/v1/"):
            calls.append({"path": urlparse(request.url).path, "authorization": request.headers.get("authorization")})
    page.on("request", note)
    return hosts, calls


def sign_in(page, token: str = TOKEN) -> None:
    page.fill("#token", token)
    page.click("#signin-button")


def open_page(url, browser):
    """The page signed in with the token and the plans listed; every request the page makes is recorded."""
    page = browser.new_page()
    hosts, _calls = recorded(page)
    page.goto(url + "/")
    page.wait_for_selector("#signin:not([hidden])")
    sign_in(page)
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


def test_the_page_asks_for_the_token_once_and_keeps_it_only_in_the_tab(page_at):
    url, browser = page_at
    context = browser.new_context()
    page = context.new_page()
    _hosts, calls = recorded(page)
    page.goto(url + "/")
    page.wait_for_selector("#signin:not([hidden])")
    assert page.is_hidden("#checker") and page.is_hidden("#session")
    sign_in(page, "not-the-token-0123456789")
    page.wait_for_selector("#signin-status.error")
    assert "not accepted" in page.inner_text("#signin-status")
    assert page.is_hidden("#checker")
    assert page.evaluate("sessionStorage.getItem('plancheck-token')") is None
    sign_in(page)
    page.wait_for_selector("#checker:not([hidden])")
    assert page.is_visible("#session") and page.is_hidden("#signin")
    assert page.evaluate("sessionStorage.getItem('plancheck-token')") == TOKEN
    assert page.evaluate("localStorage.length") == 0 and context.cookies() == []
    page.select_option("#plan", "monthly-mega-backdoor")
    fill(page, {"birth_date": "1979-06-15", "annual": "150000", "start_date": "2024-12-01", "pretax_value": "2000"})
    page.click("#check")
    page.wait_for_selector("#results:not([hidden])")
    assert [c["authorization"] for c in calls if c["path"] == "/v1/elections/check"] == [f"Bearer {TOKEN}"]
    page.reload()  # the same tab: still signed in, not asked again
    page.wait_for_selector("#checker:not([hidden])")
    assert page.is_hidden("#signin")
    assert calls[-1] == {"path": "/v1/plans", "authorization": f"Bearer {TOKEN}"}
    other = context.new_page()  # another tab has its own sessionStorage: asked again
    other.goto(url + "/")
    other.wait_for_selector("#signin:not([hidden])")
    page.click("#signout")
    page.wait_for_selector("#signin:not([hidden])")
    assert page.evaluate("sessionStorage.getItem('plancheck-token')") is None
    context.close()


def test_a_refused_token_asks_again_and_the_check_runs_with_the_figures_typed(page_at):
    url, browser = page_at
    page, _ = open_page(url, browser)
    page.select_option("#plan", "monthly-mega-backdoor")
    fill(page, {"employee_id": "E-1001", "birth_date": "1979-06-15", "annual": "150000", "fica": "140000",
                "ytd_pretax": "21000", "ytd_match": "1375", "start_date": "2024-12-01", "pretax_value": "2000"})
    page.evaluate("sessionStorage.setItem('plancheck-token', 'rotated-away-0123456789')")  # the service's token changed
    page.click("#check")
    page.wait_for_selector("#signin:not([hidden])")
    assert "did not accept the token" in page.inner_text("#signin-status")
    assert page.evaluate("sessionStorage.getItem('plancheck-token')") is None
    sign_in(page)
    page.wait_for_selector("#results:not([hidden])")  # the interrupted check ran once signed in
    assert page.inner_text("#room-year") == "$44,500.00"
    assert page.input_value("#annual") == "150000"
    page.close()


def test_without_a_token_file_the_page_asks_for_nothing(open_page_at):
    url, browser = open_page_at
    page = browser.new_page()
    hosts, calls = recorded(page)
    page.goto(url + "/")
    page.wait_for_selector("#checker:not([hidden])")
    assert page.is_hidden("#signin") and page.is_hidden("#session")
    page.select_option("#plan", "monthly-mega-backdoor")
    fill(page, {"birth_date": "1979-06-15", "annual": "150000", "ytd_pretax": "21000", "ytd_match": "1375",
                "start_date": "2024-12-01", "pretax_value": "2000"})
    page.click("#check")
    page.wait_for_selector("#results:not([hidden])")
    assert page.inner_text("#room-year") == "$44,500.00"
    assert all(c["authorization"] is None for c in calls) and calls
    assert set(hosts) == {urlparse(url).netloc}
    page.close()


def test_a_percent_election_gets_its_nearest_compliant_election_in_percent(page_at):
    url, browser = page_at
    page, _ = open_page(url, browser)
    page.select_option("#plan", "monthly-mega-backdoor")
    page.select_option("#pretax_kind", "percent")
    fill(page, {"birth_date": "1984-03-01", "annual": "108000", "start_date": "2024-01-01", "pretax_value": "25"})
    page.click("#check")
    page.wait_for_selector("#nearest:not([hidden])")
    rows = [r.split("\t") for r in page.inner_text("#nearest-schedule tbody").splitlines()]
    assert [r[2] for r in rows] == ["25% ($2,250.00)", "5% ($450.00)", "0%"]
    assert "in percent of pay for pretax" in page.inner_text("#nearest-text")
    assert "steps of 1%" in page.inner_text("#nearest-text") and "Re-checked" in page.inner_text("#nearest-text")
    page.close()
