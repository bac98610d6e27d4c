"""Conditions compiled to durable-rules patterns (the engine that decides findings)."""

from __future__ import annotations

from typing import Any

from plancheck.rulebook.conditions import AllOf, AnyOf, Condition, Const, Expr, Ref

_DURABLE_OP = {"ne": "$neq", "lt": "$lt", "lte": "$lte", "gt": "$gt", "gte": "$gte"}


def _durable_expr(expr: Expr) -> Any:
    if isinstance(expr, Const):
        return expr.value
    if isinstance(expr, Ref):
        return {"$m": expr.fact}
    return {f"${expr.op}": {"$l": _durable_expr(expr.left), "$r": _durable_expr(expr.right)}}


def to_durable(cond: Condition) -> dict:
    """The durable-rules pattern for a condition (without the kind discriminator)."""
    if isinstance(cond, AllOf):
        return {"$and": [to_durable(p) for p in cond.parts]}
    if isinstance(cond, AnyOf):
        return {"$or": [to_durable(p) for p in cond.parts]}
    rhs = _durable_expr(cond.rhs)
    if cond.op == "eq":
        return {cond.fact: rhs}
    return {_DURABLE_OP[cond.op]: {cond.fact: rhs}}
