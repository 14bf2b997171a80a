"""AST of SQL92 filter expressions and its safe evaluation.

Values are ``str`` (property values, string literals), ``int``/``float`` (numeric literals,
property strings that parse as numbers when compared with a number), ``bool`` or ``None``
(missing property). Evaluation follows SQL's three-valued logic: a comparison with ``NULL`` is
unknown (``None``), ``NOT unknown`` is unknown, and a message matches only when the whole
expression is ``True``. Nothing here can raise on any input message.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Union

Value = Union[str, int, float, bool, None]
Number = Union[int, float]

TAGS_PROPERTY = "TAGS"


@dataclass(frozen=True, slots=True)
class Literal:
    value: Value

    def value_of(self, tag: str, props: Mapping[str, str]) -> Value:
        return self.value


@dataclass(frozen=True, slots=True)
class Property:
    name: str

    def value_of(self, tag: str, props: Mapping[str, str]) -> Value:
        if self.name == TAGS_PROPERTY:
            return tag or props.get(TAGS_PROPERTY)
        return props.get(self.name)


Operand = Union[Literal, Property]


@dataclass(frozen=True, slots=True)
class Compare:
    op: str  # one of = <> < <= > >=
    left: Operand
    right: Operand


@dataclass(frozen=True, slots=True)
class Between:
    operand: Operand
    low: Operand
    high: Operand
    negated: bool


@dataclass(frozen=True, slots=True)
class In:
    operand: Operand
    choices: tuple[Literal, ...]
    negated: bool


@dataclass(frozen=True, slots=True)
class IsNull:
    operand: Operand
    negated: bool


@dataclass(frozen=True, slots=True)
class StringMatch:
    op: str  # CONTAINS / STARTSWITH / ENDSWITH
    operand: Operand
    pattern: Operand
    negated: bool


@dataclass(frozen=True, slots=True)
class And:
    """n-ary (flat, so long chains do not recurse deeply)."""

    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    inner: Node


@dataclass(frozen=True, slots=True)
class BoolConst:
    value: bool


Node = Union[Compare, Between, In, IsNull, StringMatch, And, Or, Not, BoolConst]


def _as_number(v: Value) -> Number | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, (int, float)):
        return v
    s = v.strip()
    try:
        return int(s)
    except ValueError:
        pass
    try:
        f = float(s)
    except ValueError:
        return None
    return None if f != f else f  # NaN compares as unknown


def _compare(op: str, a: Value, b: Value) -> bool | None:
    if a is None or b is None:
        return None
    if isinstance(a, bool) or isinstance(b, bool):
        x = a if isinstance(a, bool) else str(a).strip().lower() == "true"
        y = b if isinstance(b, bool) else str(b).strip().lower() == "true"
        if op == "=":
            return x == y
        if op == "<>":
            return x != y
        return None
    if isinstance(a, str) and isinstance(b, str):
        if op == "=":
            return a == b
        if op == "<>":
            return a != b
        return None  # ordering is defined for numbers only
    x, y = _as_number(a), _as_number(b)
    if x is None or y is None:
        return None
    if op == "=":
        return x == y
    if op == "<>":
        return x != y
    if op == "<":
        return x < y
    if op == "<=":
        return x <= y
    if op == ">":
        return x > y
    return x >= y


def evaluate(node: Node, tag: str, props: Mapping[str, str]) -> bool | None:
    """Three-valued result of ``node`` for one message."""
    if isinstance(node, Compare):
        return _compare(node.op, node.left.value_of(tag, props), node.right.value_of(tag, props))
    if isinstance(node, And):
        unknown = False
        for item in node.items:
            r = evaluate(item, tag, props)
            if r is False:
                return False
            unknown = unknown or r is None
        return None if unknown else True
    if isinstance(node, Or):
        unknown = False
        for item in node.items:
            r = evaluate(item, tag, props)
            if r is True:
                return True
            unknown = unknown or r is None
        return None if unknown else False
    if isinstance(node, Not):
        inner = evaluate(node.inner, tag, props)
        return None if inner is None else not inner
    if isinstance(node, Between):
        v = node.operand.value_of(tag, props)
        lo = _compare(">=", v, node.low.value_of(tag, props))
        hi = _compare("<=", v, node.high.value_of(tag, props))
        if lo is None or hi is None:
            return None
        inside = lo and hi
        return not inside if node.negated else inside
    if isinstance(node, In):
        v = node.operand.value_of(tag, props)
        if v is None:
            return None
        found = any(_compare("=", v, c.value) for c in node.choices)
        return not found if node.negated else found
    if isinstance(node, IsNull):
        is_null = node.operand.value_of(tag, props) is None
        return not is_null if node.negated else is_null
    if isinstance(node, StringMatch):
        v, p = node.operand.value_of(tag, props), node.pattern.value_of(tag, props)
        if not isinstance(v, str) or not isinstance(p, str):
            return None
        if node.op == "CONTAINS":
            hit = p in v
        elif node.op == "STARTSWITH":
            hit = v.startswith(p)
        else:
            hit = v.endswith(p)
        return not hit if node.negated else hit
    return node.value
