"""The filter seam: types, the error, and ``compile_filter`` (cached per expression)."""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Final, Protocol


class FilterType(enum.Enum):
    TAG = "TAG"
    SQL = "SQL"


class FilterError(ValueError):
    """The expression is not a valid filter. ``code`` is protocol-neutral; ``position`` is the
    character offset of the problem when known."""

    code: Final = "ILLEGAL_FILTER_EXPRESSION"

    def __init__(self, detail: str, position: int | None = None) -> None:
        super().__init__(detail if position is None else f"{detail} (at {position})")
        self.detail = detail
        self.position = position


class MessageFilter(Protocol):
    """A compiled filter. ``tag_hash_predicate`` (may be None = no fast path) may be given to the
    store's consume-queue scan; ``matches`` is the exact check and never raises."""

    @property
    def tag_hash_predicate(self) -> Callable[[int], bool] | None: ...

    def matches(self, tag: str, properties: Mapping[str, str]) -> bool: ...


class _MatchAll:
    tag_hash_predicate: Callable[[int], bool] | None = None

    def matches(self, tag: str, properties: Mapping[str, str]) -> bool:
        return True

    def __repr__(self) -> str:
        return "MATCH_ALL"


MATCH_ALL: Final[MessageFilter] = _MatchAll()


@lru_cache(maxsize=4096)
def compile_filter(filter_type: FilterType, expression: str) -> MessageFilter:
    """Compile ``expression``; raises only ``FilterError``. Results are cached."""
    if filter_type is FilterType.TAG:
        from brokers.node.filter.tags import TagFilter

        return TagFilter.parse(expression)
    from brokers.node.filter.sql import SqlFilter

    return SqlFilter.parse(expression)
