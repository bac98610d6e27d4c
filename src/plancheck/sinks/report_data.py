"""What a report shows of one recorded run, read from the history (shared by the HTML and Excel reports).

One pass over the run's findings (and those it resolved) gives the counts and breakdowns; each
finding, as a row, is also handed to the caller's `each_row` on the way (the HTML report encodes
them all for its table), so no report holds a run's findings in memory.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plancheck.findings import SEVERITY_ORDER
from plancheck.money import display_cents, parse_cents

#: Corrections of HCEs listed one by one in a year-end report; past that, the report says how many more there are
#: (every one of them is in the run's JSON lines). The totals by plan and kind always cover them all.
YEAREND_LISTED = 500


@dataclass
class RunReport:
    run: dict[str, Any]
    counts: dict[str, int]
    by_rule: list[dict[str, Any]]
    by_plan: list[dict[str, Any]]
    trend: list[dict[str, Any]]
    #: The runs the resolved findings were last seen in (several for a run compared year by year).
    resolved_from: list[int]
    #: This run's findings per severity ("error", "warning", "info"): `count`, and `at_stake`, the sum of their
    #: excesses in cents, each taken whole whichever its sign (over a limit, or short of what a formula owes).
    by_severity: dict[str, dict[str, int]]
    #: A year-end run's tests, per plan, and its corrections (`yearend_payload`); None for other runs.
    yearend: dict[str, Any] | None = None


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
        "ytd": event.get("ytd") or {}, "test": event.get("test") or {}, "last_seen": None,
    }


def run_report(store, run_id: int, each_row: Callable[[dict[str, Any]], None] | None = None) -> RunReport:
    """Counts, breakdowns and the trend of the last 30 runs of the same scope.

    With `each_row`, every finding of the run is handed to it as a row, in the order recorded, then
    every finding the run resolved (as last seen: `status` "resolved", `last_seen` its run).
    """
    run = store.run(run_id)
    counts_by: Counter = Counter()
    by_rule: Counter = Counter()
    by_plan: Counter = Counter()
    severity_of: dict[str, str] = {}
    by_severity = {severity: {"count": 0, "at_stake": 0} for severity in SEVERITY_ORDER}
    total = 0
    for record in store.findings(run_id):
        total += 1
        tally = by_severity.setdefault(record["severity"], {"count": 0, "at_stake": 0})
        tally["count"] += 1
        excess = record["event"].get("excess")
        if excess is not None:
            tally["at_stake"] += abs(parse_cents(excess, allow_negative=True))  # short of a formula is owed too
        by_rule[(record["rule"], record["status"])] += 1
        by_plan[(record["plan_id"] or record["event"].get("file") or "-", record["status"])] += 1
        severity_of[record["rule"]] = record["severity"]
        counts_by[record["status"]] += 1
        if record["acknowledged"]:
            counts_by["acknowledged"] += 1
        if each_row is not None:
            each_row(_row(record))
    resolved, resolved_from = 0, set()
    for record in store.resolved(run_id):
        resolved += 1
        resolved_from.add(record["previous_run"])
        if each_row is not None:
            each_row(_row(record) | {"status": "resolved", "acknowledged": False, "last_seen": record["previous_run"]})
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
        trend=trend, resolved_from=sorted(resolved_from), by_severity=by_severity,
        yearend=(run.get("counts") or {}).get("yearend"))


def yearend_payload(summaries: list[dict[str, Any]], corrections: list[dict[str, Any]]) -> dict[str, Any]:
    """What a year-end run keeps for its report: each plan's test figures and deadlines (its `yearend_summary`),
    every correction totalled by plan and kind, and the HCEs' corrections one by one, the largest first (at
    most YEAREND_LISTED). Stored with the run's summary in the history."""
    totals: dict[tuple[str, str], dict[str, Any]] = {}
    for c in corrections:
        key = (c["plan_id"], c["kind"])
        total = totals.setdefault(key, {"plan_id": c["plan_id"], "kind": c["kind"], "employees": 0, "cents": 0,
                                        "deadline": c.get("deadline"), "final_deadline": c.get("final_deadline"),
                                        "citation": c.get("citation")})
        total["employees"] += 1
        total["cents"] += parse_cents(c["amount"], allow_negative=True) if c.get("amount") is not None else 0
    hce = sorted((c for c in corrections if c.get("hce")),
                 key=lambda c: (c["plan_id"], -parse_cents(c.get("amount") or 0, allow_negative=True), c["employee_id"]))
    keep = ("plan_id", "employee_id", "kind", "amount", "deadline", "final_deadline", "citation")
    return {
        "plans": [{k: v for k, v in s.items() if k not in ("event", "ruleset_revision")} for s in summaries],
        "totals": [{**{k: v for k, v in t.items() if k != "cents"}, "amount": display_cents(t["cents"])}
                   for _key, t in sorted(totals.items())],
        "hce_corrections": [{k: c.get(k) for k in keep} for c in hce[:YEAREND_LISTED]],
        "hce_corrections_total": len(hce),
    }
