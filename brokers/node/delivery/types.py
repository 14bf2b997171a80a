"""Value types of the delivery engine: group specs, deliveries, statuses, errors.

These are the names the gRPC layer codes against (docs/delivery-contract.md). They are
deliberately independent of ``brokers.node.config`` so the engine does not follow every change
of the desired-state document; the gRPC layer maps its ``GroupSpec`` to ``ConsumerGroup``.
"""

from __future__ import annotations

import enum
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Final, NamedTuple

if TYPE_CHECKING:
    from brokers.node.store import AppendResult, StoredMessage

SECONDS: Final = 1000  # durations in this package are milliseconds
MINUTES: Final = 60 * SECONDS
HOURS: Final = 60 * MINUTES

#: RocketMQ's default customised backoff (1s 5s 10s 30s 1m ... 2h), in ms.
DEFAULT_RETRY_BACKOFF_MS: Final[tuple[int, ...]] = tuple(
    s * SECONDS
    for s in (1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200)
)


class MessageType(enum.Enum):
    """How ``DeliveryEngine.put`` routes a message (the protocol's MessageType)."""

    NORMAL = "NORMAL"
    FIFO = "FIFO"
    DELAY = "DELAY"
    TRANSACTION = "TRANSACTION"


@dataclass(frozen=True, slots=True)
class ConsumerGroup:
    """What the engine needs to know about a consumer group.

    ``max_delivery_attempts`` counts deliveries (RocketMQ ``retryMaxTimes + 1``): a message that
    was delivered that many times without an ack goes to the dead-letter queue.
    ``retry_backoff_ms[attempt - 1]`` is the delay before redelivery where the server picks it
    (auto-renewed deliveries whose renewal ran out); the last value repeats.
    """

    namespace: str
    name: str
    broadcast: bool = False
    fifo: bool = False
    max_delivery_attempts: int = 17
    retry_backoff_ms: tuple[int, ...] = DEFAULT_RETRY_BACKOFF_MS

    #: The stored group name ``<namespace>%<group>`` (computed once: used on every call).
    key: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", f"{self.namespace}%{self.name}")

    def backoff_ms(self, attempt: int) -> int:
        """Retry delay after delivery number ``attempt`` (1-based) failed."""
        if not self.retry_backoff_ms:
            return 1 * SECONDS
        return self.retry_backoff_ms[min(max(attempt, 1), len(self.retry_backoff_ms)) - 1]


class Delivery(NamedTuple):
    """One message handed to a consumer (immutable; a named tuple: built once per delivered
    message, where a frozen dataclass's ``__init__`` was a measurable share of a receive).

    ``message`` always shows the topic/queue/offset the producer's message lives at (never an
    internal topic). ``receipt_handle`` is opaque ASCII, valid for ack / change-invisible / DLQ
    until ``invisible_until_ms`` (auto-renewed deliveries: until released).
    """

    message: StoredMessage
    receipt_handle: str
    delivery_attempt: int
    invisible_until_ms: int


class AckStatus(enum.Enum):
    OK = "OK"                          # acked now
    ALREADY_ACKED = "ALREADY_ACKED"    # harmless repeat: report success
    INVALID_HANDLE = "INVALID_HANDLE"  # forged, foreign group/topic, unparseable
    EXPIRED = "EXPIRED"                # deadline passed or superseded by change_invisible


class ChangeInvisibleStatus(enum.Enum):
    OK = "OK"
    INVALID_HANDLE = "INVALID_HANDLE"
    EXPIRED = "EXPIRED"
    ILLEGAL_INVISIBLE_TIME = "ILLEGAL_INVISIBLE_TIME"


@dataclass(frozen=True, slots=True)
class ChangeInvisibleResult:
    """``receipt_handle`` is the new handle on OK, the request's handle otherwise."""

    status: ChangeInvisibleStatus
    receipt_handle: str
    invisible_until_ms: int = 0


class DlqStatus(enum.Enum):
    OK = "OK"
    INVALID_HANDLE = "INVALID_HANDLE"
    EXPIRED = "EXPIRED"
    STORE_ERROR = "STORE_ERROR"


class RecallStatus(enum.Enum):
    """Outcome of ``DeliveryEngine.recall``."""

    RECALLED = "RECALLED"
    INVALID_HANDLE = "INVALID_HANDLE"  # not issued by this node for this topic (or made up)
    NOT_PENDING = "NOT_PENDING"  # no such delay message waiting: delivered, recalled, or unknown
    STORE_ERROR = "STORE_ERROR"


class EndTransactionStatus(enum.Enum):
    COMMITTED = "COMMITTED"
    ROLLED_BACK = "ROLLED_BACK"
    ALREADY_RESOLVED = "ALREADY_RESOLVED"   # repeat of a resolution seen recently: report OK
    UNKNOWN_TRANSACTION = "UNKNOWN_TRANSACTION"
    STORE_ERROR = "STORE_ERROR"


class PutResult(NamedTuple):
    """Outcome of ``put``. ``append`` is the store's result for the record actually written
    (the timer / half copy for delay and transaction messages). ``transaction_id`` is set for
    transaction messages. ``visible`` is False while the message waits (delay, half).
    ``recall_handle`` (delay messages only) is what ``recall`` takes to cancel it.

    A named tuple, like ``Delivery``: one is built per message sent, and a frozen dataclass's
    ``__init__`` cost twice as much."""

    append: AppendResult
    transaction_id: str = ""
    visible: bool = True
    recall_handle: str = ""

    @property
    def ok(self) -> bool:
        return self.append.ok


