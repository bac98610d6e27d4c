"""Per-person sums and allocations over the census rows of one employer's plans.

A person is one employee_id at one employer (facts/employer.py `Employers.person`): someone in two
plans of the employer has two rows and one person number. These helpers add a person's rows up and
take an amount from a person's rows in census order, vectorized.
"""

from __future__ import annotations

import numpy as np


class People:
    """The people of a census: a compact number per row, and the rows in (person, census order) order."""

    def __init__(self, person: np.ndarray):
        n = len(person)
        #: Every row a different person (a plan per employer, or nobody in two plans): sums are the rows themselves.
        self.one_row_each = bool(n == 0 or (np.diff(person) > 0).all())
        if self.one_row_each:
            self.index = self.order = np.arange(n, dtype=np.int64)
        else:
            self.index = np.unique(person, return_inverse=True)[1].astype(np.int64).reshape(-1)
            self.order = np.lexsort((np.arange(n), self.index))
        self.count = int(self.index.max()) + 1 if n else 0

    def total(self, values: np.ndarray) -> np.ndarray:
        """Each row's person's sum of values over all their rows."""
        if self.one_row_each:
            return values.astype(np.int64)
        out = np.zeros(self.count, dtype=np.int64)
        np.add.at(out, self.index, values.astype(np.int64, copy=False))
        return out[self.index]

    def largest(self, values: np.ndarray) -> np.ndarray:
        """Each row's person's largest value over their rows."""
        if self.one_row_each:
            return values.astype(np.int64)
        out = np.full(self.count, np.iinfo(np.int64).min, dtype=np.int64)
        np.maximum.at(out, self.index, values.astype(np.int64, copy=False))
        return out[self.index]

    def any(self, flags: np.ndarray) -> np.ndarray:
        return self.total(flags.astype(np.int64)) > 0

    def take_in_order(self, available: np.ndarray, budget: np.ndarray) -> np.ndarray:
        """Take each person's budget (given on each of their rows) from their rows' available amounts, first row
        first (census order): what each row gives, at most what it has, the rows together at most the budget."""
        available = np.maximum(available.astype(np.int64, copy=False), 0)
        if self.one_row_each:
            return np.clip(budget, 0, available)
        return fill_in_order(self.order, self.index, budget, available)


def fill_in_order(order: np.ndarray, person: np.ndarray, budget: np.ndarray, capacity: np.ndarray) -> np.ndarray:
    """Each person's budget (the same figure on each of their rows) taken from their rows in `order` (a row order in
    which each person's rows are together), each row at most its capacity: what each row gives."""
    ordered_person, cap = person[order], capacity[order]
    starts = np.ones(len(order), dtype=bool)
    starts[1:] = ordered_person[1:] != ordered_person[:-1]
    running = np.cumsum(cap)
    base = np.maximum.accumulate(np.where(starts, running - cap, 0))
    before = running - cap - base
    taken = np.clip(budget[order] - before, 0, cap)
    out = np.zeros(len(order), dtype=np.int64)
    out[order] = taken
    return out
