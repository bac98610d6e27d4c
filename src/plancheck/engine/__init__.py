"""The rule engine: compiles a rulebook's rules per subject and fires them on fact records.

Free of I/O. Built on durable-rules, whose details stay in the private `_durable` module.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from plancheck.engine._durable import DurableRuleset, EngineError
from plancheck.engine.compile import to_durable
from plancheck.rulebook.rules import Rule, Rulebook, used_facts

__all__ = ["Engine", "EngineError", "SubjectEngine"]


class SubjectEngine:
    """Every rule of one subject, in one durable-rules ruleset."""

    def __init__(self, subject: str, rules: Sequence[Rule]):
        self.subject = subject
        self.rules = {r.id: r for r in rules}
        self.fields = used_facts(list(rules))
        self._ruleset = DurableRuleset(subject, {r.id: to_durable(r.condition) for r in rules}, self.fields)

    def fire_rows(self, rows: Iterable[Sequence[int]], fields: Sequence[str] | None = None) -> list[tuple[int, str]]:
        """(row index, rule id) for every rule that holds on each row of values aligned with `fields` (default:
        every field the rules read; with fewer, only the rules whose fields are all there are decided)."""
        return self._ruleset.evaluate(rows, fields)

    def reads(self, rule_ids: Iterable[str]) -> list[str]:
        """The fields some rules read, in `fields` order: what a row must carry for the engine to decide them."""
        return used_facts([self.rules[rule_id] for rule_id in rule_ids])

    def fire(self, facts: Sequence[Mapping[str, int]]) -> list[tuple[int, str]]:
        """(fact index, rule id) for every rule that holds on each fact record."""
        return self._ruleset.evaluate([fact[name] for name in self.fields] for fact in facts)

    def leftover_facts(self) -> list[dict]:
        return self._ruleset.leftover_facts()

    def close(self) -> None:
        self._ruleset.close()


class Engine:
    """One SubjectEngine per subject, built once per process."""

    def __init__(self, rulebook: Rulebook):
        self.rulebook = rulebook
        self.subjects = {s: SubjectEngine(s, rules) for s, rules in rulebook.rules.items() if rules}

    def __getitem__(self, subject: str) -> SubjectEngine:
        return self.subjects[subject]

    def close(self) -> None:
        for engine in self.subjects.values():
            engine.close()
