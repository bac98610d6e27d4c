"""Years whose IRS figures are not published: every command says so (exit 2), and `audit --rules` holds each
new figure to the way 415(d) indexes it and to the notice that published it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import ROOT, plancheck
from plancheck.checks.limit_audit import limit_problems
from plancheck.errors import InputError
from plancheck.rulebook.limits import load_limits

HINT = "add 2027 to each file under rules/limits/"


def _shifted(text: str) -> str:
    return text.replace("2026", "2027")


@pytest.fixture
def feed_2027(tmp_path: Path) -> Path:
    lines = (ROOT / "samples" / "payroll-2026.csv").read_text().splitlines()[:41]
    feed = tmp_path / "feed.csv"
    feed.write_text("\n".join([lines[0], *map(_shifted, lines[1:])]) + "\n")
    return feed


def test_a_batch_of_2027_rows_is_exit_2_naming_the_year_and_what_to_add(feed_2027, tmp_path):
    """Every row rejected for want of 2027 figures is no pass: exit 2, one line, outputs still written."""
    result = plancheck("batch", feed_2027, "--out", tmp_path / "out.jsonl", "--rejects", tmp_path / "rejects.csv",
                       "--workers", "1")
    assert result.returncode == 2
    error_lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1
    assert "40 row(s) of 2027 not checked" in error_lines[0] and HINT in error_lines[0]
    summary = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[-1])
    assert summary["years_without_limits"] == {"2027": 40}
    assert summary["rows_rejected"] == 40 and summary["rows_checked"] == 0
    assert len((tmp_path / "rejects.csv").read_text().splitlines()) == 41


def test_a_feed_of_2026_rows_with_some_2027_ones_checks_2026_and_is_still_exit_2(feed_2027, tmp_path):
    """The covered rows are checked and reported; the uncovered ones make the night exit 2."""
    original = (ROOT / "samples" / "payroll-2026.csv").read_text().splitlines()
    mixed = tmp_path / "mixed.csv"
    mixed.write_text("\n".join([*original[:31], *feed_2027.read_text().splitlines()[1:6]]) + "\n")
    result = plancheck("batch", mixed, "--out", tmp_path / "out.jsonl", "--rejects", tmp_path / "rejects.csv",
                       "--workers", "1")
    assert result.returncode == 2
    summary = json.loads((tmp_path / "out.jsonl").read_text().splitlines()[-1])
    assert summary["years_without_limits"] == {"2027": 5}
    assert summary["rows_checked"] == 30 and summary["years"] == [2026]


def test_a_covered_feed_has_no_years_without_limits(tmp_path):
    """The field is there, and empty, on an ordinary night (exit status as before)."""
    feed = tmp_path / "feed.csv"
    feed.write_text("\n".join((ROOT / "samples" / "payroll-2026.csv").read_text().splitlines()[:21]) + "\n")
    result = plancheck("batch", feed, "--out", tmp_path / "out.jsonl", "--rejects", tmp_path / "r.csv", "--workers", "1")
    assert result.returncode in (0, 1)
    assert json.loads((tmp_path / "out.jsonl").read_text().splitlines()[-1])["years_without_limits"] == {}


def test_an_election_for_2027_is_exit_2_naming_what_to_add(tmp_path):
    election = tmp_path / "e.yaml"
    election.write_text(_shifted((ROOT / "samples" / "elections" / "acme-high-earner-2026.yaml").read_text()))
    result = plancheck("election", election, "--plan", ROOT / "plans" / "acme-mega-backdoor.yaml")
    assert result.returncode == 2
    assert "no IRS limits for 2027" in result.stderr and HINT in result.stderr


def test_a_yearend_for_2027_is_exit_2(tmp_path):
    result = plancheck("yearend", ROOT / "samples" / "census-2026.csv", "--year", "2027",
                       "--rejects", tmp_path / "r.csv", "--out", tmp_path / "o.jsonl")
    assert result.returncode == 2 and HINT in result.stderr


def test_a_plan_audited_for_2027_reports_the_finding_and_is_exit_2(tmp_path):
    """The plan-year-without-limits finding is written where it belongs, and the run is not a pass.

    Nor does a year without figures pretend the age 60-63 catch-up does not exist in it.
    """
    plan = tmp_path / "acme.yaml"
    plan.write_text((ROOT / "plans" / "acme-mega-backdoor.yaml").read_text().replace("plan_year: 2026",
                                                                                       "plan_year: 2027"))
    result = plancheck("audit", plan, "--out", tmp_path / "out.jsonl")
    assert result.returncode == 2
    assert f"error: {plan}: plan year 2027 not checked" in result.stderr and HINT in result.stderr
    rules = {json.loads(line).get("rule") for line in (tmp_path / "out.jsonl").read_text().splitlines()}
    assert "plan-year-without-limits" in rules
    assert "catch-up-60-63-unavailable" not in rules


def test_a_plan_audited_for_2026_is_not_exit_2(tmp_path):
    result = plancheck("audit", ROOT / "plans" / "acme-mega-backdoor.yaml", "--out", tmp_path / "out.jsonl")
    assert result.returncode in (0, 1) and "not checked" not in result.stderr


# --- audit --rules: each figure as 415(d) indexes it -------------------------------------------------------------

@pytest.fixture
def rules_copy(tmp_path: Path) -> Path:
    target = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", target)
    return target


def _set(rules: Path, family: str, year: int, new: str) -> None:
    path = rules / "limits" / f"{family}.yaml"
    lines = path.read_text().splitlines()
    lines = [new if line.startswith(f"  {year}:") else line for line in lines]
    path.write_text("\n".join(lines) + "\n")


def test_the_bundled_figures_pass_their_indexing_audit():
    assert limit_problems(load_limits(ROOT / "rules" / "limits")) == []


@pytest.mark.parametrize(("family", "year", "value", "expected"), [
    ("elective_deferral_limit", 2026, "24750", "$24,750.00 is not a multiple of $500.00"),
    ("annual_additions_limit", 2026, "72500", "$72,500.00 is not a multiple of $1,000.00"),
    ("compensation_limit", 2026, "362000", "$362,000.00 is not a multiple of $5,000.00"),
    ("hce_compensation_threshold", 2026, "157500", "$157,500.00 is not a multiple of $5,000.00"),
    ("key_employee_compensation_416i", 2026, "236000", "is not a multiple of $5,000.00"),
    ("roth_catch_up_wage_threshold", 2026, "152500", "is not a multiple of $5,000.00"),
    ("catch_up_limit", 2026, "8250", "$8,250.00 is not a multiple of $500.00"),
    ("annual_additions_limit", 2026, "69000", "is lower than 2025's $70,000.00"),
    ("catch_up_limit_age_60_63", 2026, "11000", "below the statutory minimum of $11,250.00"),
])
def test_a_mis_rounded_or_lowered_figure_is_reported_with_file_and_line(rules_copy, family, year, value, expected):
    _set(rules_copy, family, year, f"  {year}: {{amount: {value}, citation: IRS Notice {year - 1}-67}}")
    result = plancheck("audit", "--rules", "--rules-dir", rules_copy, "--format", "text")
    assert result.returncode == 1
    problem = next(line for line in result.stdout.splitlines() if expected in line)
    assert problem.startswith(f"{rules_copy / 'limits' / family}.yaml:")
    assert f"values.{year}.amount" in problem


@pytest.mark.parametrize(("family", "year", "value"), [
    ("elective_deferral_limit", 2026, "25000"),        # one step up from 2025's $23,500 is fine
    ("catch_up_limit_age_60_63", 2026, "11500"),       # the $10,000 indexed past the floor: a multiple of $500
    ("catch_up_limit_age_60_63", 2026, "11250"),       # the floor itself, no multiple of $500
    ("annual_additions_limit", 2026, "70000"),         # unchanged from 2025
])
def test_a_figure_one_step_or_the_floor_passes(rules_copy, family, year, value):
    _set(rules_copy, family, year, f"  {year}: {{amount: {value}, citation: IRS Notice {year - 1}-67}}")
    assert limit_problems(load_limits(rules_copy / "limits")) == []


@pytest.mark.parametrize(("citation", "expected"), [
    ("IRS Notice 2024-80", "IRS Notice 2024-80 is a notice of 2024; the 2026 figures"),
    ("IRS COLA table", "cite the IRS notice that published the 2026 figure"),
])
def test_each_figure_cites_the_notice_of_the_year_before(rules_copy, citation, expected):
    _set(rules_copy, "elective_deferral_limit", 2026, f"  2026: {{amount: 24500, citation: {citation}}}")
    problems = limit_problems(load_limits(rules_copy / "limits"))
    assert [p.field for p in problems] == ["values.2026.citation"]
    assert expected in problems[0].expected


def test_a_limit_file_without_indexing_does_not_load(rules_copy):
    path = rules_copy / "limits" / "elective_deferral_limit.yaml"
    text = path.read_text()
    start, end = text.index("indexing:"), text.index("values:")
    path.write_text(text[:start] + text[end:])
    with pytest.raises(InputError, match="indexing"):
        load_limits(rules_copy / "limits")
