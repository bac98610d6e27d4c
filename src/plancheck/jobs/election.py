"""The election job: one employee's contribution election checked for the rest of the year."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from plancheck.jobs.result import Common, JobResult


@dataclass
class Election:
    """`plancheck election`: an election file and the plan document it is checked against."""

    common: Common
    file: Path
    plan: Path


def checked_event(result) -> dict[str, Any]:
    """The `election_checked` event of a checked election (the CLI's last line, the service's summary)."""
    return {"event": "election_checked", **result.summary, "findings": len(result.findings)}


def election(params: Election) -> JobResult:
    """The election file checked against the plan document (`plancheck election`)."""
    from plancheck.documents.election import load_election
    from plancheck.documents.plan import load_plan
    from plancheck.engine import Engine
    from plancheck.jobs.runner import prepare
    prepare({"--out": params.common.out}, [params.file, params.plan], params.common.rules_dir)
    rulebook, limits = params.common.rules()
    plan_doc = load_plan(params.plan)
    election_doc = load_election(params.file)
    return decide(election_doc, plan_doc, limits, rulebook, Engine(rulebook), str(params.file),
                  [params.file, params.plan])


def decide(election_doc, plan_doc, limits, rulebook, engine, source: str, inputs: list | None = None) -> JobResult:
    """One election decided against one plan (the command line's file, the service's request body)."""
    from plancheck.checks.election import check_election
    result = check_election(election_doc, plan_doc, limits, rulebook, engine, source)

    def after(_summary: dict[str, Any]) -> None:
        from plancheck.sinks.text import election_summary
        election_summary(result.findings, result.summary)

    return JobResult("election", rulebook.revision, result.findings, list(result.findings), checked_event(result),
                     plan_ids=[plan_doc.plan_id], year=result.summary.get("year"), inputs=inputs or [],
                     env_opts_in=False, after=after)
