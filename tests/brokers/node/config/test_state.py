"""Desired-state validation and the keep-last-good reload rule."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from brokers.node.config import StateError, StateHolder, TopicType, parse_desired_state

GOOD = {
    "version": 3,
    "node": {"name": "n1", "role": "master", "advertised_host": "127.0.0.1"},
    "namespaces": {"shop": {
        "topics": {"orders": {"type": "FIFO", "queues": 4}},
        "groups": {"billing": {"fifo": True, "retry_backoff": {"kind": "exponential"}}},
        "credentials": {"AK": {"secrets": ["very-secret"], "acl": []}},
        "quotas": {"send_tps": 100, "max_message_bytes": 1024},
    }},
}


def test_good_document_parses_into_frozen_specs() -> None:
    state = parse_desired_state(GOOD)
    ns = state.namespaces["shop"]
    assert ns.topics["orders"].type is TopicType.FIFO and ns.topics["orders"].queues == 4
    assert ns.groups["billing"].fifo and ns.groups["billing"].retry_backoff.kind == "exponential"
    assert ns.quotas.send_tps == 100 and ns.quotas.storage_bytes is None
    assert "very-secret" not in repr(state)


@pytest.mark.parametrize("mutate, path", [
    (lambda d: d.pop("version"), "$.version"),
    (lambda d: d["namespaces"]["shop"]["topics"]["orders"].update(type="WEIRD"), ".type"),
    (lambda d: d["namespaces"]["shop"]["topics"]["orders"].update(queues=0), ".queues"),
    (lambda d: d["namespaces"]["shop"]["credentials"]["AK"].update(secrets=[]), ".secrets"),
    (lambda d: d["namespaces"]["shop"].update(extra=1), "shop"),
    (lambda d: d["namespaces"].update({"bad%ns": {}}), "bad%ns"),
    (lambda d: d["namespaces"].update({"other": {"credentials": {"AK": {"secrets": ["s"]}}}}),
     "credentials.AK"),
])
def test_bad_documents_name_the_field(mutate, path: str) -> None:  # type: ignore[no-untyped-def]
    doc = json.loads(json.dumps(GOOD))
    mutate(doc)
    with pytest.raises(StateError) as info:
        parse_desired_state(doc)
    assert path in str(info.value)
    assert "very-secret" not in str(info.value)


def test_reload_keeps_last_good_state(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(GOOD))
    holder = StateHolder(path)
    seen: list[int] = []
    holder.subscribe(lambda s: seen.append(s.version))
    assert holder.reload() and holder.current.version == 3
    path.write_text("{not json")
    assert holder.changed_on_disk()
    assert not holder.reload()
    assert holder.current.version == 3 and "JSON" in (holder.last_error or "")
    path.write_text(json.dumps({**GOOD, "version": 4}))
    assert holder.reload() and seen == [3, 4] and holder.last_error is None
