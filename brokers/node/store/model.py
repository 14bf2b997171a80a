"""Value types exchanged across the store seam: messages in, results out, status enums.

These are the names fixed by docs/store-contract.md. Expected outcomes (a full disk, an offset
out of range, a corrupted record) are statuses in result objects; exceptions in ``errors`` are
for misuse and for failures a caller cannot branch on.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

_EMPTY: Final[Mapping[str, str]] = MappingProxyType({})

# Reserved system property names (values are strings). User properties must not start with "__".
PROP_DELIVERY_TIME_MS: Final = "__DELIVERY_TIME_MS"
PROP_MESSAGE_GROUP: Final = "__MESSAGE_GROUP"
PROP_TRANSACTION_ID: Final = "__TRANSACTION_ID"
PROP_PRODUCER_GROUP: Final = "__PRODUCER_GROUP"
PROP_ORIGIN_MSG_ID: Final = "__ORIGIN_MSG_ID"
PROP_ORIGIN_TOPIC: Final = "__ORIGIN_TOPIC"
PROP_ORIGIN_QUEUE_ID: Final = "__ORIGIN_QUEUE_ID"
PROP_RETRY_TOPIC: Final = "__RETRY_TOPIC"
PROP_DLQ_ORIGIN: Final = "__DLQ_ORIGIN"
PROP_TRACE_ID: Final = "__TRACE_ID"
PROP_CLIENT_ID: Final = "__CLIENT_ID"


class MessageFlag(enum.IntFlag):
    """Bits of ``NewMessage.flags`` (stored verbatim in the record)."""

    NORMAL = 0
    FIFO = 1
    DELAY = 2
    TRANSACTION_HALF = 4
    TRANSACTION_COMMIT = 8
    RETRY = 16
    DLQ = 32


@dataclass(frozen=True, slots=True)
class NewMessage:
    """A message to append. ``topic`` is the full stored name ``<namespace>%<topic>``."""

    topic: str
    queue_id: int
    body: bytes
    tag: str = ""
    keys: tuple[str, ...] = ()
    properties: Mapping[str, str] = field(default_factory=lambda: _EMPTY)
    born_timestamp_ms: int = 0
    born_host: str = ""
    flags: int = 0
    reconsume_times: int = 0


class AppendStatus(enum.Enum):
    OK = "OK"
    MESSAGE_TOO_LARGE = "MESSAGE_TOO_LARGE"
    INVALID_TOPIC = "INVALID_TOPIC"
    # A property name/value (or tag/key) holds a byte the record format reserves (\x01, \x02).
    INVALID_PROPERTIES = "INVALID_PROPERTIES"
    DISK_FULL = "DISK_FULL"
    STORAGE_CAP_EXCEEDED = "STORAGE_CAP_EXCEEDED"
    STORE_CLOSED = "STORE_CLOSED"
    IO_ERROR = "IO_ERROR"


class AppendResult(tuple):  # type: ignore[type-arg]
    """The outcome of one append: ``status, msg_id, commitlog_offset, queue_offset,
    store_timestamp_ms, detail`` and ``ok``, read as attributes (the contract's names).

    Immutable and compared by those fields, like the frozen dataclass it replaces, but built by
    the writer thread in one C call (``tuple.__new__``, see ``writer``) instead of a Python ``__init__``:
    a frozen dataclass cost ~3 us per message there. The message id of an OK result is made on
    first read from (node id, commit-log offset), so appends whose caller never reads it do not
    pay for formatting it. The tuple layout is private: use the attributes, not indexes.
    """

    __slots__ = ()

    # Private layout: (status, msg_id or None, commitlog_offset, queue_offset,
    #                  store_timestamp_ms, detail, node_id) -- msg_id None means "derive it".
    def __new__(cls, status: AppendStatus, msg_id: str = "", commitlog_offset: int = -1,
                queue_offset: int = -1, store_timestamp_ms: int = 0, detail: str = "") -> AppendResult:
        return _tuple_new(cls, (status, msg_id, commitlog_offset, queue_offset, store_timestamp_ms,
                                detail, 0))

    @property
    def status(self) -> AppendStatus:
        return self[0]  # type: ignore[no-any-return]

    @property
    def msg_id(self) -> str:
        mid = self[1]
        if mid is None:
            return f"{self[6]:08X}{self[2]:016X}"  # = msgid.encode_message_id(node, offset)
        return mid  # type: ignore[no-any-return]

    @property
    def commitlog_offset(self) -> int:
        return self[2]  # type: ignore[no-any-return]

    @property
    def queue_offset(self) -> int:
        return self[3]  # type: ignore[no-any-return]

    @property
    def store_timestamp_ms(self) -> int:
        return self[4]  # type: ignore[no-any-return]

    @property
    def detail(self) -> str:
        return self[5]  # type: ignore[no-any-return]

    @property
    def ok(self) -> bool:
        return self[0] is AppendStatus.OK

    def _public(self) -> tuple[AppendStatus, str, int, int, int, str]:
        return (self[0], self.msg_id, self[2], self[3], self[4], self[5])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, AppendResult):
            return NotImplemented
        return self._public() == other._public()

    def __ne__(self, other: object) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self._public())

    def __repr__(self) -> str:
        return (f"AppendResult(status={self[0]!r}, msg_id={self.msg_id!r}, "
                f"commitlog_offset={self[2]!r}, queue_offset={self[3]!r}, "
                f"store_timestamp_ms={self[4]!r}, detail={self[5]!r})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (AppendResult, self._public())


_tuple_new = tuple.__new__


@dataclass(frozen=True, slots=True)
class StoredMessage:
    msg_id: str
    topic: str
    queue_id: int
    queue_offset: int
    commitlog_offset: int
    size: int
    body: bytes | memoryview
    tag: str
    keys: tuple[str, ...]
    properties: Mapping[str, str]
    born_timestamp_ms: int
    store_timestamp_ms: int
    born_host: str
    flags: int
    reconsume_times: int


class ReadStatus(enum.Enum):
    FOUND = "FOUND"
    NO_MESSAGE_YET = "NO_MESSAGE_YET"
    OFFSET_TOO_SMALL = "OFFSET_TOO_SMALL"
    OFFSET_OVERFLOW = "OFFSET_OVERFLOW"
    NO_SUCH_QUEUE = "NO_SUCH_QUEUE"
    CORRUPTED = "CORRUPTED"


@dataclass(frozen=True, slots=True)
class ReadResult:
    status: ReadStatus
    messages: list[StoredMessage]
    next_offset: int
    min_offset: int
    max_offset: int
    detail: str = ""


class StoreState(enum.Enum):
    """What the writer can currently do (``MessageStore.writable_state``)."""

    WRITABLE = "WRITABLE"
    DISK_FULL = "DISK_FULL"
    STORAGE_CAP_EXCEEDED = "STORAGE_CAP_EXCEEDED"
    CLOSED = "CLOSED"


@dataclass(frozen=True)
class RecoveryReport:
    """What ``MessageStore.open`` found and did. ``clean`` means the abort marker was absent."""

    clean: bool
    checkpoint_offset: int
    replay_start: int
    end_offset: int
    records_replayed: int
    bytes_truncated: int
    truncated_at: int | None
    reason: str
    consume_queue_entries_dropped: int