@dataclass(frozen=True, slots=True)
class TransactionCheck:
    """An orphaned half message to ask its producer about (RecoverOrphanedTransactionCommand).

    ``message`` shows the real topic/queue the message will go to when committed.
    """

    transaction_id: str
    topic: str
    message: StoredMessage
    producer_group: str
    producer_client_id: str
    check_number: int  # 1 for the first check


@dataclass(frozen=True, slots=True)
class QueueLag:
    """Per queue: ``max_offset - committed``, and messages currently invisible (in flight)."""

    queue_id: int
    committed_offset: int
    max_offset: int
    inflight: int

    @property
    def lag(self) -> int:
        return max(0, self.max_offset - self.committed_offset)


@dataclass(frozen=True)
class DeliveryConfig:
    """Tunables. Durations in ms; small values make tests fast."""

    #: Invisible duration for auto-renewed (PushConsumer) deliveries, renewed before it runs out.
    auto_renew_invisible_ms: int = 60 * SECONDS
    #: An auto-renewed delivery stops being renewed after this long (then retry backoff applies).
    auto_renew_max_ms: int = 3 * HOURS
    #: After ``release_client``, its auto-renewed deliveries become visible after this delay.
    release_delay_ms: int = 1 * SECONDS
    min_invisible_ms: int = 0
    max_invisible_ms: int = 12 * HOURS
    max_batch: int = 32
    #: Background tick: expiry, timers, transaction checks.
    tick_ms: int = 100
    #: State flush period (acks/offsets are written in batches; timers/halves are awaited).
    state_flush_ms: int = 20
    #: A half message with no EndTransaction after this long is checked with its producer.
    transaction_check_after_ms: int = 6 * SECONDS
    transaction_check_interval_ms: int = 30 * SECONDS
    transaction_check_max_interval_ms: int = 5 * MINUTES
    #: After this many checks without a resolution the half message is rolled back (dropped).
    transaction_max_checks: int = 15
    #: Where a clustering group with no committed offset starts: "earliest" or "latest".
    clustering_start: str = "earliest"
    #: Where a broadcast client seen for the first time starts: "earliest" or "latest".
    broadcast_start: str = "latest"
    #: A broadcast client not seen (Settings, heartbeat, receive) for this long is gone: its
    #: cursors and in-flight batches are dropped. SDK client ids change with every process, so
    #: the cursors of old ids would otherwise be kept forever.
    broadcast_idle_prune_ms: int = 24 * HOURS
    #: How often the tick checks whether retention is held back by the held copy of a delay
    #: timer or transaction half, and moves such copies to the end of the log.
    relocate_interval_ms: int = 10 * SECONDS
    #: Held copies moved per round at most (each is one append; the rest go next round).
    relocate_max_per_round: int = 1024
    #: FIFO: deliver at most one message per message group in one batch (strict ordering for
    #: consumers that ack out of order). False lets a batch carry a group's run in order.
    fifo_one_per_group: bool = True
    #: Node secret for receipt-handle MACs; empty = generated once and kept in the state db.
    receipt_secret: bytes = field(default=b"", repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> DeliveryConfig:
        """Defaults overridden by ``MQ_DELIVERY_<FIELD>`` variables (integer and string
        fields, e.g. ``MQ_DELIVERY_TRANSACTION_CHECK_AFTER_MS=500``): how an operator or a
        test shortens durations of a node process. Unknown or malformed values raise
        ``ValueError`` (a node must not start with a setting it silently ignored)."""
        env = os.environ if environ is None else environ
        overrides: dict[str, object] = {}
        for f in fields(cls):
            raw = env.get(f"MQ_DELIVERY_{f.name.upper()}")
            if raw is None or f.name == "receipt_secret":
                continue
            default = getattr(cls, f.name)
            if isinstance(default, bool):
                if raw.lower() not in ("1", "0", "true", "false"):
                    raise ValueError(f"MQ_DELIVERY_{f.name.upper()}: expected a boolean")
                overrides[f.name] = raw.lower() in ("1", "true")
            elif isinstance(default, int):
                value = int(raw)
                if value < 0:
                    raise ValueError(f"MQ_DELIVERY_{f.name.upper()}: must be >= 0")
                overrides[f.name] = value
            else:
                overrides[f.name] = raw
        return cls(**overrides)  # type: ignore[arg-type]


class ErrorCode(enum.Enum):
    """Protocol-neutral codes; the gRPC layer maps them to wire codes."""

    ILLEGAL_FILTER_EXPRESSION = "ILLEGAL_FILTER_EXPRESSION"
    ILLEGAL_INVISIBLE_TIME = "ILLEGAL_INVISIBLE_TIME"
    ILLEGAL_ARGUMENT = "ILLEGAL_ARGUMENT"
    ENGINE_STOPPED = "ENGINE_STOPPED"
    STORE_ERROR = "STORE_ERROR"


class DeliveryError(Exception):
    """Base of the engine's errors: misuse or failures a caller cannot branch on."""

    code: ErrorCode = ErrorCode.ILLEGAL_ARGUMENT
    retriable: bool = False

    def __init__(self, detail: str = "") -> None:
        super().__init__(detail or self.code.value)
        self.detail = detail


class IllegalArgumentError(DeliveryError):
    code = ErrorCode.ILLEGAL_ARGUMENT


class IllegalInvisibleTimeError(DeliveryError):
    code = ErrorCode.ILLEGAL_INVISIBLE_TIME


class EngineStoppedError(DeliveryError):
    code = ErrorCode.ENGINE_STOPPED
    retriable = True


class StoreFailureError(DeliveryError):
    code = ErrorCode.STORE_ERROR
    retriable = True
