"""The mid-year preview: the year-end tests on a projection, and each HCE's room to year end."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from plancheck.checks.yearend import YearendOutcome, check_yearend, percent
from plancheck.documents.census import Census
from plancheck.documents.plan import Plan
from plancheck.engine import Engine
from plancheck.facts.preview import hce_room, project
from plancheck.money import format_cents
from plancheck.rulebook.limits import LimitTable
from plancheck.rulebook.rules import Rulebook


@dataclass
class PreviewOutcome(YearendOutcome):
    previews: list[dict[str, Any]] = field(default_factory=list)


def preview_yearend(census: Census, plans: Sequence[Plan], limits: LimitTable, rulebook: Rulebook, engine: Engine,
                    as_of: dt.date) -> PreviewOutcome:
    """Project the year-to-date census to December 31, run the tests on it, and give each HCE's room.

    Findings and summaries describe the projection (marked `projected`); no corrections are
    listed, since nothing has failed yet.
    """
    projection = project(census, list(plans), limits, as_of)
    outcome = check_yearend(projection.projected, plans, limits, rulebook, engine, as_of.year)
    marks = {"projected": True, "as_of": as_of.isoformat()}
    findings = [type(f)(**{**f.__dict__, "extra": {**f.extra, **marks}}) for f in outcome.findings]
    summaries = [{**s, **marks, "corrections": 0} for s in outcome.summaries]
    previews = [{"event": "preview", **marks, **_money(room)}
                for room in hce_room(projection, outcome.facts, list(plans), limits)]
    return PreviewOutcome(outcome.year, outcome.facts, findings, [], outcome.hces, summaries, previews)


def _money(room: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for key, value in room.items():
        if key.endswith("_cap"):
            out[key] = None if value >= 10_000 else percent(value)
        elif key in ("plan_id", "employee_id", "line", "periods_remaining", "adp_can_pass", "acp_can_pass"):
            out[key] = value
        else:
            out[key] = format_cents(value)
    return out
