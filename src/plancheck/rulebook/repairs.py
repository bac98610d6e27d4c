"""A rule's repair: how the nearest compliant election clears the rule (checks/nearest.py runs them).

A period rule may declare `repair:`, the smallest change to an election's pretax, Roth and
after-tax amounts that clears it. The vocabulary is small and says what the repair does; each
repair reads the rule's own condition (where it fires) and its report (amount and limit: the
excess is amount - limit, the amount alone where the rule reports no limit):

  {kind: stop_source, source: S}                set source S to zero in every pay period
  {kind: cut_excess, from: [S, ...]}            in each pay period where the rule fires, cut the
                                                period's excess, source by source in that order
      periods: first                            ... in the first such period only (then re-checked)
      at_most: FACT                             ... never more than FACT in that period
  {kind: cut_growth, from: [S, ...]}            cut what each pay period adds to the year-to-date excess
  {kind: move_growth, from: S, to: T}           move what each pay period adds to the year-to-date
                                                excess from S to T (the total unchanged); never into a
                                                source the plan does not accept
  {kind: cut_year, from: [[S, ...], ...]}       cut the smallest total that clears the excess at the
                                                year's last pay period, latest pay period first, one
                                                group of sources after another

Every repair has an `order`: the search tries them lowest first, one repair per round, until a
round changes nothing.
"""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field

from plancheck.models import Strict

Source = Literal["pretax", "roth", "after_tax"]
#: The election's sources a repair may change, in the order the offer lists them.
SOURCES: tuple[str, ...] = ("pretax", "roth", "after_tax")

_ORDER = Field(ge=1, le=999, description="the search tries repairs lowest order first, one per round; "
                                         "each order is used by one rule")


class StopSource(Strict):
    """Set a source to zero in every pay period (a source the plan does not accept)."""

    kind: Literal["stop_source"]
    order: int = _ORDER
    source: Source


class CutExcess(Strict):
    """Cut the excess of each pay period where the rule fires, source by source."""

    kind: Literal["cut_excess"]
    order: int = _ORDER
    take_from: list[Source] = Field(alias="from", min_length=1, description="the sources cut, in this order")
    periods: Literal["each", "first"] = Field(
        default="each", description="each: every period where the rule fires at once; first: only the first "
        "(the rest are re-checked after it, as the period facts are rebuilt)")
    at_most: str | None = Field(default=None, description="a fact: the cut in a period is never more than it")


class CutGrowth(Strict):
    """Cut, in each pay period, what it adds to the rule's year-to-date excess."""

    kind: Literal["cut_growth"]
    order: int = _ORDER
    take_from: list[Source] = Field(alias="from", min_length=1, description="the sources cut, in this order")


class MoveGrowth(Strict):
    """Move, in each pay period, what it adds to the rule's year-to-date excess from one source to another."""

    kind: Literal["move_growth"]
    order: int = _ORDER
    take_from: Source = Field(alias="from")
    to: Source


class CutYear(Strict):
    """Cut the smallest total that clears the year-end excess, latest pay period first."""

    kind: Literal["cut_year"]
    order: int = _ORDER
    take_from: list[list[Source]] = Field(
        alias="from", min_length=1, description="groups of sources: the first group is cut over every pay period, "
        "latest first, before the next group is touched; within a group, source by source")


Repair = Annotated[Union[StopSource, CutExcess, CutGrowth, MoveGrowth, CutYear], Field(discriminator="kind")]


def repair_problems(repair: Repair, subject: str, has_report: bool, fact_types: dict[str, str]) -> list[tuple[str, str]]:
    """What is wrong with a rule's repair given its subject, report and the subject's facts: (key, expected)."""
    problems = []
    if subject != "period":
        problems.append(("repair", "only period rules have a repair (the nearest compliant election)"))
    if not isinstance(repair, StopSource) and not has_report:
        problems.append(("repair", f"a {repair.kind} repair cuts the rule's reported excess: give report:"))
    if isinstance(repair, MoveGrowth) and repair.take_from == repair.to:
        problems.append(("repair.to", "must differ from the source moved from"))
    if isinstance(repair, CutExcess) and repair.at_most is not None and repair.at_most not in fact_types:
        problems.append(("repair.at_most", f"unknown fact {repair.at_most!r}"))
    if isinstance(repair, CutExcess | CutGrowth):
        groups = [repair.take_from]
    elif isinstance(repair, CutYear):
        groups = repair.take_from
    else:
        groups = []
    for group in groups:
        if len(set(group)) != len(group):
            problems.append(("repair.from", f"names a source twice: {group}"))
    named = {s for g in groups for s in g} | {getattr(repair, k) for k in ("source", "to") if hasattr(repair, k)}
    if isinstance(repair, MoveGrowth):
        named.add(repair.take_from)
    if missing := sorted(s for s in named if s not in fact_types):
        problems.append(("repair", f"source(s) {missing} are not facts of the {subject} catalogue"))
    return problems
