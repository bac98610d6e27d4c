"""Stable identities of findings, so that runs can be compared.

**Fingerprint**: the SHA-256 (hex) of `plan_id|employee_id|year|rule`, each part as written in the
finding (empty when the finding has none: a plan rule has no employee). It names the finding,
never the run, so the same broken rule for the same employee and year in two runs has the same
fingerprint. Two kinds of findings need one more part to stay distinct, and get it appended as
`|subject`: a withdrawal finding names its `request_id` (two requests of one employee are two
findings), and the finding of a plan document that does not load its `field` (one per problem in
a document; the only findings that carry a `field`). A
finding with no `year` takes the year of its `request_date`; one with no `plan_id`, its `file`.

**Figures**: the SHA-256 of `amount|limit|excess`. An acknowledgement covers a finding only
while its figures are those it was acknowledged at: if the excess grows, the finding counts again.
"""

from __future__ import annotations

from hashlib import sha256
from typing import Any

#: `event` names of findings (findings.EVENT_BY_SEVERITY's values).
FINDING_EVENTS = frozenset({"violation", "warning", "notice"})


def finding_year(event: dict[str, Any]) -> int | None:
    """The year a finding belongs to: its `year`, else its `request_date`'s; None when it names neither."""
    year = event.get("year")
    if year is None:
        request_date = event.get("request_date")
        year = str(request_date)[:4] if request_date else None
    try:
        return None if year is None else int(year)
    except (TypeError, ValueError):
        return None


def fingerprint(event: dict[str, Any]) -> str:
    """The finding's identity across runs (see the module docstring).

    Written out inline rather than through a helper per part: it runs once per finding of a
    100,000-finding night.
    """
    get = event.get
    year = get("year")
    if year is None:
        request_date = get("request_date")
        year = str(request_date)[:4] if request_date else ""
    plan = get("plan_id") or get("file")
    employee = get("employee_id")
    rule = get("rule")
    key = (f"{'' if plan is None else plan}|{'' if employee is None else employee}|{year}|"
           f"{'' if rule is None else rule}")
    subject = get("request_id") or get("field")
    if subject is not None:
        key = f"{key}|{subject}"
    return sha256(key.encode()).hexdigest()


def figures(event: dict[str, Any]) -> str:
    """The hash of the finding's figures (amount, limit, excess)."""
    get = event.get
    amount, limit, excess = get("amount"), get("limit"), get("excess")
    key = f"{'' if amount is None else amount}|{'' if limit is None else limit}|{'' if excess is None else excess}"
    return sha256(key.encode()).hexdigest()
