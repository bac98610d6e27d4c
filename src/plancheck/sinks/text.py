"""Human-readable summaries on stderr (the JSON lines on stdout are the machine interface)."""

from __future__ import annotations

import sys
from collections import Counter
from typing import Any, TextIO

from plancheck.findings import Finding
from plancheck.money import display_dollars as _usd


def _line(stream: TextIO, text: str = "") -> None:
    stream.write(text + "\n")


def election_summary(findings: list[Finding], summary: dict[str, Any], stream: TextIO | None = None) -> None:
    """A short account of one election for the person who ran the check."""
    stream = stream or sys.stderr
    year_end = summary["year_end"]
    room = summary["after_tax_room"]
    _line(stream, f"Election of {summary['employee_id']} in plan {summary['plan_id']}, {summary['year']}: "
                  f"{summary['periods']} pay period{'s' if summary['periods'] != 1 else ''} from {summary['first_pay_date']}")
    _line(stream, f"  year-end deferrals {_usd(year_end['deferrals_all_plans'])} (all plans) against a limit of "
                  f"{_usd(year_end['deferral_limit'])}; catch-up {_usd(year_end['catch_up'])}")
    _line(stream, f"  year-end annual additions {_usd(year_end['annual_additions'])} against a 415(c) limit of "
                  f"{_usd(year_end['annual_additions_limit'])}")
    reached = summary["limit_402g_reached"]
    _line(stream, "  402(g) limit " + (f"reached in period {reached['period']} ({reached['pay_date']})"
                                       if reached else "not reached this year"))
    if "reason" in room:
        _line(stream, f"  after-tax room: none ({room['reason']})")
    else:
        _line(stream, f"  after-tax room: {_usd(room['year'])} for the year, {_usd(room['remaining'])} remaining, "
                      f"{_usd(room['per_period'])} per pay period over {room['periods']} period{'s' if room['periods'] != 1 else ''}")
    findings_block(findings, stream)


def findings_block(findings: list[Finding], stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    if not findings:
        _line(stream, "  no findings")
        return
    counts = Counter(f.severity for f in findings)
    _line(stream, "  findings: " + ", ".join(f"{counts[s]} {s}" for s in ("error", "warning", "info") if counts[s]))
    for f in findings:
        where = f.context.get("pay_date") or f.context.get("request_id") or f.context.get("plan_id") or ""
        _line(stream, f"  - [{f.severity}] {f.rule} {where}: {f.message}")


def batch_summary(summary: dict[str, Any], stream: TextIO | None = None) -> None:
    """Counts of a batch run, for the person who started it."""
    stream = stream or sys.stderr
    _line(stream, f"Checked {summary['feed']}: {summary['rows_read']:,} rows read, {summary['rows_checked']:,} checked, "
                  f"{summary['rows_rejected']:,} rejected (see {summary['rejects_file']})")
    _line(stream, f"  {summary['employees']:,} employees in {summary['plans']} plans; "
                  f"{summary['seconds']:.2f} s, {summary['rows_per_second']:,} rows/s with {summary['workers']} workers")
    severity = summary["findings_by_severity"]
    _line(stream, f"  findings: {summary['findings']:,} ({severity['error']:,} error, {severity['warning']:,} warning, "
                  f"{severity['info']:,} info)")
    for rule, count in summary["findings_by_rule"].items():
        _line(stream, f"    {rule}: {count:,}")


def withdrawals_summary(outcome: Any, summary: dict[str, Any], stream: TextIO | None = None) -> None:
    stream = stream or sys.stderr
    _line(stream, f"Checked {summary['file']}: {summary['requests_read']} requests, {summary['requests_checked']} "
                  f"checked, {summary['requests_rejected']} rejected")
    for reject in outcome.rejected:
        _line(stream, f"  rejected {reject.where}: {reject.reason}")
    findings_block(outcome.findings, stream)


def audit_text(audits: list[Any]) -> str:
    """Plan audit findings for people: file:line, severity, rule and message, with each plan's verdict."""
    out = []
    for audit in audits:
        verdict = {"ready": "mega backdoor Roth: ready", "unavailable": "mega backdoor Roth: not available",
                   None: "not loaded"}[audit.verdicts.get("mega_backdoor")]
        out.append(f"{audit.path} ({audit.plan_id}): {verdict}")
        for f in sorted(audit.findings, key=lambda f: (f.severity != "error", f.severity != "warning", f.rule)):
            if f.rule in audit.verdict_rules:
                continue  # already said in the plan's heading
            where = f"{f.context['file']}:{f.context['line']}" if f.context.get("line") else f.context["file"]
            out.append(f"  {where}: {f.severity}: {f.rule}: {f.message}")
    errors = sum(f.severity == "error" for a in audits for f in a.findings)
    warnings = sum(f.severity == "warning" for a in audits for f in a.findings)
    out.append(f"{len(audits)} plan(s) audited: {errors} error(s), {warnings} warning(s)")
    return "\n".join(out) + "\n"


def rules_audit_text(audits: list[Any], problems: list[Any], failed: list[Any]) -> str:
    """`plancheck audit --rules --format text`: problems (files that do not load, limit figures), then a line per rule, then the counts."""
    lines = [f"{p}" for p in problems]
    lines += [f"{a.file}: {a.rule}: {'FAILED ' + ', '.join(a.failed) if a.failed else 'ok'} "
              f"({a.examples} examples; {a.citation})" for a in audits]
    lines.append(f"{len(audits)} rules, {len(failed)} failing, {len(problems)} file problems")
    return "\n".join(lines) + "\n"
