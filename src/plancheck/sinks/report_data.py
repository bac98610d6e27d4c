"""What a report shows of one recorded run, read from the history (shared by the HTML and Excel reports)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

#: The HTML table lists at most this many findings (the charts and counts cover them all).
TABLE_LIMIT = 5_000


@dataclass
class RunReport:
    run: dict[str, Any]
    counts: dict[str, int]
    by_rule: list[dict[str, Any]]
    by_plan: list[dict[str, Any]]
    trend: list[dict[str, Any]]
    findings: list[dict[str, Any]] = field(default_factory=list)
    findings_total: int = 0
    resolved: int = 0
    resolved_rows: list[dict[str, Any]] = field(default_factory=list)


def _row(record: dict[str, Any]) -> dict[str, Any]:
    event = record["event"]
    return {
        "fingerprint": record["fingerprint"], "status": record["status"], "first_seen": record["first_seen"],
        "acknowledged": bool(record["acknowledged"]), "severity": record["severity"], "rule": record["rule"],
        "title": event.get("title"), "plan_id": record["plan_id"] or event.get("file") or "",
        "employee_id": record["employee_id"] or "", "year": record["year"] if record["year"] is not None else "",
        "pay_date": event.get("pay_date") or event.get("request_date") or "", "period": event.get("period"),
        "amount": event.get("amount"), "limit": event.get("limit"), "excess": event.get("excess"),
        "citation": event.get("citation") or "", "message": event.get("message") or "",
        "ytd": event.get("ytd") or {}, "test": event.get("test") or {},
    }


def run_report(store, run_id: int, table_limit: int | None = TABLE_LIMIT) -> RunReport:
    """Counts, breakdowns, the trend of the last 30 runs of the same scope, and the findings (up to `table_limit`)."""
    run = store.run(run_id)
    counts_by = Counter()
    by_rule: Counter = Counter()
    by_plan: Counter = Counter()
    severity_of: dict[str, str] = {}
    rows = []
    total = 0
    for record in store.findings(run_id):
        total += 1
        by_rule[(record["rule"], record["status"])] += 1
        by_plan[(record["plan_id"] or record["event"].get("file") or "-", record["status"])] += 1
        severity_of[record["rule"]] = record["severity"]
        counts_by[record["status"]] += 1
        if record["acknowledged"]:
            counts_by["acknowledged"] += 1
        if table_limit is None or len(rows) < table_limit:
            rows.append(_row(record))
    resolved, resolved_rows = 0, []
    for record in store.resolved(run_id):
        resolved += 1
        if table_limit is None or len(resolved_rows) < table_limit:
            resolved_rows.append(_row(record) | {"previous_run": record["previous_run"]})
    counts = {"findings": total, "new": counts_by["new"], "recurring": counts_by["recurring"],
              "resolved": resolved, "acknowledged": counts_by["acknowledged"]}
    trend = []
    for past in reversed(store.runs(limit=30, scope=run["scope"], up_to=run_id)):
        c = past.get("counts") or {}
        trend += [{"run": past["id"], "measure": name, "count": c.get(name) or 0}
                  for name in ("findings", "new", "resolved")]
    return RunReport(
        run=run, counts=counts,
        by_rule=[{"rule": rule, "status": status, "count": n, "severity": severity_of[rule]}
                 for (rule, status), n in sorted(by_rule.items())],
        by_plan=[{"plan": plan, "status": status, "count": n} for (plan, status), n in sorted(by_plan.items())],
        trend=trend, findings=rows, findings_total=total, resolved=resolved, resolved_rows=resolved_rows)
