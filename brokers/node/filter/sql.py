"""Recursive-descent parser for RocketMQ's SQL92 filter subset, and ``SqlFilter``.

Grammar (keywords case-insensitive)::

    expr       := or_expr
    or_expr    := and_expr ( OR and_expr )*
    and_expr   := not_expr ( AND not_expr )*
    not_expr   := NOT not_expr | predicate
    predicate  := '(' expr ')' | TRUE | FALSE
                | operand ( cmp_op operand
                          | [NOT] BETWEEN operand AND operand
                          | [NOT] IN '(' literal ( ',' literal )* ')'
                          | IS [NOT] NULL
                          | [NOT] (CONTAINS | STARTSWITH | ENDSWITH) operand )
    cmp_op     := '=' | '<>' | '!=' | '<' | '<=' | '>' | '>='
    operand    := identifier | string | number | TRUE | FALSE
    literal    := string | number | TRUE | FALSE

``TAGS`` is the message tag. Nesting deeper than ``MAX_DEPTH`` is refused (so no input can
exhaust the stack); the only exception ``SqlFilter.parse`` raises is ``FilterError``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from brokers.node.filter import sql_ast as ast
from brokers.node.filter.base import FilterError
from brokers.node.filter.sql_lexer import Kind, Token, tokenize

MAX_DEPTH: Final = 64
_CMP: Final = {"=": "=", "<>": "<>", "!=": "<>", "<": "<", "<=": "<=", ">": ">", ">=": ">="}
_STRING_OPS: Final = frozenset({"CONTAINS", "STARTSWITH", "ENDSWITH"})


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0

    # -- token helpers
    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def _next(self) -> Token:
        t = self.tokens[self.i]
        if t.kind is not Kind.END:
            self.i += 1
        return t

    def _is(self, kind: Kind, text: str | None = None) -> bool:
        t = self.tok
        return t.kind is kind and (text is None or t.text == text)

    def _accept(self, kind: Kind, text: str | None = None) -> bool:
        if self._is(kind, text):
            self._next()
            return True
        return False

    def _expect(self, kind: Kind, text: str) -> None:
        if not self._accept(kind, text):
            self._fail(f"expected {text!r}")

    def _fail(self, what: str) -> None:
        t = self.tok
        found = "end of expression" if t.kind is Kind.END else f"{t.kind.value} {t.text!r}"
        raise FilterError(f"{what}, found {found}", t.pos)

    # -- grammar
    def parse(self) -> ast.Node:
        if self._is(Kind.END):
            raise FilterError("empty SQL expression", 0)
        node = self._or()
        if not self._is(Kind.END):
            self._fail("expected AND, OR or end of expression")
        return node

    def _or(self) -> ast.Node:
        items = [self._and()]
        while self._accept(Kind.KEYWORD, "OR"):
            items.append(self._and())
        return items[0] if len(items) == 1 else ast.Or(tuple(items))

    def _and(self) -> ast.Node:
        items = [self._not()]
        while self._accept(Kind.KEYWORD, "AND"):
            items.append(self._not())
        return items[0] if len(items) == 1 else ast.And(tuple(items))

    def _not(self) -> ast.Node:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError(f"expression nested deeper than {MAX_DEPTH}", self.tok.pos)
        try:
            if self._accept(Kind.KEYWORD, "NOT"):
                return ast.Not(self._not())
            return self._predicate()
        finally:
            self.depth -= 1

    def _predicate(self) -> ast.Node:
        if self._accept(Kind.OP, "("):
            node = self._or()
            self._expect(Kind.OP, ")")
            return node
        if self._is(Kind.KEYWORD, "TRUE") or self._is(Kind.KEYWORD, "FALSE"):
            follower = self.tokens[self.i + 1]
            if not (follower.kind is Kind.OP and follower.text in _CMP):
                return ast.BoolConst(self._next().text == "TRUE")
        left = self._operand()
        t = self.tok
        if t.kind is Kind.OP and t.text in _CMP:
            self._next()
            return ast.Compare(_CMP[t.text], left, self._operand())
        if self._accept(Kind.KEYWORD, "IS"):
            negated = self._accept(Kind.KEYWORD, "NOT")
            self._expect(Kind.KEYWORD, "NULL")
            return ast.IsNull(left, negated)
        negated = self._accept(Kind.KEYWORD, "NOT")
        if self._accept(Kind.KEYWORD, "BETWEEN"):
            low = self._operand()
            self._expect(Kind.KEYWORD, "AND")
            return ast.Between(left, low, self._operand(), negated)
        if self._accept(Kind.KEYWORD, "IN"):
            self._expect(Kind.OP, "(")
            choices = [self._literal()]
            while self._accept(Kind.OP, ","):
                choices.append(self._literal())
            self._expect(Kind.OP, ")")
            return ast.In(left, tuple(choices), negated)
        if self.tok.kind is Kind.KEYWORD and self.tok.text in _STRING_OPS:
            op = self._next().text
            return ast.StringMatch(op, left, self._operand(), negated)
        self._fail("expected a comparison, BETWEEN, IN, IS [NOT] NULL or CONTAINS")
        raise AssertionError("unreachable")

    def _operand(self) -> ast.Operand:
        t = self.tok
        if t.kind is Kind.IDENT:
            self._next()
            return ast.Property(t.text)
        return self._literal()

    def _literal(self) -> ast.Literal:
        t = self.tok
        if t.kind is Kind.STRING:
            self._next()
            return ast.Literal(t.text)
        if t.kind is Kind.NUMBER:
            self._next()
            return ast.Literal(t.value)
        if t.kind is Kind.KEYWORD and t.text in ("TRUE", "FALSE"):
            self._next()
            return ast.Literal(t.text == "TRUE")
        self._fail("expected a property name or a literal")
        raise AssertionError("unreachable")


def parse_sql(expression: str) -> ast.Node:
    """Parse ``expression`` into an AST. Raises only ``FilterError``."""
    return _Parser(tokenize(expression)).parse()


@dataclass(frozen=True, slots=True)
class SqlFilter:
    """A parsed SQL92 filter; ``matches`` is True only when the expression is TRUE."""

    expression: str
    root: ast.Node

    @classmethod
    def parse(cls, expression: str) -> SqlFilter:
        return cls(expression, parse_sql(expression))

    @property
    def tag_hash_predicate(self) -> Callable[[int], bool] | None:
        return None

    def matches(self, tag: str, properties: Mapping[str, str]) -> bool:
        try:
            return ast.evaluate(self.root, tag, properties) is True
        except RecursionError:  # pragma: no cover - depth is bounded by the parser
            return False
