"""Hand-written tokenizer for RocketMQ's SQL92 filter subset.

Tokens: identifiers (``[A-Za-z_$][A-Za-z0-9_.$]*``, case-sensitive; keywords are recognised
case-insensitively), string literals in single quotes (``''`` escapes a quote), integer and
decimal numbers (an optional exponent), operators ``= <> != < <= > >= ( ) ,``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from brokers.node.filter.base import FilterError

MAX_EXPRESSION_CHARS: Final = 8192

KEYWORDS: Final = frozenset(
    {
        "AND", "OR", "NOT", "BETWEEN", "IN", "IS", "NULL", "TRUE", "FALSE",
        "CONTAINS", "STARTSWITH", "ENDSWITH",
    }
)


class Kind(enum.Enum):
    IDENT = "identifier"
    KEYWORD = "keyword"
    STRING = "string"
    NUMBER = "number"
    OP = "operator"
    END = "end of expression"


@dataclass(frozen=True, slots=True)
class Token:
    kind: Kind
    text: str  # keyword: upper-cased; string: unescaped value; op: the operator
    pos: int
    value: int | float | None = None  # numbers only


_OPS_2: Final = ("<>", "!=", "<=", ">=")
_OPS_1: Final = frozenset("=<>(),")


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an END token. Raises ``FilterError``."""
    if len(text) > MAX_EXPRESSION_CHARS:
        raise FilterError(f"expression longer than {MAX_EXPRESSION_CHARS} characters")
    tokens: list[Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
        elif c == "'":
            i = _string(text, i, tokens)
        elif c.isdigit() or (c in "+-." and i + 1 < n and (text[i + 1].isdigit() or text[i + 1] == ".")):
            i = _number(text, i, tokens)
        elif c.isascii() and (c.isalpha() or c in "_$"):
            j = i + 1
            while j < n and text[j].isascii() and (text[j].isalnum() or text[j] in "_.$"):
                j += 1
            word = text[i:j]
            if word.upper() in KEYWORDS:
                tokens.append(Token(Kind.KEYWORD, word.upper(), i))
            else:
                tokens.append(Token(Kind.IDENT, word, i))
            i = j
        elif text[i : i + 2] in _OPS_2:
            tokens.append(Token(Kind.OP, text[i : i + 2], i))
            i += 2
        elif c in _OPS_1:
            tokens.append(Token(Kind.OP, c, i))
            i += 1
        else:
            raise FilterError(f"unexpected character {c!r}", i)
    tokens.append(Token(Kind.END, "", n))
    return tokens


def _string(text: str, start: int, out: list[Token]) -> int:
    parts: list[str] = []
    i = start + 1
    while True:
        j = text.find("'", i)
        if j < 0:
            raise FilterError("unterminated string literal", start)
        parts.append(text[i:j])
        if text[j + 1 : j + 2] == "'":  # '' is an escaped quote
            parts.append("'")
            i = j + 2
            continue
        out.append(Token(Kind.STRING, "".join(parts), start))
        return j + 1


def _number(text: str, start: int, out: list[Token]) -> int:
    i, n = start, len(text)
    if text[i] in "+-":
        i += 1
    while i < n and (text[i].isdigit() or text[i] == "."):
        i += 1
    if i < n and text[i] in "eE":
        k = i + 1
        if k < n and text[k] in "+-":
            k += 1
        if k < n and text[k].isdigit():
            i = k
            while i < n and text[i].isdigit():
                i += 1
    if i < n and text[i] in "lLdDfF":  # Java-style suffixes RocketMQ users write (10L, 1.5D)
        i += 1
    raw = text[start:i].rstrip("lLdDfF")
    try:
        value: int | float = int(raw) if raw.lstrip("+-").isdigit() else float(raw)
    except ValueError:
        raise FilterError(f"malformed number {text[start:i]!r}", start) from None
    if isinstance(value, float) and value != value:  # pragma: no cover - float() gives no NaN here
        raise FilterError("malformed number", start)
    if i < n and (text[i].isalnum() or text[i] in "_$."):
        raise FilterError(f"malformed number {text[start:i + 1]!r}", start)
    out.append(Token(Kind.NUMBER, raw, start, value))
    return i
