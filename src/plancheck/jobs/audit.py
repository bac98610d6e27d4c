"""The audit job: plan documents audited for their configuration (jsonl, text or SARIF)."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plancheck.jobs.result import Common, JobResult


@dataclass
class Audit:
    """`plancheck audit`: the plan files, how the results are written, the year of plans that name none."""

    common: Common
    paths: list[Path]
    output_format: str = "jsonl"
    year: int | None = None


def plan_paths(given: list[Path]) -> list[Path]:
    """The plan files the audit reads: those given (files or folders), else the default plans/."""
    from plancheck.checks.plan_audit import plan_paths as paths
    from plancheck.rulebook.resources import default_plans_dir
    return list(paths(given, default_plans_dir()))


def audited_event(audit, file: bool = True) -> dict[str, Any]:
    """The `plan_audited` event of one plan (the service's answer names no file: the plan was posted)."""
    return {"event": "plan_audited", "plan_id": audit.plan_id, **({"file": str(audit.path)} if file else {}),
            "mega_backdoor": audit.verdicts.get("mega_backdoor"), "findings": len(audit.findings)}


def audit(params: Audit) -> JobResult:
    """Plan documents audited (`plancheck audit`); a plan year without limits is reported and makes the run exit 2."""
    from plancheck.checks.plan_audit import audit_plans
    from plancheck.engine import Engine
    from plancheck.findings import severity_counts
    from plancheck.jobs.runner import prepare
    common = params.common
    prepare({"--out": common.out, "--html": common.html, "--xlsx": common.xlsx}, list(params.paths), common.rules_dir)
    rulebook, limits = params.common.rules()
    audits = audit_plans(params.paths, limits, rulebook, Engine(rulebook), params.year)
    findings = [f for a in audits for f in a.findings]
    ordered = [item for a in audits for item in (*a.findings, audited_event(a))]
    summary = {"event": "audit_summary", "plans": len(audits), "findings": len(findings),
               "findings_by_severity": severity_counts(f.severity for f in findings)}
    missing = sorted({a.year for a in audits if a.year is not None and a.year not in limits.years})

    def document(_summary: dict[str, Any]) -> bytes:
        if params.output_format == "sarif":
            from plancheck.sinks.sarif import sarif_log
            return json.dumps(sarif_log(findings, list(rulebook.rules["plan"]), Path.cwd()), indent=2).encode() + b"\n"
        from plancheck.sinks.text import audit_text
        return audit_text(audits).encode()

    def after(_summary: dict[str, Any]) -> None:
        for year in missing:  # reported as findings at each plan year line; the year's checks could not run
            plans_of_year = ", ".join(str(a.path) for a in audits if a.year == year)
            sys.stderr.write(f"error: {plans_of_year}: plan year {year} not checked: {limits.missing_year(year)}\n")

    return JobResult("audit", rulebook.revision, findings, ordered, summary,
                     plan_ids=[a.plan_id or str(a.path) for a in audits], year=params.year, inputs=list(params.paths),
                     unchecked=bool(missing), document=None if params.output_format == "jsonl" else document,
                     after=after)


def posted(body, limits, rulebook, engine) -> JobResult:
    """A posted plan document (the service's body) audited: its findings and its `plan_audited` summary."""
    from plancheck.checks.plan_audit import audit_document
    checked = audit_document(body, "request body", limits, rulebook, engine)
    return JobResult("audit", rulebook.revision, checked.findings, list(checked.findings),
                     audited_event(checked, file=False), plan_ids=[checked.plan_id] if checked.plan_id else [])
