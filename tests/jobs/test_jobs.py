"""The jobs layer: each run is a job returning one result, the runner owns history, outputs, events and exit status,
and the command line only parses arguments."""

from __future__ import annotations

import datetime as dt
import json
import re

from helpers import ROOT, plancheck
from plancheck.jobs import runner
from plancheck.jobs.election import Election, election
from plancheck.jobs.result import Common, plans_dir, rules_dir
from plancheck.jobs.yearend import Yearend, yearend

SRC = ROOT / "src" / "plancheck"
HIGH_EARNER = ROOT / "samples/elections/acme-high-earner-2026.yaml"
CATCH_UP_50 = ROOT / "samples/elections/acme-catch-up-50-2024.yaml"
ACME = ROOT / "plans/acme-mega-backdoor.yaml"


def test_the_command_line_only_parses_arguments():
    """cli.py stays under 250 lines, names no rule, and neither records, stages nor emits anything itself."""
    cli = (SRC / "cli.py").read_text()
    assert len(cli.splitlines()) < 250
    rule_ids = {p.stem for p in (ROOT / "rules/checks").rglob("*.yaml")}
    assert len(rule_ids) > 20, "the rule files were found"
    for name in ("cli.py", "cli_options.py", "cli_progress.py"):
        words = set(re.findall(r"[a-z0-9]+(?:-[a-z0-9]+)+", (SRC / name).read_text()))
        assert not words & rule_ids, name
    for machinery in ("HistoryRun", ".finding(", ".close(covered", "history.close(", ".finish(", ".abort(", "events.emit",
                      "replacing(", "OutputLock", "load_limits", "missing_year", "for_year"):
        assert machinery not in cli, machinery


def test_an_election_job_returns_one_result_saying_what_it_covered():
    """The high earner's election: one error finding, the election_checked summary, plan and year for the history,
    and the exit status 1 it implies without a history."""
    result = election(Election(Common(rules_dir(None)), HIGH_EARNER, ACME))
    assert result.command == "election" and not result.env_opts_in
    assert [f.rule for f in result.findings] == ["roth-catch-up-required"]
    assert result.events == result.findings
    assert result.summary["event"] == "election_checked" and result.summary["findings"] == 1
    assert (result.plan_ids, result.year, result.inputs) == (["acme-mega-backdoor"], 2026, [HIGH_EARNER, ACME])
    assert result.status(None) == 1


def test_an_election_without_an_error_implies_exit_status_0():
    result = election(Election(Common(rules_dir(None)), CATCH_UP_50, ACME))
    assert not any(f.severity == "error" for f in result.findings)
    assert result.status(None) == 0


def test_the_service_answer_and_the_cli_line_are_the_same_summary(tmp_path):
    """The service's summary is the CLI's election_checked event: both come from the one job."""
    cli = plancheck("election", HIGH_EARNER, "--plan", ACME, "--out", tmp_path / "out.jsonl")
    assert cli.returncode == 1
    lines = [json.loads(line) for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    answer = runner.answer(election(Election(Common(rules_dir(None)), HIGH_EARNER, ACME)))
    assert answer["summary"] == lines[-1]
    assert answer["findings"] == [{k: v for k, v in e.items() if k != "ruleset_revision"} for e in lines[:-1]]


def test_a_mid_year_preview_tests_the_plan_year_of_its_date(tmp_path):
    """--preview 2026-06-30 is a run of plan year 2026, recorded under its date; without it, the census's year."""
    common = Common(rules_dir(None), plans_dir(None), out=tmp_path / "out.jsonl")
    census = str(ROOT / "samples/census-2026.csv")
    preview = yearend(Yearend(common, census, preview=dt.date(2026, 6, 30), rejects=tmp_path / "r.csv"))
    assert (preview.command, preview.year, preview.summary["year"]) == ("yearend-preview", "2026-06-30", 2026)
    assert preview.summary["preview_as_of"] == "2026-06-30"
    full = yearend(Yearend(common, census, rejects=tmp_path / "r.csv"))
    assert (full.command, full.year, full.summary["preview_as_of"]) == ("yearend", 2026, None)


def test_the_runner_writes_the_result_and_returns_its_exit_status(tmp_path):
    """runner.execute writes the findings then the summary, each with the ruleset revision, and returns 1 for the
    error finding; nothing else is left in the directory."""
    out = tmp_path / "out.jsonl"
    common = Common(rules_dir(None), out=out)
    result = election(Election(common, HIGH_EARNER, ACME))
    assert runner.execute(common, result) == 1
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["event"] for e in events] == ["violation", "election_checked"]
    assert {e["ruleset_revision"] for e in events} == {result.revision}
    assert [p.name for p in tmp_path.iterdir()] == ["out.jsonl"]
