"""The year-end check: build each plan's test facts, let the yearend rules decide, list the corrections.

Takes a validated census and plan documents; returns findings, one correction record per
employee and action, HCE records with their reasons, and a summary per plan. No printing: the
CLI turns the outcome into events or text (sinks/text_yearend.py).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from plancheck.checks import yearend_employer
from plancheck.documents.census import Census
from plancheck.documents.feed.source import Source
from plancheck.documents.plan import Plan
from plancheck.engine import Engine
from plancheck.errors import InputError
from plancheck.facts.yearend import (
    KEY_FIVE_PERCENT_OWNER,
    KEY_OFFICER,
    KEY_ONE_PERCENT_OWNER,
    OWNER_PRIOR_YEAR,
    OWNER_THIS_YEAR,
    PAID_ABOVE_THRESHOLD,
    PlanFacts,
    YearendFacts,
    build_yearend_facts,
    eligibility_problems,
)
from plancheck.findings import Finding, build_finding, severity_counts
from plancheck.memory import release_memory
from plancheck.money import format_cents
from plancheck.rulebook.limits import LimitTable
from plancheck.rulebook.rules import Rule, Rulebook


def percent(hundredths: int) -> str:
    """Hundredths of a percent as the event's exact string: 625 -> '6.25'."""
    sign = "-" if hundredths < 0 else ""
    whole, frac = divmod(abs(int(hundredths)), 100)
    return f"{sign}{whole}.{frac:02d}"


@dataclass(frozen=True)
class Correction:
    """One action for one employee: what, how much, by when, and under which law."""

    plan_id: str
    employee_id: str
    kind: str
    amount: int
    deadline: dt.date | None
    final_deadline: dt.date | None
    citation: str
    line: int
    details: dict[str, Any] = field(default_factory=dict)

    def as_event(self) -> dict[str, Any]:
        return {"event": "correction", "plan_id": self.plan_id, "employee_id": self.employee_id, "kind": self.kind,
                "amount": format_cents(self.amount),
                "deadline": self.deadline.isoformat() if self.deadline else None,
                "final_deadline": self.final_deadline.isoformat() if self.final_deadline else None,
                "citation": self.citation, "line": self.line, **self.details}


@dataclass
class YearendOutcome:
    year: int
    facts: YearendFacts
    findings: list[Finding]
    corrections: list[Correction]
    hces: list[dict[str, Any]]
    summaries: list[dict[str, Any]]


def check_plans(plans: Sequence[Plan], limits: LimitTable, sources: Sequence[str]) -> None:
    """Every plan's eligibility terms within the 410(a) maxima; an InputError names each that is not."""
    problems = [p for plan, source in zip(plans, sources) for p in eligibility_problems(plan, limits, source)]
    if problems:
        raise InputError(problems)


def check_yearend(census: Census, plans: Sequence[Plan], limits: LimitTable, rulebook: Rulebook,
                  engine: Engine, year: int) -> YearendOutcome:
    """Run the year-end tests of every plan in the census (plans[i] is census plan code i)."""
    facts = build_yearend_facts(census, list(plans), limits, year)
    release_memory()  # the facts' intermediates, before the records of every correction and HCE are built
    types = rulebook.fact_types("yearend")
    records = [_as_rule_facts(p.facts, types) for p in facts.plans]
    fired: dict[int, set[str]] = {}
    for index, rule_id in (engine["yearend"].fire(records) if records else []):
        fired.setdefault(index, set()).add(rule_id)
    findings, corrections, hces, summaries = [], [], [], []
    for index, plan_facts in enumerate(facts.plans):
        rules = fired.get(index, set())
        plan = plan_facts.plan
        context = {"plan_id": plan.plan_id, "plan_name": plan.name, "year": year}
        fired_rules = [rulebook.by_id[rule_id] for rule_id in sorted(rules)]
        for rule in fired_rules:
            findings.append(build_finding(rule, records[index], types, context, _test_figures(rule.test, plan_facts.facts)))
        corrections.extend(_corrections(census, facts, plan_facts, fired_rules))
        hces.extend(_hce_records(census, facts, plan_facts))
        summaries.append(_summary(plan_facts, fired_rules, sum(c.plan_id == plan.plan_id for c in corrections),
                                  int(facts.figures.top_heavy_percent * 100)) | yearend_employer.summary(plan_facts))
    return YearendOutcome(year, facts, findings, corrections, hces, summaries)


