"""Tag expressions: parsing, exact match, and the consume-queue hash fast path."""

from __future__ import annotations

import pytest

from brokers.node.filter import FilterError, FilterType, compile_filter
from brokers.node.store import tag_hash


def test_star_and_empty_match_everything_without_fast_path() -> None:
    for expr in ("*", "", "  * "):
        f = compile_filter(FilterType.TAG, expr)
        assert f.tag_hash_predicate is None
        assert f.matches("", {}) and f.matches("x", {})


def test_alternatives_match_exactly_and_offer_hash_predicate() -> None:
    f = compile_filter(FilterType.TAG, "TagA || TagB ||TagC")
    assert f.matches("TagB", {}) and not f.matches("TagD", {}) and not f.matches("", {})
    pred = f.tag_hash_predicate
    assert pred is not None and pred(tag_hash("TagA")) and not pred(tag_hash("TagD"))


@pytest.mark.parametrize("expr", ["a ||", "|| a", "a |||| b", "a\x01"])
def test_bad_tag_expressions(expr: str) -> None:
    with pytest.raises(FilterError):
        compile_filter(FilterType.TAG, expr)
