"""The jobs over the run history: list runs, show one, compare two, acknowledge a finding, upgrade the database.

Each returns records (the `--format jsonl` events); cli_history.py prints them as text or JSON lines.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from plancheck.errors import InputError, Problem


def store(db: str | None, reading: bool = True):
    """The history, ready; `reading` (every job but `acknowledge`): an archive on a read-only filesystem will do."""
    from plancheck.history.store import Store
    return Store(db, reading=reading).ready()


def run_record(run: dict[str, Any]) -> dict[str, Any]:
    """The `run` event of one recorded run."""
    counts = run.get("counts") or {}
    return {"event": "run", "run": run["id"], "command": run["command"], "scope": run["scope_label"],
            "started_at": run["started_at"], "ended_at": run["ended_at"], "exit_status": run["exit_status"],
            "ruleset_revision": run["ruleset_revision"], "inputs": run["inputs"],
            "findings": counts.get("findings"), "new": counts.get("new"), "recurring": counts.get("recurring"),
            "resolved": counts.get("resolved"), "acknowledged": counts.get("acknowledged"),
            "previous_run": counts.get("previous_run"), "by_year": counts.get("by_year") or []}


def runs(db: str | None, limit: int) -> list[dict[str, Any]]:
    """The newest `limit` runs, newest first."""
    return [run_record(r) for r in store(db).runs(limit=limit)]


def show(db: str | None, run: int) -> tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]:
    """One run: its record, its findings (each with its status) and what it resolved."""
    history = store(db)
    record = history.run(run)
    resolved = list(history.resolved(run))
    found = list(history.findings(run))
    return run_record(record), found, resolved


def resolved_event(run: int, r: dict[str, Any]) -> dict[str, Any]:
    """The `resolved` event of a finding run `run` no longer has."""
    return {"event": "resolved", "fingerprint": r["fingerprint"], "run": run, "previous_run": r["previous_run"],
            "rule": r["rule"], "plan_id": r["plan_id"], "employee_id": r["employee_id"], "year": r["year"]}


def diff(db: str | None, first: int, second: int) -> tuple[list[tuple[str, dict]], dict[str, dict], int]:
    """What changed from run `first` to run `second`: (change, finding) pairs (added, removed, then changed), the
    earlier run's findings by fingerprint, and how many are unchanged."""
    history = store(db)
    history.run(first), history.run(second)
    before = {f["fingerprint"]: f for f in history.findings(first)}
    after = {f["fingerprint"]: f for f in history.findings(second)}
    changes = ([("added", after[fp]) for fp in after if fp not in before]
               + [("removed", before[fp]) for fp in before if fp not in after]
               + [("changed", after[fp]) for fp in after if fp in before and after[fp]["figures"] != before[fp]["figures"]])
    unchanged = sum(1 for fp in after if fp in before and after[fp]["figures"] == before[fp]["figures"])
    return changes, before, unchanged


def change_event(change: str, f: dict[str, Any], before: dict[str, dict]) -> dict[str, Any]:
    """The `finding_added`, `finding_removed` or `finding_changed` event of a diff."""
    event = f["event"]
    record = {"event": "finding_" + change, "fingerprint": f["fingerprint"], "rule": f["rule"],
              "plan_id": f["plan_id"], "employee_id": f["employee_id"], "year": f["year"],
              "amount": event.get("amount"), "excess": event.get("excess")}
    if change == "changed":
        previous = before[f["fingerprint"]]["event"]
        record |= {"previous_amount": previous.get("amount"), "previous_excess": previous.get("excess")}
    return record


def diff_event(first: int, second: int, changes: list[tuple[str, dict]], unchanged: int) -> dict[str, Any]:
    """The `runs_diff` summary event."""
    return {"event": "runs_diff", "from_run": first, "to_run": second,
            "added": sum(c == "added" for c, _ in changes), "removed": sum(c == "removed" for c, _ in changes),
            "changed": sum(c == "changed" for c, _ in changes), "unchanged": unchanged}


def acknowledge(db: str | None, fingerprint: str, reason: str, until: dt.date | None) -> dict[str, Any]:
    """Acknowledge a finding; its `acknowledged` event."""
    if not reason.strip():
        raise InputError(Problem("--reason", "", "give a reason"))
    record = store(db, reading=False).acknowledge(fingerprint, reason.strip(), until)
    return {"event": "acknowledged", **{k: record[k] for k in (
        "id", "fingerprint", "rule", "plan_id", "employee_id", "year", "reason", "until", "acknowledged_by",
        "acknowledged_at")}}


def upgrade(db: str | None) -> tuple[str | None, str]:
    """Create the history database or migrate it to this version's schema: (revision before, revision after)."""
    from plancheck.history.store import Store
    return Store(db).upgrade(verify=True)