def _as_rule_facts(facts: dict[str, int], types: dict[str, str]) -> dict[str, int]:
    """The facts as rules read them: percent facts in parts per million (the tests work in hundredths of a percent)."""
    return {name: value * 100 if types.get(name) == "percent" else value for name, value in facts.items()}


def _test_figures(test: str | None, f: dict[str, int]) -> dict[str, Any]:
    """The figures of the failed test (the rule's `test:`), on the finding (hundredths of a percent as exact strings)."""
    if test in ("adp", "acp"):
        t = test
        return {"test": {"hces": f["hces"], "nhces": f["nhces"], "hce_average": percent(f[f"hce_{t}"]),
                         "nhce_average": percent(f[f"nhce_{t}"]), "limit": percent(f[f"{t}_limit"]),
                         "limit_basic": percent(f[f"{t}_limit_basic"]),
                         "limit_alternative": percent(f[f"{t}_limit_alternative"]),
                         "method": "prior_year" if f["prior_year_method"] else "current_year"}}
    if test == "top_heavy":
        return {"test": {"key_employees": f["key_employees"], "key_account_balances": format_cents(f["key_account_balances"]),
                         "account_balances": format_cents(f["account_balances"]),
                         "ratio": percent(f["top_heavy_ratio"]), "minimum_rate": percent(f["top_heavy_minimum_rate"])}}
    return {}


def _corrections(census: Census, facts: YearendFacts, plan_facts: PlanFacts, fired: list[Rule]) -> list[Correction]:
    """One correction per employee and action the fired rules call for (their `corrections:`), in census order."""
    e = facts.employees
    d = plan_facts.deadlines
    plan_id = plan_facts.plan.plan_id
    citations: dict[str, str] = {}
    for rule in fired:
        for correction in rule.corrections:
            citations.setdefault(correction.kind, correction.citation)
    plan_rows = plan_facts.rows
    out: list[Correction] = []
    wanted = {
        "excess_deferral": (e.excess_deferral, d["excess_deferral"], None),
        "adp_recharacterized_as_catch_up": (e.recharacterized, None, None),
        "adp_excess_distribution": (e.adp_distribution, d["excise"], d["final"]),
        "match_forfeiture": (e.match_forfeited, d["excise"], d["final"]),
        "acp_excess_distribution": (e.acp_excess, d["excise"], d["final"]),
        "top_heavy_minimum": (e.top_heavy_minimum, None, None),
    } | yearend_employer.wanted(facts, d)  # 414(v)(7) and 415(c), across the employer's plans
    unknown = set(citations) - set(wanted)
    assert not unknown, f"rules ask for corrections plancheck does not compute: {sorted(unknown)}"
    amounts = {kind: values[plan_rows] for kind, (values, _, _) in wanted.items() if kind in citations}
    if not amounts:
        return out
    any_row = np.zeros(len(plan_rows), dtype=bool)
    for values in amounts.values():
        any_row |= values > 0
    for position in np.flatnonzero(any_row).tolist():
        row = int(plan_rows[position])
        for kind, values in amounts.items():
            amount = int(values[position])
            if amount <= 0:
                continue
            _, deadline, final = wanted[kind]
            details: dict[str, Any] = {"hce": bool(e.hce[row])}
            if kind == "acp_excess_distribution":
                details |= {"from_after_tax": format_cents(int(e.acp_from_after_tax[row])),
                            "from_match": format_cents(int(e.acp_from_match[row]))}
            if kind == "excess_deferral":
                details |= _employer_deferrals(census, facts, row)
            if kind == "adp_excess_distribution" and e.excess_deferral[row]:
                details["reduced_by_excess_deferral"] = format_cents(int(e.excess_deferral[row]))
            if kind == "excess_deferral" and facts.roth_catch_up is not None and facts.roth_catch_up.not_catch_up[row]:
                details["not_catch_up_roth_required"] = format_cents(int(facts.roth_catch_up.not_catch_up[row]))
            details |= yearend_employer.details(facts, kind, row)
            out.append(Correction(plan_id, str(census.employee_id[row]), kind, amount, deadline, final,
                                  citations[kind], int(census.line[row]), details))
    return out


