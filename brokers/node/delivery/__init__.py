"""Delivery engine: how stored messages reach consumers (docs/delivery-contract.md).

The gRPC layer creates one ``DeliveryEngine`` per node over the ``MessageStore``, maps its
desired-state group config to ``ConsumerGroup`` and calls ``put`` / ``receive`` / ``ack`` /
``change_invisible`` / ``forward_to_dlq`` / ``end_transaction`` from the RPC handlers.
"""

from __future__ import annotations

from brokers.node.delivery.engine import DeliveryEngine, TransactionChecker
from brokers.node.delivery.naming import dlq_topic, split_stored_name
from brokers.node.delivery.types import (
    AckStatus,
    ChangeInvisibleResult,
    ChangeInvisibleStatus,
    ConsumerGroup,
    Delivery,
    DeliveryConfig,
    DeliveryError,
    DlqStatus,
    EndTransactionStatus,
    EngineStoppedError,
    ErrorCode,
    IllegalArgumentError,
    IllegalInvisibleTimeError,
    MessageType,
    PutResult,
    QueueLag,
    RecallStatus,
    StoreFailureError,
    TransactionCheck,
)

__all__ = [
    "AckStatus",
    "ChangeInvisibleResult",
    "ChangeInvisibleStatus",
    "ConsumerGroup",
    "Delivery",
    "DeliveryConfig",
    "DeliveryEngine",
    "DeliveryError",
    "DlqStatus",
    "EndTransactionStatus",
    "EngineStoppedError",
    "ErrorCode",
    "IllegalArgumentError",
    "IllegalInvisibleTimeError",
    "MessageType",
    "PutResult",
    "QueueLag",
    "RecallStatus",
    "StoreFailureError",
    "TransactionCheck",
    "TransactionChecker",
    "dlq_topic",
    "split_stored_name",
]
