"""Markdown building blocks of the reference pages: tables, escaped cells, figures as people read them.

Every figure is formatted from the value a loader read out of rules/ (cents, parts per million,
Decimals): nothing here knows a limit, a year or a rule.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, Iterable, Sequence

from plancheck.models import Reference
from plancheck.money import display_cents, format_ppm


def cell(text: Any) -> str:
    """Text fit for one table cell: on one line, its pipes escaped."""
    return " ".join(str(text).split()).replace("|", "\\|")


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], align: Sequence[str] | None = None) -> str:
    """A Markdown table; `align` holds '-' (left) or ':' (right) per column."""
    marks = ["---:" if a == ":" else "---" for a in (align or ["-"] * len(header))]
    lines = ["| " + " | ".join(cell(h) for h in header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def code(text: str) -> str:
    """Inline code (the text holds no backtick in rules/: ids, fact names, file paths)."""
    return f"`{text}`"


def link(text: str, target: str) -> str:
    return f"[{text}]({target})"


def link_names(text: str, targets: dict[str, str]) -> str:
    """Each whole-word mention of a name of `targets` in a text (not inside code, a path or a longer id),
    linked to its target."""
    if not targets:
        return text
    names = sorted(targets, key=len, reverse=True)
    pattern = re.compile(r"(?<![\w`/-])(" + "|".join(map(re.escape, names)) + r")(?![\w`-]|\.yaml)")
    return pattern.sub(lambda m: link(code(m.group(1)), targets[m.group(1)]), text)


def references(refs: Iterable[Reference]) -> str:
    """The references of a rule, limit or parameter as a list of links (a title alone where no URL)."""
    items = [f"- {link(r.title, str(r.url)) if r.url else r.title}" for r in refs]
    return "\n".join(items) if items else "None given."


def dollars(cents: int | None) -> str:
    """A limit for people: whole dollars as the IRS prints them ($23,000), cents only where there are
    some; a missing figure as a dash."""
    if cents is None:
        return "—"
    return f"${cents // 100:,}" if cents >= 0 and cents % 100 == 0 else display_cents(cents)


def decimal_text(value: Decimal) -> str:
    """A Decimal without trailing zeros or exponent: 59.5, 3, 1.25."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def with_unit(value: Decimal, unit: str) -> str:
    """A parameter's value in its unit: 10%, 59.5 years, $150,000.00, $0.01 per pay period, 1.25x."""
    if unit == "percent":
        return f"{decimal_text(value)}%"
    if unit == "USD":
        return dollars(int(value * 100))
    if unit == "USD per pay period":
        return f"{display_cents(int(value * 100))} per pay period"
    if unit == "multiplier":
        return f"×{decimal_text(value)}"
    singular = unit.removesuffix("s") if value == 1 else unit
    return f"{decimal_text(value)} {singular}"


def fact_value(value: int, fact_type: str) -> str:
    """An engine integer (as coerce_constant makes it) in the words of its fact type."""
    if fact_type == "money":
        return display_cents(value)
    if fact_type == "percent":
        return format_ppm(value)
    if fact_type == "flag":
        return "yes" if value else "no"
    return str(value)
