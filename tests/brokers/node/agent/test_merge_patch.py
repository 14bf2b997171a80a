"""Merge patches (RFC 7386) between desired-state documents: diff/apply round trips, the RFC's
own examples, and the one thing a merge patch cannot say (a null value), which the sender detects."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from brokers.node.agent.merge_patch import apply, diff, fingerprint

_leaf = st.one_of(st.integers(), st.text(max_size=5), st.booleans(), st.lists(st.integers(), max_size=3))
_docs = st.recursive(_leaf, lambda kids: st.dictionaries(st.text("abc", min_size=1, max_size=2), kids, max_size=4),
                     max_leaves=20)


@given(_docs, _docs)
def test_diff_then_apply_gives_the_new_document(base, new) -> None:
    patch = diff(base, new)
    assert apply(base, patch) == new
    assert diff(new, new) == {} or not isinstance(new, dict)


def test_rfc7386_examples_and_inputs_left_alone() -> None:
    target = {"title": "Goodbye!", "author": {"givenName": "John", "familyName": "Doe"},
              "tags": ["example", "sample"], "content": "This will be unchanged"}
    patch = {"title": "Hello!", "phoneNumber": "+01-123-456-7890", "author": {"familyName": None},
             "tags": ["example"]}
    assert apply(target, patch) == {
        "title": "Hello!", "author": {"givenName": "John"}, "tags": ["example"],
        "content": "This will be unchanged", "phoneNumber": "+01-123-456-7890"}
    assert target["author"]["familyName"] == "Doe"  # not modified in place
    assert apply({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}) == {"a": {"b": "d"}}
    assert apply({"a": [{"b": "c"}]}, {"a": [1]}) == {"a": [1]}


def test_a_null_value_cannot_travel_in_a_patch_and_the_round_trip_shows_it() -> None:
    base, new = {"quota": {"send_tps": 10}}, {"quota": {"send_tps": None}}
    assert apply(base, diff(base, new)) != new  # the consumer then sends the full document


def test_fingerprint_ignores_key_order_but_not_values() -> None:
    assert fingerprint({"a": 1, "b": [1, 2]}) == fingerprint({"b": [1, 2], "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 2})