def _employer_deferrals(census: Census, facts: YearendFacts, row: int) -> dict[str, Any]:
    """For someone deferring in several plans of the employer (401(a)(30)): their deferrals in each, and the order
    an excess comes back in (the plan holding the most first, each at most its own: facts/employer.py)."""
    e, money = facts.employees, census.money
    same = facts.person_rows.get(int(e.person[row]), [])
    if len(same) < 2:
        return {}
    each = sorted(((census.plan_ids[int(census.plan[r])], int(money["pretax"][r] + money["roth"][r])) for r in same),
                  key=lambda item: (-item[1], item[0]))
    return {"employer_deferrals": format_cents(int(e.employer_deferrals[row])),
            "plan_deferrals": {plan: format_cents(amount) for plan, amount in each},
            "returned_from": [plan for plan, _ in each]}


def _hce_records(census: Census, facts: YearendFacts, plan_facts: PlanFacts) -> list[dict[str, Any]]:
    """Each HCE of the plan with every reason that makes them one, and their ratios."""
    e, figures = facts.employees, facts.figures
    year = figures.year
    out = []
    rows = plan_facts.rows[e.hce[plan_facts.rows]]
    top_paid = plan_facts.plan.nondiscrimination_testing.top_paid_group_election
    for row in rows.tolist():
        reasons = []
        related = int(census.related[row])
        attributed_from = str(census.employee_id[related]) if related >= 0 else None
        for bit, owned, own, y in ((OWNER_THIS_YEAR, e.ownership, census.ownership, year),
                                   (OWNER_PRIOR_YEAR, e.prior_year_ownership, census.prior_year_ownership, year - 1)):
            if e.hce_reasons[row] & bit:
                reasons.append({"reason": "five_percent_owner", "year": y, "ownership_percent": _ppm(int(owned[row])),
                                "direct_percent": _ppm(int(own[row])),
                                "attributed_from": attributed_from if owned[row] != own[row] else None,
                                "citation": "IRC 414(q)(1)(A), 416(i)(1)(B), 318(a)(1)"})
        if e.hce_reasons[row] & PAID_ABOVE_THRESHOLD:
            reasons.append({"reason": "prior_year_compensation", "year": year - 1,
                            "compensation": format_cents(int(census.prior_year_compensation[row])),
                            "threshold": format_cents(figures.hce_threshold_lookback), "top_paid_group": top_paid,
                            "citation": "IRC 414(q)(1)(B)" + (", 414(q)(3)" if top_paid else "")})
        out.append({"event": "hce", "plan_id": plan_facts.plan.plan_id, "employee_id": str(census.employee_id[row]),
                    "year": year, "eligible": bool(e.eligible[row]), "adr": percent(int(e.adr[row])),
                    "acr": percent(int(e.acr[row])), "reasons": reasons, "line": int(census.line[row]),
                    "ratio_plans": _ratio_plans(census, facts, row)})
    return out


def _ratio_plans(census: Census, facts: YearendFacts, row: int) -> list[str]:
    """The employer's plans whose contributions make this HCE's one ratio: those they are eligible in
    (1.401(k)-2(a)(3)(ii)); just this plan for someone in one plan."""
    e = facts.employees
    rows = facts.person_rows.get(int(e.person[row]), [row])
    return sorted(census.plan_ids[int(census.plan[r])] for r in rows if e.eligible[r] or r == row)


def key_reasons(bits: int) -> list[str]:
    return [name for bit, name in ((KEY_OFFICER, "officer"), (KEY_FIVE_PERCENT_OWNER, "five_percent_owner"),
                                   (KEY_ONE_PERCENT_OWNER, "one_percent_owner")) if bits & bit]


def _ppm(value: int) -> str:
    text = f"{value // 10_000}.{value % 10_000:04d}".rstrip("0").rstrip(".")
    return text


