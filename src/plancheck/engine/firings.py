"""Which rules fire on which period facts: the engine call shared by elections and batches."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from plancheck.engine import SubjectEngine


def fact_rows(columns: dict[str, np.ndarray], fields: Sequence[str], rows: np.ndarray) -> list[list[int]]:
    """The engine's value lists for the given rows (plain Python ints, in `fields` order)."""
    picked = [columns[name][rows].tolist() for name in fields]
    return [list(values) for values in zip(*picked)] if picked else [[] for _ in rows]


def fire_on_rows(engine: SubjectEngine, columns: dict[str, np.ndarray], rows: np.ndarray,
                 rule_ids: Sequence[str] | None = None) -> list[tuple[int, str]]:
    """(row, rule id) for every rule that fires on each of `rows` (row indices into columns).

    With `rule_ids`, the engine is asked about those rules only: each row carries just the facts
    they read, and only their firings come back.
    """
    rows = np.asarray(rows, dtype=np.int64)
    fields = engine.fields if rule_ids is None else engine.reads(rule_ids)
    firings = engine.fire_rows(fact_rows(columns, fields, rows), fields)
    wanted = None if rule_ids is None else set(rule_ids)
    return [(int(rows[i]), rule_id) for i, rule_id in firings if wanted is None or rule_id in wanted]
