"""A real SMTP server on loopback (aiosmtpd) that every test's e-mail goes through.

``tests/conftest.py`` starts one per session and points Django's SMTP backend at it for every
test; the ``smtp`` fixture gives the test its :class:`Inbox`, emptied at the start of the test.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any


@dataclass(frozen=True)
class Mail:
    """One message as the SMTP server received it."""

    envelope_to: list[str]
    message: EmailMessage

    @property
    def to(self) -> list[str]:
        return [a.strip() for a in str(self.message["To"] or "").split(",") if a.strip()]

    @property
    def subject(self) -> str:
        return str(self.message["Subject"] or "")

    @property
    def body(self) -> str:
        part = self.message.get_body(preferencelist=("plain",)) or self.message
        return str(part.get_content())


@dataclass
class Inbox:
    """aiosmtpd handler: keeps what arrives, in order (appended from the server's thread)."""

    outbox: list[Mail] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        mail = Mail(list(envelope.rcpt_tos), message_from_bytes(envelope.content, policy=policy.default))  # type: ignore[arg-type]
        with self._lock:
            self.outbox.append(mail)
        return "250 OK"

    def clear(self) -> None:
        with self._lock:
            self.outbox.clear()

    @property
    def messages(self) -> list[tuple[list[str], EmailMessage]]:
        """(envelope recipients, parsed message) pairs."""
        return [(m.envelope_to, m.message) for m in self.outbox]

    def bodies(self) -> list[str]:
        return [m.body for m in self.outbox]
