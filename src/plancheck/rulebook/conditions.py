"""The rule condition language: parsed from YAML, compiled to durable-rules and to numpy.

A condition is one of
  {all: [condition, ...]}    every part holds
  {any: [condition, ...]}    at least one part holds
  {not: condition}           the condition does not hold
  {condition: NAME}          a named condition of the subject (rules/facts/<subject>.yaml)
  {fact: NAME, OP: OPERAND}  a comparison, OP one of eq ne lt lte gt gte
  {fact: NAME, in: [constants]}  the fact equals one of the constants
and an operand is a constant, {fact: NAME}, or {add: [a, b]} / {sub: [a, b]}.
`not` and `in` are rewritten when parsed (negation pushed down to the comparisons, `in` as
`any` of equalities), so both compiled forms only ever see all, any and comparisons.
Constants take the type of the compared fact: dollars for money facts (converted to cents),
percentages for percent facts (converted to parts per million: "6.25" is 62_500), true/false
or 0/1 for flags, whole numbers otherwise. Arithmetic sits on the right-hand side
only, because that is all durable-rules supports.

The same parsed condition compiles to a durable-rules pattern (the engine that decides
findings) and to a numpy predicate (the batch pre-screen that decides what reaches the engine)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from plancheck.money import parse_cents

OPS = ("eq", "ne", "lt", "lte", "gt", "gte")


_NEGATED = {"eq": "ne", "ne": "eq", "lt": "gte", "gte": "lt", "lte": "gt", "gt": "lte"}


FACT_TYPES = ("money", "flag", "count", "year", "age", "percent")
#: A percent constant in a rule: may be negative (a margin) or above 100, four decimals at most.
_PERCENT_RE = re.compile(r"^-?\d+(\.\d{1,4})?$")


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
        if isinstance(value, bool) or not _PERCENT_RE.match(str(value).strip()):
            raise ConditionError(path, f"percent constant must have at most four decimals, like \"6.25\", got {value!r}")
        return int(Decimal(str(value).strip()) * 10_000)
    if fact_type == "flag":
        if isinstance(value, bool):
            return int(value)
        if value in (0, 1) and not isinstance(value, float):
            return int(value)
        raise ConditionError(path, f"flag constant must be true/false or 0/1, got {value!r}")
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConditionError(path, f"{fact_type} constant must be a whole number, got {value!r}")
    return value


def parse_condition(raw: Any, catalogue: dict[str, str], path: str = "when",
                    named: dict[str, "Condition"] | None = None) -> Condition:
    """Parse and type-check a condition against a fact catalogue {name: type} and named conditions."""
    named = named or {}
    if not isinstance(raw, dict):
        raise ConditionError(path, f"expected a mapping with all, any, not, condition or fact, got {type(raw).__name__}")
    keys = set(raw)
    if keys in ({"all"}, {"any"}):
        (kind,) = keys
        parts = raw[kind]
        if not isinstance(parts, list) or not parts:
            raise ConditionError(f"{path}.{kind}", "expected a non-empty list of conditions")
        parsed = tuple(parse_condition(p, catalogue, f"{path}.{kind}[{i}]", named) for i, p in enumerate(parts))
        return AllOf(parsed) if kind == "all" else AnyOf(parsed)
    if keys == {"not"}:
        return negate(parse_condition(raw["not"], catalogue, f"{path}.not", named))
    if keys == {"condition"}:
        name = raw["condition"]
        if not isinstance(name, str) or name not in named:
            known = ", ".join(sorted(named)) or "none"
            raise ConditionError(f"{path}.condition", f"unknown named condition {name!r}; known: {known}")
        return named[name]
    if "fact" in keys:
        ops = keys & {*OPS, "in"}
        extra = keys - set(OPS) - {"fact", "in"}
        if extra:
            raise ConditionError(path, f"unknown key(s) {sorted(extra)}; a comparison has fact and one of "
                                       f"{[*OPS, 'in']}")
        if len(ops) != 1:
            raise ConditionError(path, f"a comparison needs exactly one operator of {[*OPS, 'in']}")
        (op,) = ops
        fact = _fact_name(raw["fact"], catalogue, f"{path}.fact")
        if op == "in":
            values = raw["in"]
            if not isinstance(values, list) or not values:
                raise ConditionError(f"{path}.in", "expected a non-empty list of constants")
            return AnyOf(tuple(Compare(fact, "eq", Const(coerce_constant(v, catalogue[fact], f"{path}.in[{i}]")))
                               for i, v in enumerate(values)))
        rhs = _parse_expr(raw[op], catalogue, catalogue[fact], f"{path}.{op}")
        return Compare(fact, op, rhs)
    raise ConditionError(path, f"expected all, any, not, condition, or fact with an operator; got keys {sorted(keys)}")


def negate(cond: Condition) -> Condition:
    """The condition that holds exactly when `cond` does not (De Morgan down to the comparisons)."""
    if isinstance(cond, AllOf):
        return AnyOf(tuple(negate(p) for p in cond.parts))
    if isinstance(cond, AnyOf):
        return AllOf(tuple(negate(p) for p in cond.parts))
    return Compare(cond.fact, _NEGATED[cond.op], cond.rhs)


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


_Constant = Union[bool, int, float, str]


class _Shape(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class FactOperand(_Shape):
    """Another fact of the same subject."""

    fact: str


class AddOperand(_Shape):
    """The sum of two operands."""

    add: list["Operand"] = Field(min_length=2, max_length=2)


class SubOperand(_Shape):
    """The first operand less the second."""

    sub: list["Operand"] = Field(min_length=2, max_length=2)


Operand = Union[_Constant, FactOperand, AddOperand, SubOperand]


class Comparison(_Shape):
    """A fact compared with an operand (exactly one operator), or with a list of constants (`in`)."""

    model_config = ConfigDict(json_schema_extra={"minProperties": 2, "maxProperties": 2})

    fact: str = Field(description="A fact of the rule's subject (rules/facts/<subject>.yaml)")
    eq: Operand | None = None
    ne: Operand | None = None
    lt: Operand | None = None
    lte: Operand | None = None
    gt: Operand | None = None
    gte: Operand | None = None
    in_: list[_Constant] | None = Field(default=None, alias="in", min_length=1)


class AllCondition(_Shape):
    """Every part holds."""

    all: list["ConditionShape"] = Field(min_length=1)


class AnyCondition(_Shape):
    """At least one part holds."""

    any: list["ConditionShape"] = Field(min_length=1)


class NotCondition(_Shape):
    """The condition does not hold."""

    not_: "ConditionShape" = Field(alias="not")


class NamedCondition(_Shape):
    """A named condition of the subject's catalogue (its `conditions:`)."""

    condition: str


ConditionShape = Union[AllCondition, AnyCondition, NotCondition, NamedCondition, Comparison]


def condition_json_schema() -> dict[str, Any]:
    """The JSON Schema of a condition, with its parts under "$defs" (refs as #/$defs/NAME)."""
    return TypeAdapter(ConditionShape).json_schema(ref_template="#/$defs/{model}", by_alias=True)
