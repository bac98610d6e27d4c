"""Conditions evaluated with numpy over fact columns: the batch pre-screen that picks what reaches
the engine (the engine decides)."""

from __future__ import annotations

import operator

import numpy as np

from plancheck.rulebook.conditions import AllOf, AnyOf, Condition, Const, Expr, Ref

_NUMPY_OP = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "lte": operator.le,
             "gt": operator.gt, "gte": operator.ge}


def _numpy_expr(expr: Expr, columns: dict[str, np.ndarray]):
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, Ref):
        return columns[expr.fact]
    left, right = _numpy_expr(expr.left, columns), _numpy_expr(expr.right, columns)
    return left + right if expr.op == "add" else left - right


def evaluate_columns(cond: Condition, columns: dict[str, np.ndarray]) -> np.ndarray:
    """Vectorized truth of a condition over int64 fact columns."""
    if isinstance(cond, AllOf):
        result = evaluate_columns(cond.parts[0], columns)
        for part in cond.parts[1:]:
            result = result & evaluate_columns(part, columns)
        return result
    if isinstance(cond, AnyOf):
        result = evaluate_columns(cond.parts[0], columns)
        for part in cond.parts[1:]:
            result = result | evaluate_columns(part, columns)
        return result
    return np.asarray(_NUMPY_OP[cond.op](columns[cond.fact], _numpy_expr(cond.rhs, columns)), dtype=bool)
