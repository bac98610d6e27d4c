"""Limit-file audits: each year's figure moves the way 415(d) indexes it, and cites the notice that set it.

A new year is added by hand from an IRS notice; a mistyped or mis-rounded figure would silently
change every check of that year. The statute says how each figure may move (`indexing:` in each
file): cost-of-living increases rounded down to a multiple of a step ($500 for 402(g) and catch-up,
$1,000 for 415(c), $5,000 for 401(a)(17), 414(q), 416(i) and the Roth catch-up wage threshold),
never a decrease. A figure that breaks that, or that does not cite the notice of the year before,
is a problem `plancheck audit --rules` reports with its file and line.
"""

from __future__ import annotations

import re
from pathlib import Path

from plancheck.documents.yamlio import line_of, read_document
from plancheck.errors import Problem
from plancheck.money import display_cents
from plancheck.rulebook.limits import LimitFamily, LimitTable

#: An IRS notice as the limit files cite it: "IRS Notice 2025-67".
NOTICE = re.compile(r"\bIRS Notice (\d{4})-\d+\b")


def limit_problems(limits: LimitTable) -> list[Problem]:
    """Every figure that breaks its family's indexing or does not cite its notice, located in its file."""
    problems: list[Problem] = []
    for family_id in sorted(limits.families):
        source = limits.sources[family_id]
        found = list(_family_problems(limits.families[family_id]))
        if found:
            data = read_document(Path(source))
            problems.extend(Problem(source, field, expected, line=line_of(data, tuple(
                int(part) if part.isdigit() else part for part in field.split(".")))) for field, expected in found)
    return problems


def _family_problems(family: LimitFamily):
    """(field, what was expected) for each figure of one family that breaks its rules."""
    indexing = family.indexing
    previous: tuple[int, int] | None = None
    for year in sorted(family.values):
        value = family.values[year]
        if value.amount is None:
            continue
        amount = value.amount
        if amount % indexing.step and amount != indexing.minimum:
            yield (f"values.{year}.amount",
                   f"{display_cents(amount)} is not a multiple of {display_cents(indexing.step)}: increases are "
                   f"rounded down to a multiple of it ({indexing.citation})")
        if indexing.minimum is not None and amount < indexing.minimum:
            yield (f"values.{year}.amount", f"{display_cents(amount)} is below the statutory minimum of "
                   f"{display_cents(indexing.minimum)} ({indexing.minimum_citation})")
        if previous is not None and amount < previous[1]:
            yield (f"values.{year}.amount",
                   f"{display_cents(amount)} is lower than {previous[0]}'s {display_cents(previous[1])}: cost-of-living "
                   "adjustments under IRC 415(d) never lower a figure")
        previous = (year, amount)
        notice = NOTICE.search(value.citation)
        if notice is None:
            yield (f"values.{year}.citation",
                   f"cite the IRS notice that published the {year} figure (e.g. 'IRS Notice {year - 1}-NN'), "
                   f"got {value.citation!r}")
        elif int(notice.group(1)) != year - 1:
            yield (f"values.{year}.citation",
                   f"{notice.group(0)} is a notice of {notice.group(1)}; the {year} figures are published in the "
                   f"autumn of {year - 1} (IRS Notice {year - 1}-NN)")
