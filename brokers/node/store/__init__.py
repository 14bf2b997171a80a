"""The broker node's storage engine (Django-free). The contract is docs/store-contract.md."""

from __future__ import annotations

from .config import GiB, KiB, MiB, FileOps, StoreConfig
from .consumequeue import tag_hash
from .errors import (
    CheckpointError, CorruptRecordError, InvalidMessageIdError, StoreClosedError, StoreError,
    StoreLockedError,
)
from .model import (
    AppendResult, AppendStatus, MessageFlag, NewMessage, ReadResult, ReadStatus, RecoveryReport,
    StoredMessage, StoreState,
)
from .msgid import MessageId, decode_message_id, encode_message_id
from .retention import RetentionReport
from .state import HalfMessage, InflightBatch, StateStore, Timer
from .store import MessageStore
from .topics import is_valid_topic, topic_problem

__all__ = [
    "AppendResult", "AppendStatus", "CheckpointError", "CorruptRecordError", "FileOps", "GiB",
    "InvalidMessageIdError", "KiB", "MessageFlag", "MessageId", "MessageStore", "MiB",
    "NewMessage", "ReadResult", "ReadStatus", "RecoveryReport", "RetentionReport", "StateStore", "HalfMessage", "InflightBatch", "Timer",
    "StoreClosedError", "StoreConfig", "StoreError", "StoreLockedError", "StoreState",
    "StoredMessage", "decode_message_id", "encode_message_id", "is_valid_topic", "tag_hash",
    "topic_problem",
]
