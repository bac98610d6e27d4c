"""Findings: built in one place from a rule's metadata and the facts it fired on."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from plancheck.money import display_cents, format_cents, format_ppm
from plancheck.rulebook.rules import Rule

#: The `event` name of a finding, by severity. Part of the log interface (README).
EVENT_BY_SEVERITY = {"error": "violation", "warning": "warning", "info": "notice"}
SEVERITY_ORDER = {"error": 0, "warning": 1, "info": 2}


@dataclass(frozen=True)
class Finding:
    """One rule broken (or one notice) for one subject."""

    rule: str
    severity: str
    title: str
    citation: str
    message: str
    amount: int | None
    limit: int | None
    excess: int | None
    context: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def event(self) -> str:
        return EVENT_BY_SEVERITY[self.severity]

    def as_event(self) -> dict[str, Any]:
        """The finding as a log event: stable keys, money as exact dollar strings."""
        event: dict[str, Any] = {
            "event": self.event,
            "rule": self.rule,
            "severity": self.severity,
            "title": self.title,
        }
        event.update(self.context)
        event.update({
            "limit": _money(self.limit),
            "amount": _money(self.amount),
            "excess": _money(self.excess),
            "citation": self.citation,
            "message": self.message,
        })
        event.update(self.extra)
        return event


def _money(cents: int | None) -> str | None:
    return None if cents is None else format_cents(cents)


def _display(value: int, fact_type: str) -> str:
    if fact_type == "money":
        return display_cents(value)
    if fact_type == "flag":
        return "yes" if value else "no"
    if fact_type == "percent":
        return format_ppm(value)
    return str(value)


def build_finding(rule: Rule, facts: Mapping[str, int], fact_types: Mapping[str, str],
                  context: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> Finding:
    """The finding for `rule` firing on `facts`; the message is the rule's own template."""
    amount = limit = excess = None
    if rule.report:
        amount = int(facts[rule.report.amount])
        limit = int(facts[rule.report.limit]) if rule.report.limit else 0
        excess = amount - limit
    values: dict[str, str] = {name: _display(int(value), fact_types[name]) for name, value in facts.items()
                              if name in fact_types}
    values.update({k: "" if v is None else str(v) for k, v in context.items()})
    values.update({
        "rule": rule.id, "title": rule.title, "citation": rule.citation,
        "amount": display_cents(amount) if amount is not None else "",
        "limit": display_cents(limit) if limit is not None else "",
        "excess": display_cents(excess) if excess is not None else "",
    })
    message = " ".join(rule.message.format_map(values).split())
    return Finding(rule=rule.id, severity=rule.severity, title=rule.title, citation=rule.citation,
                   message=message, amount=amount, limit=limit, excess=excess,
                   context=dict(context), extra=dict(extra or {}))


def finding_events(rule: Rule, facts: Mapping[str, Any], fact_types: Mapping[str, str],
                   contexts: list[dict[str, Any]], extras: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`build_finding(...).as_event()` for many firings of one rule at once, byte for byte the same events.

    `facts` holds one int64 column per fact the rule needs (a value per firing). The facts' texts for
    the message and the money of `amount`, `limit` and `excess` are formatted a column at a time: a
    batch's bad night has a finding for most employees, and formatting them one value at a time was
    most of its findings' cost.
    """
    import numpy as np

    from plancheck.money import display_cents_column, format_cents_column

    def shown(values: np.ndarray, fact_type: str) -> list[str]:
        if fact_type == "money":
            return display_cents_column(values)
        if fact_type == "flag":
            return ["yes" if v else "no" for v in values.tolist()]
        if fact_type == "percent":
            return [format_ppm(v) for v in values.tolist()]
        return [str(v) for v in values.tolist()]

    n = len(contexts)
    columns = {name: np.asarray(values, dtype=np.int64) for name, values in facts.items()}
    texts = {name: shown(values, fact_types[name]) for name, values in columns.items() if name in fact_types}
    figures: dict[str, list[Any]] = {key: [None] * n for key in ("amount", "limit", "excess")}
    shown_figures: dict[str, list[str]] = {key: [""] * n for key in ("amount", "limit", "excess")}
    if rule.report:
        amount = columns[rule.report.amount]
        limit = columns[rule.report.limit] if rule.report.limit else np.zeros(n, dtype=np.int64)
        for key, values in (("amount", amount), ("limit", limit), ("excess", amount - limit)):
            figures[key], shown_figures[key] = format_cents_column(values), display_cents_column(values)
    head = {"event": EVENT_BY_SEVERITY[rule.severity], "rule": rule.id, "severity": rule.severity, "title": rule.title}
    static = {"rule": rule.id, "title": rule.title, "citation": rule.citation}
    events = []
    for i in range(n):
        context = contexts[i]
        values = {name: column[i] for name, column in texts.items()}
        values.update({k: "" if v is None else str(v) for k, v in context.items()})
        values.update(static)
        values.update({key: shown_figures[key][i] for key in ("amount", "limit", "excess")})
        event = {**head, **context, "limit": figures["limit"][i], "amount": figures["amount"][i],
                 "excess": figures["excess"][i], "citation": rule.citation,
                 "message": " ".join(rule.message.format_map(values).split())}
        event.update(extras[i])
        events.append(event)
    return events


def has_errors(findings: list[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def severity_counts(severities: Iterable[str]) -> dict[str, int]:
    """How many findings of each severity, every severity named (the summaries' `findings_by_severity`)."""
    counts = Counter(severities)
    return {severity: counts[severity] for severity in SEVERITY_ORDER}
