"""Recall handles verify only for the topic (and so the tenant) and node they were issued by."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from brokers.node.delivery.recall import RecallHandles, RecallTarget

SECRET = b"s" * 32
TOPIC = "ns1%orders"


def test_an_issued_handle_names_its_timer_and_message() -> None:
    handles = RecallHandles(SECRET)
    handle = handles.issue(TOPIC, 42, "0000000000000000001F")
    assert handle.isascii() and "=" not in handle
    assert handles.verify(TOPIC, handle) == RecallTarget(42, "0000000000000000001F")


def test_another_topic_tenant_or_node_cannot_use_it() -> None:
    handle = RecallHandles(SECRET).issue(TOPIC, 42, "0000000000000000001F")
    assert RecallHandles(SECRET).verify("ns2%orders", handle) is None  # same name, other tenant
    assert RecallHandles(SECRET).verify("ns1%other", handle) is None
    assert RecallHandles(b"t" * 32).verify(TOPIC, handle) is None  # another node's secret


def test_a_made_up_or_altered_handle_is_refused() -> None:
    handles = RecallHandles(SECRET)
    real = base64.urlsafe_b64decode(handles.issue(TOPIC, 42, "ID") + "==").decode()
    version, _timer, message_id, mac = real.split(" ")
    for raw in (f"{version} 43 {message_id} {mac}", f"{version} 42 OTHER {mac}",
                f"r2 42 {message_id} {mac}", f"{version} 42 {message_id}"):
        forged = base64.urlsafe_b64encode(raw.encode()).decode()
        assert handles.verify(TOPIC, forged) is None, raw


@given(st.text(max_size=600))
def test_arbitrary_input_never_raises(text: str) -> None:
    assert RecallHandles(SECRET).verify(TOPIC, text) is None


def test_short_secrets_are_refused() -> None:
    with pytest.raises(ValueError):
        RecallHandles(b"short")
