"""The withdrawals job: in-service withdrawal, hardship, in-plan Roth conversion and rollover requests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plancheck.findings import severity_counts
from plancheck.jobs.result import Common, JobResult


@dataclass
class Withdrawals:
    """`plancheck withdrawals`: a file of requests."""

    common: Common
    file: Path


def rejected_event(file: Path | str, reject) -> dict[str, Any]:
    """The `request_rejected` event of a request that could not be checked."""
    return {"event": "request_rejected", "file": str(file), "line": reject.line, "where": reject.where,
            "reason": reject.reason}


def posted(items: list, plans: dict, rulebook, engine, limits) -> JobResult:
    """A posted list of requests (the service's body), each checked or rejected with its reason."""
    from plancheck.checks.withdrawals import check_accepted
    from plancheck.documents.withdrawal import validate_requests
    accepted, rejected = validate_requests([(None, item) for item in items], "request body")
    outcome = check_accepted(accepted, rejected, "request body", plans, rulebook, engine, limits)
    rejects = [rejected_event("request body", r) for r in outcome.rejected]
    return JobResult("withdrawals", rulebook.revision, outcome.findings, [*outcome.findings, *rejects],
                     posted_summary(outcome, len(items)), plan_ids=list(plans), covered=outcome.covered)


def rejections(result: JobResult) -> list[dict[str, Any]]:
    """The service's `rejected` list: where each rejected request was and why."""
    return [{"where": e["where"], "reason": e["reason"]} for e in result.events
            if isinstance(e, dict) and e["event"] == "request_rejected"]


def posted_summary(outcome, read: int) -> dict[str, Any]:
    """The service's `withdrawals_summary` of a posted list of `read` requests (the file's is outcome.summary)."""
    return {"event": "withdrawals_summary", "requests_read": read, "requests_checked": outcome.checked,
            "requests_rejected": len(outcome.rejected), "findings": len(outcome.findings),
            "findings_by_severity": severity_counts(f.severity for f in outcome.findings)}


def withdrawals(params: Withdrawals) -> JobResult:
    """The requests of a file (CSV, JSON or YAML) checked against the plans they name (`plancheck withdrawals`)."""
    from plancheck.checks.withdrawals import check_requests
    from plancheck.documents.plan import load_plans
    from plancheck.engine import Engine
    from plancheck.jobs.runner import prepare
    common = params.common
    prepare({"--out": common.out}, [params.file], common.rules_dir, common.plans_dir)
    rulebook, limits = params.common.rules()
    plan_docs = {pid: plan for pid, (plan, _) in load_plans(params.common.plans_dir).items()}
    outcome = check_requests(params.file, plan_docs, rulebook, Engine(rulebook), limits)
    rejects = [rejected_event(params.file, r) for r in outcome.rejected]

    def after(summary: dict[str, Any]) -> None:
        from plancheck.sinks.text import withdrawals_summary
        withdrawals_summary(outcome, summary)

    return JobResult("withdrawals", rulebook.revision, outcome.findings, [*outcome.findings, *rejects],
                     outcome.summary(params.file), plan_ids=list(plan_docs), inputs=[params.file],
                     covered=outcome.covered, after=after)
