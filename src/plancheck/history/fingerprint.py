"""Stable identities of findings, so that runs can be compared.

**Fingerprint**: the SHA-256 (hex) of `plan_id|employee_id|year|rule`, each part as written in the
finding (empty when the finding has none: a plan rule has no employee). It names the finding,
never the run, so the same broken rule for the same employee and year in two runs has the same
fingerprint. Two kinds of findings need one more part to stay distinct, and get it appended as
`|subject`: a withdrawal finding names its `request_id` (two requests of one employee are two
findings), and a `plan-document-invalid` finding its `field` (one per problem in a document). A
finding with no `year` takes the year of its `request_date`; one with no `plan_id`, its `file`.

**Figures**: the SHA-256 of `amount|limit|excess`. An acknowledgement covers a finding only
while its figures are those it was acknowledged at: if the excess grows, the finding counts again.
"""

from __future__ import annotations

import hashlib
from typing import Any

#: `event` names of findings (findings.EVENT_BY_SEVERITY's values).
FINDING_EVENTS = frozenset({"violation", "warning", "notice"})


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def fingerprint(event: dict[str, Any]) -> str:
    """The finding's identity across runs (see the module docstring)."""
    year = event.get("year")
    if year is None and event.get("request_date"):
        year = str(event["request_date"])[:4]
    plan = event.get("plan_id") or event.get("file")
    parts = [_text(plan), _text(event.get("employee_id")), _text(year), _text(event.get("rule"))]
    subject = event.get("request_id") or (event.get("field") if event.get("rule") == "plan-document-invalid" else None)
    if subject is not None:
        parts.append(_text(subject))
    return hashlib.sha256("|".join(parts).encode()).hexdigest()


def figures(event: dict[str, Any]) -> str:
    """The hash of the finding's figures (amount, limit, excess)."""
    get = event.get
    key = f"{_text(get('amount'))}|{_text(get('limit'))}|{_text(get('excess'))}"
    return hashlib.sha256(key.encode()).hexdigest()
