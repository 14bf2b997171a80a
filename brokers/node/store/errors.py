"""The store's exception hierarchy: for misuse and unrecoverable failures, not for outcomes."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every exception the store raises."""

    retriable: bool = False


class StoreClosedError(StoreError):
    """An operation was attempted on a closed store."""


class StoreLockedError(StoreError):
    """Another process holds the data directory."""


class InvalidMessageIdError(StoreError, ValueError):
    """A message id string does not decode."""


class CorruptRecordError(StoreError):
    """A commit-log record failed validation (length, magic or CRC)."""

    def __init__(self, offset: int, reason: str) -> None:
        super().__init__(f"corrupt record at commit-log offset {offset}: {reason}")
        self.offset = offset
        self.reason = reason


class CheckpointError(StoreError):
    """The checkpoint file exists but does not validate."""
