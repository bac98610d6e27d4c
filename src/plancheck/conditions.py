"""The rule condition language: parsed from YAML, compiled to durable-rules and to numpy.

A condition is one of
  {all: [condition, ...]}   every part holds
  {any: [condition, ...]}   at least one part holds
  {fact: NAME, OP: OPERAND} a comparison, OP one of eq ne lt lte gt gte
and an operand is a constant, {fact: NAME}, or {add: [a, b]} / {sub: [a, b]}.
Constants take the type of the compared fact: dollars for money facts (converted to cents),
percentages to the hundredth for percent facts (converted to hundredths of a percent: "6.25"
is 625), true/false or 0/1 for flags, whole numbers otherwise. Arithmetic sits on the right-hand side
only, because that is all durable-rules supports.

The same parsed condition compiles to a durable-rules pattern (the engine that decides
findings) and to a numpy predicate (the batch pre-screen that decides what reaches the engine).
"""

from __future__ import annotations

import operator
import re
from decimal import Decimal
from dataclasses import dataclass
from typing import Any, Union

import numpy as np

from .money import parse_cents

OPS = ("eq", "ne", "lt", "lte", "gt", "gte")
_DURABLE_OP = {"ne": "$neq", "lt": "$lt", "lte": "$lte", "gt": "$gt", "gte": "$gte"}
_NUMPY_OP = {"eq": operator.eq, "ne": operator.ne, "lt": operator.lt, "lte": operator.le,
             "gt": operator.gt, "gte": operator.ge}
FACT_TYPES = ("money", "flag", "count", "year", "age", "percent")
_PERCENT_RE = re.compile(r"^-?\d+(\.\d{1,2})?$")


class ConditionError(ValueError):
    """A malformed condition; `path` says where inside the condition."""

    def __init__(self, path: str, message: str):
        self.path = path
        super().__init__(f"{path}: {message}")


@dataclass(frozen=True)
class Const:
    value: int


@dataclass(frozen=True)
class Ref:
    fact: str


@dataclass(frozen=True)
class Arith:
    op: str  # "add" or "sub"
    left: "Expr"
    right: "Expr"


Expr = Union[Const, Ref, Arith]


@dataclass(frozen=True)
class Compare:
    fact: str
    op: str
    rhs: Expr


@dataclass(frozen=True)
class AllOf:
    parts: tuple["Condition", ...]


@dataclass(frozen=True)
class AnyOf:
    parts: tuple["Condition", ...]


Condition = Union[Compare, AllOf, AnyOf]


def coerce_constant(value: Any, fact_type: str, path: str) -> int:
    """A YAML constant as the engine's integer for a fact of the given type."""
    if fact_type == "money":
        try:
            return parse_cents(value, allow_negative=True)
        except ValueError as exc:
            raise ConditionError(path, f"money constant: {exc}") from None
    if fact_type == "percent":
        text = value if isinstance(value, str) else repr(value) if isinstance(value, float) else str(value)
        if isinstance(value, bool) or not _PERCENT_RE.match(text.strip()):
            raise ConditionError(path, f"percent constant must have at most two decimals, like \"6.25\", got {value!r}")
        return int(Decimal(text.strip()) * 100)
    if fact_type == "flag":
        if isinstance(value, bool):
            return int(value)
        if value in (0, 1) and not isinstance(value, float):
            return int(value)
        raise ConditionError(path, f"flag constant must be true/false or 0/1, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConditionError(path, f"{fact_type} constant must be a whole number, got {value!r}")
    return value


def parse_condition(raw: Any, catalogue: dict[str, str], path: str = "when") -> Condition:
    """Parse and type-check a condition against a fact catalogue {name: type}."""
    if not isinstance(raw, dict):
        raise ConditionError(path, f"expected a mapping with all, any or fact, got {type(raw).__name__}")
    keys = set(raw)
    if keys in ({"all"}, {"any"}):
        (kind,) = keys
        parts = raw[kind]
        if not isinstance(parts, list) or not parts:
            raise ConditionError(f"{path}.{kind}", "expected a non-empty list of conditions")
        parsed = tuple(parse_condition(p, catalogue, f"{path}.{kind}[{i}]") for i, p in enumerate(parts))
        return AllOf(parsed) if kind == "all" else AnyOf(parsed)
    if "fact" in keys:
        ops = keys & set(OPS)
        extra = keys - set(OPS) - {"fact"}
        if extra:
            raise ConditionError(path, f"unknown key(s) {sorted(extra)}; a comparison has fact and one of {list(OPS)}")
        if len(ops) != 1:
            raise ConditionError(path, f"a comparison needs exactly one operator of {list(OPS)}")
        (op,) = ops
        fact = _fact_name(raw["fact"], catalogue, f"{path}.fact")
        rhs = _parse_expr(raw[op], catalogue, catalogue[fact], f"{path}.{op}")
        return Compare(fact, op, rhs)
    raise ConditionError(path, f"expected all, any, or fact with an operator; got keys {sorted(keys)}")


def _fact_name(name: Any, catalogue: dict[str, str], path: str) -> str:
    if not isinstance(name, str) or name not in catalogue:
        raise ConditionError(path, f"unknown fact {name!r}; known facts: {', '.join(sorted(catalogue))}")
    return name


def _parse_expr(raw: Any, catalogue: dict[str, str], fact_type: str, path: str) -> Expr:
    if isinstance(raw, dict):
        if set(raw) == {"fact"}:
            name = _fact_name(raw["fact"], catalogue, f"{path}.fact")
            if catalogue[name] != fact_type and {catalogue[name], fact_type} != {"count", "money"}:
                raise ConditionError(path, f"compares a {fact_type} fact with {name!r}, a {catalogue[name]} fact")
            return Ref(name)
        if len(raw) == 1 and next(iter(raw)) in ("add", "sub"):
            (op, args), = raw.items()
            if not isinstance(args, list) or len(args) != 2:
                raise ConditionError(f"{path}.{op}", "expected a list of two operands")
            return Arith(op, _parse_expr(args[0], catalogue, fact_type, f"{path}.{op}[0]"),
                         _parse_expr(args[1], catalogue, fact_type, f"{path}.{op}[1]"))
        raise ConditionError(path, "an operand is a constant, {fact: NAME}, {add: [a, b]} or {sub: [a, b]}")
    return Const(coerce_constant(raw, fact_type, path))


def facts_used(cond: Condition | Expr) -> set[str]:
    """Every fact name a condition reads."""
    if isinstance(cond, Compare):
        return {cond.fact} | facts_used(cond.rhs)
    if isinstance(cond, (AllOf, AnyOf)):
        return set().union(*(facts_used(p) for p in cond.parts))
    if isinstance(cond, Ref):
        return {cond.fact}
    if isinstance(cond, Arith):
        return facts_used(cond.left) | facts_used(cond.right)
    return set()


# -- durable-rules -----------------------------------------------------------------------------

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


# -- numpy ---------------------------------------------------------------------------------------

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
