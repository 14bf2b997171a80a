"""Tag expressions: ``*`` (or empty) matches everything, ``a || b || c`` matches those tags.

The consume queue keeps ``tag_hash(tag)`` per entry, so the store can skip non-matching entries
without reading the commit log (``tag_hash_predicate``); hashes can collide, so ``matches`` does
the exact comparison afterwards (RocketMQ does the same).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from brokers.node.filter.base import FilterError


def _tag_hash(tag: str) -> int:
    from brokers.node.store import tag_hash

    return tag_hash(tag)


@dataclass(frozen=True, slots=True)
class TagFilter:
    """Matches messages whose tag is in ``tags``; ``tags`` empty = match all."""

    tags: frozenset[str]
    hashes: frozenset[int]

    @classmethod
    def parse(cls, expression: str) -> TagFilter:
        """Parse ``*`` / ``a||b``; blanks around tags are ignored. Raises ``FilterError``."""
        text = expression.strip()
        if text in ("", "*"):
            return cls(frozenset(), frozenset())
        tags: set[str] = set()
        for part in text.split("||"):
            tag = part.strip()
            if not tag:
                raise FilterError(f"empty tag in tag expression {expression!r}")
            if any(ord(c) < 32 for c in tag):
                raise FilterError("control character in tag expression")
            tags.add(tag)
        return cls(frozenset(tags), frozenset(_tag_hash(t) for t in tags))

    @property
    def tag_hash_predicate(self) -> Callable[[int], bool] | None:
        if not self.tags:
            return None
        return self.hashes.__contains__

    def matches(self, tag: str, properties: Mapping[str, str]) -> bool:
        return not self.tags or tag in self.tags