def _test_summary(f: dict[str, int], t: str, failed: bool) -> dict[str, Any]:
    tested = bool(f[f"{t}_tested"])
    if tested:
        reason = None
    elif t == "adp" and f["safe_harbor"]:
        reason = "safe harbor plan (401(k)(12), (13))"
    elif t == "acp" and f["acp_match_exempt"]:
        reason = "safe-harbor match (401(m)(11)) and no after-tax contributions"
    elif not f["hces"]:
        reason = "no eligible HCEs"
    elif not f["nhces"]:
        reason = "no eligible NHCEs (Treas. Reg. 1.401(k)-2(a)(1)(ii))"
    else:
        reason = "no contributions the test counts"
    figures = {"tested": tested, "not_tested_because": reason,
               "method": "prior_year" if f["prior_year_method"] else "current_year",
               "hce": percent(f[f"hce_{t}"]), "nhce": percent(f[f"nhce_{t}"]), "limit": percent(f[f"{t}_limit"]),
               "limit_basic": percent(f[f"{t}_limit_basic"]), "limit_alternative": percent(f[f"{t}_limit_alternative"]),
               "passed": not failed, "margin": percent(f[f"{t}_limit"] - f[f"hce_{t}"]),
               "excess": format_cents(f[f"{t}_excess"])}
    if t == "adp":
        figures |= {"recharacterized": format_cents(f["adp_recharacterized"]),
                    "distributed": format_cents(f["adp_distributed"])}
    else:
        figures |= {"match_exempt": bool(f["acp_match_exempt"])}
    return figures


def _summary(plan_facts: PlanFacts, fired: list[Rule], corrections: int, top_heavy_limit: int) -> dict[str, Any]:
    f = plan_facts.facts
    failed_tests = {rule.test for rule in fired}
    top_heavy = bool(f["top_heavy_required_group"]) and f["key_account_balances"] > f["top_heavy_balance_limit"]
    return {
        "event": "yearend_summary", "plan_id": plan_facts.plan.plan_id, "year": f["year"],
        "employees": f["employees"], "eligible": f["eligible_employees"], "hces": f["hces"], "nhces": f["nhces"],
        "adp": _test_summary(f, "adp", "adp" in failed_tests),
        "acp": _test_summary(f, "acp", "acp" in failed_tests),
        "top_heavy": {"exempt": bool(f["top_heavy_exempt"]), "top_heavy": top_heavy,
                      "key_employees": f["key_employees"], "key_account_balances": format_cents(f["key_account_balances"]),
                      "aggregation": plan_facts.top_heavy_aggregation, "group": plan_facts.top_heavy_group,
                      "required_group": bool(f["top_heavy_required_group"]),
                      "key_officer_limit": f["key_officer_limit"], "officers_beyond_limit": f["officers_beyond_limit"],
                      "account_balances": format_cents(f["account_balances"]), "ratio": percent(f["top_heavy_ratio"]),
                      "limit": percent(top_heavy_limit),
                      "minimum_rate": percent(f["top_heavy_minimum_rate"]),
                      "minimum_owed": format_cents(f["top_heavy_minimum_owed"] if "top_heavy" in failed_tests else 0),
                      "passed": "top_heavy" not in failed_tests},
        "excess_deferrals": format_cents(f["excess_deferrals"]),
        "match_forfeited": format_cents(f["match_forfeited"]),
        "deadlines": {k: v.isoformat() for k, v in plan_facts.deadlines.items()},
        "corrections": corrections, "findings": [rule.id for rule in fired],
    }


def run_summary(census_path: Path | Source, census: Census, outcome: Any, as_of: dt.date | None,
                feed: dict[str, Any] | None, rejects_file: str, seconds: float) -> dict[str, Any]:
    """The `yearend_run_summary` event: what was read, rejected and found, and how long it took."""
    by_rule = Counter(f.rule for f in outcome.findings)
    return {"event": "yearend_run_summary", "census": str(census_path), "year": outcome.year,
            "preview_as_of": as_of.isoformat() if as_of else None, "feed": feed,
            "rows_read": census.rows_read, "rows_checked": census.rows_checked, "rows_rejected": census.rows_rejected,
            "rejects_file": rejects_file, "extra_columns": census.extra_columns, "plans": len(outcome.summaries),
            "findings": len(outcome.findings), "findings_by_rule": dict(sorted(by_rule.items())),
            "findings_by_severity": severity_counts(f.severity for f in outcome.findings),
            "corrections": len(outcome.corrections), "seconds": round(seconds, 3),
            "rows_per_second": int(census.rows_read / seconds) if seconds > 0 else 0}
