"""The rules audit job: every rule compiles, carries a citation and examples, and its examples pass."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from plancheck.errors import InputError, Problem
from plancheck.jobs.result import JobResult


def rules_audit(rules_dir: Path, out: Path | None, output_format: str = "jsonl") -> JobResult:
    """A rules directory that does not exist or holds no rule is exit status 2, so that a CI gate pointed at the
    wrong path fails instead of passing on zero rules."""
    from plancheck.checks.rule_audit import audit_rules
    from plancheck.jobs.runner import prepare
    if not rules_dir.is_dir():
        raise InputError(Problem(str(rules_dir), "", "rules directory not found"))
    prepare({"--out": out}, [], rules_dir)
    audits, problems = audit_rules(rules_dir)
    if not audits and not problems:
        raise InputError(Problem(str(rules_dir), "", "no rules found (expected checks/<subject>/<id>.yaml files)"))
    failed = [a for a in audits if a.failed]
    ordered: list[dict[str, Any]] = [
        {"event": "rule_file_error", "file": p.source, "line": p.line, "field": p.field or None, "problem": p.expected}
        for p in problems]
    ordered += [{"event": "rule_audited", "rule": a.rule, "file": a.file, "severity": a.severity,
                 "citation": a.citation, "examples": a.examples, "failed_examples": a.failed,
                 "status": "failed" if a.failed else "ok"} for a in audits]
    summary = {"event": "rules_audit_summary", "rules": len(audits), "failing": len(failed),
               "load_problems": len(problems)}

    def document(_summary: dict[str, Any]) -> bytes:
        if output_format == "sarif":
            from plancheck.sinks.sarif import rules_audit_log
            return json.dumps(rules_audit_log(problems, failed), indent=2).encode() + b"\n"
        from plancheck.sinks.text import rules_audit_text
        return rules_audit_text(audits, problems, failed).encode()

    return JobResult(None, None, [], ordered, summary, errors=bool(problems or failed),
                     document=None if output_format == "jsonl" else document)
