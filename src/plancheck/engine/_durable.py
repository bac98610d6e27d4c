"""The one place that touches durable-rules.

We drive the C extension (`durable_rules_engine`) directly and synchronously instead of
`durable.lang.Host`, because the Host layer is where the traps listed in
docs/design/durable-rules.md live:

* Host starts background threads that may run actions on another thread; here nothing runs
  outside the caller's thread, and there are no Python actions at all: the firings are read
  back as messages and the action is completed at once.
* Events are consumed by the first matching rule; we assert *facts*, which fire every rule.
* A record that matches nothing makes Host raise MessageNotHandledException (and skip the
  others' actions in a batch); at this level it is only a result code, which we ignore.
* Session state is re-asserted after every action when actions update it; we never update
  state, so nothing can loop.
* Facts are identified by content; every fact gets a fresh integer id, and every asserted
  fact is retracted before evaluate() returns, so nothing is left behind.
* A string compared with a number compares lexicographically without error; every fact value
  must be a plain int (money in cents, flags 0/1) or the call is refused.
* `$or` fires once per satisfied branch: firings are de-duplicated per (fact, rule).
* A bad operator fails with only "error code: 202"; conditions are validated before they get
  here (rulebook/conditions.py), and the ruleset name is reported with the error.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterable, Sequence

import durable_rules_engine as _dre
import orjson

_SESSION = "0"
_BATCH = 1000
_names = itertools.count(1)


class EngineError(RuntimeError):
    """durable-rules refused a ruleset or a fact."""


class DurableRuleset:
    """One durable-rules ruleset evaluated synchronously over integer facts."""

    def __init__(self, kind: str, patterns: dict[str, dict], fields: Sequence[str]):
        """`patterns` maps rule id to its condition pattern; `fields` are the facts they read."""
        self.kind = kind
        self.rule_ids = list(patterns)
        self._order = {rule_id: i for i, rule_id in enumerate(self.rule_ids)}
        self.fields = tuple(fields)
        self.name = f"plancheck-{kind}-{next(_names)}"
        definition = {
            rule_id: {"all": [{"m": {"$and": [{"kind": kind}, pattern]}}]}
            for rule_id, pattern in patterns.items()
        }
        try:
            self._handle = _dre.create_ruleset(self.name, json.dumps(definition))
        except _dre.error as exc:
            raise EngineError(f"durable-rules refused ruleset {kind!r}: {exc}") from None
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._closed = False

    def evaluate(self, records: Iterable[Sequence[int]], fields: Sequence[str] | None = None) -> list[tuple[int, str]]:
        """Fire every rule on every record; return (record index, rule id) pairs, de-duplicated.

        A record is a sequence of ints aligned with `fields` (default: every field the rules read).
        A rule is decided exactly on a record that carries every field it reads; a caller that asks
        about some rules only may send just their fields (a smaller fact is cheaper to serialize,
        match and read back) and must disregard what the others say. Records that match no rule are
        simply absent from the result.
        """
        if self._closed:
            raise EngineError("ruleset is closed")
        names = self.fields if fields is None else tuple(fields)
        if fields is not None and not set(names) <= set(self.fields):
            raise EngineError(f"unknown fields {sorted(set(names) - set(self.fields))}")
        fired: set[tuple[int, str]] = set()
        batch: list[dict] = []
        ids: dict[int, int] = {}
        with self._lock:
            for index, values in enumerate(records):
                fact = self._fact(values, names)
                ids[fact["id"]] = index
                batch.append(fact)
                if len(batch) == _BATCH:
                    self._run(batch, ids, fired)
                    batch, ids = [], {}
            if batch:
                self._run(batch, ids, fired)
        return sorted(fired, key=lambda pair: (pair[0], self._order[pair[1]]))

    def _fact(self, values: Sequence[int], names: Sequence[str]) -> dict:
        if len(values) != len(names):
            raise EngineError(f"expected {len(names)} values, got {len(values)}")
        fact = {"sid": _SESSION, "id": next(self._ids), "kind": self.kind}
        for name, value in zip(names, values):
            if type(value) is not int:
                raise EngineError(f"fact {name!r} must be an int (cents or 0/1), got {type(value).__name__} {value!r}")
            fact[name] = value
        return fact

    def _run(self, batch: list[dict], ids: dict[int, int], fired: set[tuple[int, str]]) -> None:
        payload = json.dumps(batch)
        try:
            _code, state = _dre.assert_facts(self._handle, payload)
            try:
                result = _dre.start_action_for_state(self._handle, state)
                message = result[1] if result else None
                while message:
                    for rule_id, match in orjson.loads(message).items():
                        fired.add((ids[match["m"]["id"]], rule_id))
                    message = _dre.complete_and_start_action(self._handle, state)
            finally:
                _dre.retract_facts(self._handle, payload)
        except _dre.error as exc:
            raise EngineError(f"durable-rules failed on ruleset {self.name}: {exc}") from None

    def leftover_facts(self) -> list[dict]:
        """Facts still held by the engine (always empty between evaluations)."""
        try:
            return json.loads(_dre.get_facts(self._handle, _SESSION))
        except _dre.error as exc:
            if "309" in str(exc):  # the session was never created: nothing was ever asserted
                return []
            raise

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _dre.delete_ruleset(self._handle)
