"""Topic name rules (RocketMQ's) and the namespaced stored form.

A stored topic is ``<namespace>%<topic>``. The bare topic may use letters, digits, ``_``, ``-``
and ``%`` and is at most 127 characters. Internal topics are ``<namespace>%%SYS%<kind>%<name>``
(timers, transaction half/op, retry, DLQ) and follow the same character rules.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import Final

MAX_TOPIC_LENGTH: Final = 127
MAX_STORED_TOPIC_BYTES: Final = 65535  # the record's u16 topic_length
SYSTEM_PREFIX: Final = "%SYS%"
_NAME: Final = re.compile(r"[A-Za-z0-9_%\-]+")
_NAMESPACE: Final = re.compile(r"[A-Za-z0-9_\-]+")


@lru_cache(maxsize=65536)
def topic_problem(stored_topic: str) -> str | None:
    """None if ``stored_topic`` is a valid ``namespace%topic``, else why not."""
    namespace, sep, bare = stored_topic.partition("%")
    if not sep:
        return "topic must be namespaced as '<namespace>%<topic>'"
    if not _NAMESPACE.fullmatch(namespace):
        return "namespace may only use letters, digits, '_' and '-'"
    if bare.startswith(SYSTEM_PREFIX):
        rest = bare[len(SYSTEM_PREFIX) :]
        if not rest or not _NAME.fullmatch(rest):
            return "internal topic must be '%SYS%<kind>%<name>'"
        return None
    if not bare:
        return "topic name is empty"
    if len(bare) > MAX_TOPIC_LENGTH:
        return f"topic name longer than {MAX_TOPIC_LENGTH} characters"
    if not _NAME.fullmatch(bare):
        return "topic may only use letters, digits, '_', '-' and '%'"
    return None


def is_valid_topic(stored_topic: str) -> bool:
    return topic_problem(stored_topic) is None
