"""The command line as a user meets it: golden outputs, exit codes, clear input errors."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from helpers import ROOT, plancheck

GOLDEN = ROOT / "tests" / "golden"
UPDATE = os.environ.get("PLANCHECK_UPDATE_GOLDEN") == "1"


def check_golden(name: str, text: str) -> None:
    """Compare with tests/golden/NAME; the ruleset revision (a hash of rules/) is normalised."""
    text = re.sub(r'"ruleset_revision": ?"[0-9a-f]+"', '"ruleset_revision": "<revision>"', text)
    path = GOLDEN / name
    if UPDATE:
        path.write_text(text)
    assert path.exists(), f"missing golden file {path}; run with PLANCHECK_UPDATE_GOLDEN=1"
    assert text == path.read_text()


ELECTIONS = sorted((ROOT / "samples" / "elections").glob("*.yaml"))


@pytest.mark.parametrize("path", ELECTIONS, ids=lambda p: p.stem)
def test_election_golden(path: Path):
    """Each sample election's JSON-lines output matches its golden file; exit 1 exactly when an error is found."""
    plan_id = next(line.split(":", 1)[1].strip() for line in path.read_text().splitlines() if line.startswith("plan_id"))
    result = plancheck("election", str(path.relative_to(ROOT)), "--plan", f"plans/{plan_id}.yaml")
    check_golden(f"election-{path.stem}.jsonl", result.stdout)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert events[-1]["event"] == "election_checked"
    assert result.returncode == (1 if any(e["event"] == "violation" for e in events) else 0)
    assert "Traceback" not in result.stderr


def test_finding_events_carry_the_interface_fields():
    """Every finding names rule, severity, plan, employee, period, pay date, limit, amount, excess, citation, message."""
    result = plancheck("election", "samples/elections/acme-high-earner-2026.yaml", "--plan", "plans/acme-mega-backdoor.yaml")
    finding = json.loads(result.stdout.splitlines()[0])
    assert {"event", "rule", "severity", "plan_id", "employee_id", "period", "pay_date", "limit", "amount", "excess",
            "citation", "message", "ruleset_revision"} <= set(finding)
    assert finding["event"] == "violation" and finding["amount"] == "500.00"


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GOOD_EMPLOYEE = "employee: {id: E1, birth_date: 1980-01-01, compensation: {annual: 100000}}\n"


@pytest.mark.parametrize(("text", "expected"), [
    (GOOD_EMPLOYEE + "election: {start_date: 2024-01-01, pretax: {percent: -5}}\n",
     "election.pretax.percent: expected a percentage from 0 to 100"),
    (GOOD_EMPLOYEE + "election: {start_date: 2024-01-01, pretax: {amount: lots}}\n",
     "election.pretax.amount: expected dollars with at most two decimals"),
    (GOOD_EMPLOYEE + "election: {start_date: 2024-02-30}\n", "election.start_date"),
    (GOOD_EMPLOYEE + "election: {start_date: 2027-01-01}\n", "no IRS limits for 2027: rules/limits covers 2023-2026"),
    (GOOD_EMPLOYEE + "election: {start_date: 2024-01-01, pretx: {percent: 5}}\n", "election.pretx: unknown key"),
    ("employee: [\n", "invalid YAML"),
], ids=["negative", "not a number", "impossible date", "missing limit year", "unknown key", "malformed"])
def test_bad_election_input_exits_2_with_a_clear_message(tmp_path, text, expected):
    """Bad input: one clear line naming file, field and expectation; exit 2; no traceback."""
    path = write(tmp_path, "election.yaml", text)
    result = plancheck("election", path, "--plan", "plans/acme-mega-backdoor.yaml")
    assert result.returncode == 2
    assert expected in result.stderr and path in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_json_election_with_impossible_number(tmp_path):
    """JSON elections are read too; a line number is given for syntax errors."""
    path = write(tmp_path, "e.json", '{"employee": {"id": "E1",\n "birth_date": "1980-01-01",,}}')
    result = plancheck("election", path, "--plan", "plans/acme-mega-backdoor.yaml")
    assert result.returncode == 2 and f"{path}:2: invalid JSON" in result.stderr


def test_missing_file_is_exit_2():
    result = plancheck("election", "nope.yaml", "--plan", "plans/acme-mega-backdoor.yaml")
    assert result.returncode == 2 and "nope.yaml: file not found" in result.stderr


def test_usage_error_is_exit_2():
    result = plancheck("election")
    assert result.returncode == 2


def test_schema_kinds():
    """Each exported schema is JSON with a $schema key."""
    for kind in ("plan", "election", "rule", "limit"):
        assert json.loads(plancheck("schema", kind).stdout)["$schema"].startswith("https://json-schema.org/")
    assert plancheck("schema", "nope").returncode == 2


def test_sample_feed_golden(tmp_path):
    """The README's main job: findings on the sample feed match the golden file; every period rule is broken once at least."""
    out, rejects = tmp_path / "findings.jsonl", tmp_path / "rejects.csv"
    result = plancheck("batch", "samples/payroll-2026.csv", "--out", str(out), "--rejects", str(rejects))
    assert result.returncode == 1
    lines = out.read_text().splitlines()
    summary = json.loads(lines[-1])
    for volatile in ("seconds", "rows_per_second", "peak_memory_mb", "rejects_file", "run_id", "workers", "phases"):
        summary.pop(volatile)
    findings = [json.loads(line) for line in lines[:-1]]
    for finding in findings:
        finding.pop("run_id")
    check_golden("batch-sample-feed.jsonl", "\n".join(json.dumps(x, sort_keys=True) for x in [*findings, summary]) + "\n")
    check_golden("batch-sample-rejects.csv", rejects.read_text())
    from plancheck.checks.ruleset import load_rules
    feed_rules = {r.id for r in load_rules(ROOT / "rules")[0].rules["period"] if "feed" in r.inputs}
    assert {f["rule"] for f in findings} == feed_rules
    assert feed_rules < {p.stem for p in (ROOT / "rules" / "checks" / "period").glob("*.yaml")}
    assert summary["rows_read"] == summary["rows_checked"] + summary["rows_rejected"]


@pytest.mark.parametrize("args", [["audit", "--format", "xml"], ["schema", "nope"]], ids=["format", "schema kind"])
def test_choices_are_checked_by_the_command_line(args, capsys):
    """--format and the schema kind are enumerations: anything else is a usage error (exit 2) naming the choices."""
    from plancheck.cli import run
    assert run(args) == 2
    assert "is not one of" in capsys.readouterr().err
