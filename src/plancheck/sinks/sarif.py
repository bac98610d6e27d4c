"""SARIF 2.1.0 output (the subset code-review tools read), built from findings and rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from plancheck import __version__
from plancheck.findings import Finding
from plancheck.history.fingerprint import fingerprint
from plancheck.rulebook.rules import Rule

SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
#: The partialFingerprints key of a finding's identity (history/fingerprint.py): code-review tools match results
#: of two runs by it, as `plancheck runs diff` does. Versioned, as SARIF asks, in case the identity ever changes.
FINGERPRINT_KEY = "plancheckFinding/v1"
LEVEL = {"error": "error", "warning": "warning", "info": "note"}


def _uri(path: str, base: Path) -> str:
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return Path(path).resolve().as_uri()


def _descriptor(rule: Rule) -> dict[str, Any]:
    descriptor: dict[str, Any] = {
        "id": rule.id,
        "name": "".join(part.title() for part in rule.id.replace("-", " ").split()),
        "shortDescription": {"text": rule.title},
        "fullDescription": {"text": " ".join(rule.description.split())},
        "defaultConfiguration": {"level": LEVEL[rule.severity]},
        "properties": {"citation": rule.citation, "subject": rule.subject},
    }
    if rule.references and rule.references[0].url:
        descriptor["helpUri"] = str(rule.references[0].url)
    return descriptor


def sarif_log(findings: list[Finding], rules: list[Rule], base: Path) -> dict[str, Any]:
    """A SARIF log with one run: the rules used, and one result per finding."""
    index = {rule.id: i for i, rule in enumerate(rules)}
    results = []
    for finding in findings:
        result: dict[str, Any] = {
            "ruleId": finding.rule,
            "ruleIndex": index[finding.rule],
            "level": LEVEL[finding.severity],
            "message": {"text": finding.message},
            "properties": {"citation": finding.citation},
            "partialFingerprints": {FINGERPRINT_KEY: fingerprint(finding.as_event())},
        }
        if finding.context.get("file"):
            location: dict[str, Any] = {"artifactLocation": {"uri": _uri(finding.context["file"], base)}}
            if finding.context.get("line"):
                location["region"] = {"startLine": int(finding.context["line"])}
            result["locations"] = [{"physicalLocation": location}]
        results.append(result)
    return {
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": {"driver": {"name": "plancheck", "version": __version__,
                                "informationUri": "https://plancheck.dev",
                                "rules": [_descriptor(r) for r in rules]}},
            "results": results,
        }],
    }


#: The two findings a rules audit can make about the rule files themselves.
RULE_AUDIT_RULES = [{"id": "rule-file-invalid", "shortDescription": {"text": "Rule file does not load"}},
                    {"id": "rule-example-failed", "shortDescription": {"text": "Rule example decided wrongly"}}]


def rules_audit_log(problems: list[Any], failed: list[Any]) -> dict[str, Any]:
    """`plancheck audit --rules` as SARIF: each load problem and each rule whose examples failed."""
    results = [{"ruleId": "rule-file-invalid", "level": "error", "message": {"text": p.expected},
                "locations": [{"physicalLocation": {"artifactLocation": {"uri": Path(p.source).as_posix()},
                                                    **({"region": {"startLine": p.line}} if p.line else {})}}]}
               for p in problems]
    results += [{"ruleId": "rule-example-failed", "level": "error",
                 "message": {"text": f"rule {a.rule}: example(s) decided wrongly: {', '.join(a.failed)}"},
                 "locations": [{"physicalLocation": {"artifactLocation": {"uri": Path(a.file).as_posix()}}}]}
                for a in failed]
    return {"$schema": SCHEMA, "version": "2.1.0",
            "runs": [{"tool": {"driver": {"name": "plancheck-rules", "rules": RULE_AUDIT_RULES}}, "results": results}]}
