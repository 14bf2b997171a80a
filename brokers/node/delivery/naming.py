"""Stored names of the topics the engine owns (docs/store-contract.md naming).

Stored names are ``<namespace>%<name>``. The DLQ of a group is a real, readable topic
``<namespace>%%DLQ%<group>`` (bare name ``%DLQ%<group>``, RocketMQ's). Timer and half-message
copies live in internal topics ``<namespace>%%SYS%TIMER%<topic>`` / ``%SYS%HALF%<topic>``.
"""

from __future__ import annotations

from typing import Final

DLQ_PREFIX: Final = "%DLQ%"


def split_stored_name(stored: str) -> tuple[str, str]:
    """``"ns%T"`` -> ``("ns", "T")``; the namespace never contains ``%``."""
    namespace, _, bare = stored.partition("%")
    return namespace, bare


def dlq_topic(namespace: str, group: str) -> str:
    """Stored name of ``group``'s dead-letter topic (one queue, id 0)."""
    return f"{namespace}%{DLQ_PREFIX}{group}"


def timer_topic(stored_topic: str) -> str:
    namespace, bare = split_stored_name(stored_topic)
    return f"{namespace}%%SYS%TIMER%{bare.replace('%', '_')}"


def half_topic(stored_topic: str) -> str:
    namespace, bare = split_stored_name(stored_topic)
    return f"{namespace}%%SYS%HALF%{bare.replace('%', '_')}"
