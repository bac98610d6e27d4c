"""Checking withdrawal and conversion requests on the shared engine: requests naming an unknown plan
are rejected, the others fire the withdrawal rules."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plancheck.ages import age_in_months, age_text
from plancheck.documents.plan import Plan
from plancheck.documents.withdrawal import RejectedRequest, WithdrawalRequest, read_requests
from plancheck.engine import Engine
from plancheck.errors import shown
from plancheck.facts.withdrawal import request_facts
from plancheck.findings import Finding, build_finding, severity_counts
from plancheck.money import display_cents, format_cents
from plancheck.rulebook.limits import LimitTable
from plancheck.rulebook.rules import Rulebook

#: Facts of the 72(t) additional tax: a finding naming one carries `additional_tax_72t` on its event.
TAX_72T_FACTS = frozenset({"additional_tax_72t", "additional_tax_72t_before_exceptions", "exempt_amount_72t"})


@dataclass
class WithdrawalOutcome:
    """The findings of every request checked, and the requests rejected."""

    findings: list[Finding]
    rejected: list[RejectedRequest]
    checked: int
    #: The years of the requests checked.
    years: list[int] = field(default_factory=list)
    #: The (plan, year) pairs of the requests checked (what the run history compares plan by plan, year by year).
    covered: list[tuple[str, int]] = field(default_factory=list)

    def summary(self, file: Path) -> dict[str, Any]:
        """The `withdrawals_summary` event: counts that reconcile (read = checked + rejected), findings by rule."""
        by_rule = Counter(f.rule for f in self.findings)
        return {"event": "withdrawals_summary", "file": str(file),
                "requests_read": self.checked + len(self.rejected), "requests_checked": self.checked,
                "requests_rejected": len(self.rejected), "findings": len(self.findings),
                "findings_by_rule": dict(sorted(by_rule.items())),
                "findings_by_severity": severity_counts(f.severity for f in self.findings)}


def check_requests(path: Path, plans: dict[str, Plan], rulebook: Rulebook, engine: Engine,
                   limits: LimitTable) -> WithdrawalOutcome:
    """Check every readable request; requests naming an unknown plan are rejected."""
    accepted, rejected = read_requests(path)
    return check_accepted(accepted, rejected, str(path), plans, rulebook, engine, limits)


def check_accepted(accepted: list[tuple[int | None, WithdrawalRequest]], rejected: list[RejectedRequest],
                   source: str, plans: dict[str, Plan], rulebook: Rulebook, engine: Engine,
                   limits: LimitTable) -> WithdrawalOutcome:
    """Check requests already validated (from a file or a posted list); unknown plans are rejected."""
    rejected = list(rejected)
    checkable, facts = [], []
    for line, request in accepted:
        plan = plans.get(request.plan_id)
        if plan is None:
            rejected.append(RejectedRequest(f"{source}:{line}" if line else source, line,
                                            f"plan_id: unknown plan {shown(request.plan_id)}"))
            continue
        checkable.append((line, request, plan))
        facts.append(request_facts(request, plan, limits))
    firings = engine["withdrawal"].fire(facts) if facts else []
    types = rulebook.fact_types("withdrawal")
    early_age = age_in_months(limits.parameter("early_withdrawal_age"))
    findings = []
    for index, rule_id in firings:
        line, request, plan = checkable[index]
        this = facts[index]
        restricted = this["source_elective"] or this["source_safe_harbor"]
        needs = max(early_age if restricted else 0, this["plan_minimum_age_months"])
        context = {"plan_id": plan.plan_id, "employee_id": request.employee_id, "request_id": request.request_id,
                   "request_kind": request.kind, "source": request.source.value,
                   "request_date": request.request_date.isoformat(), "line": line,
                   "age": age_text(this["age_months"]), "minimum_age": age_text(needs),
                   "amount_requested": display_cents(request.amount)}
        rule = rulebook.by_id[rule_id]
        # A rule that names a 72(t) figure (in its message or as its amount) carries the tax as a field of the event.
        named = rule.placeholders | ({rule.report.amount} if rule.report else set())
        extra = {"additional_tax_72t": format_cents(this["additional_tax_72t"])} if named & TAX_72T_FACTS else None
        findings.append(build_finding(rule, this, types, context, extra))
    rejected.sort(key=lambda r: (r.line or 0, r.where))
    return WithdrawalOutcome(findings=findings, rejected=rejected, checked=len(checkable),
                             years=sorted({request.request_date.year for _, request, _ in checkable}),
                             covered=sorted({(request.plan_id, request.request_date.year)
                                             for _, request, _ in checkable}))
