"""Logging helpers: a filter that keeps secrets out of every log line."""
from __future__ import annotations

import logging
import re

# SecretKeys, API tokens and passwords in "key=value" or JSON form.
_SECRET_PATTERN = re.compile(
    r"(?i)(secret[_-]?key|secret|password|token|authorization)(\"?\s*[:=]\s*\"?)([^\s\",}]+)"
)


class RedactSecretsFilter(logging.Filter):
    """Replaces values that look like secrets with ``***`` before a record is emitted."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = _SECRET_PATTERN.sub(lambda m: f"{m.group(1)}{m.group(2)}***", message)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True
