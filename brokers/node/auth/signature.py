"""Request-signature parsing and verification (protocol doc §1.3–1.4). Sans-io: no clock reads.

``authorization: MQv2-HMAC-SHA1 Credential=<AK>[/scope], SignedHeaders=x-mq-date-time,
Signature=<hex>`` where the signature is HMAC-SHA1(secret, value of ``x-mq-date-time``).
Clients format that time from their *local* wall clock and append a literal ``Z``, so freshness is
judged modulo real time-zone offsets (multiples of 15 minutes between -12 h and +14 h).
"""

from __future__ import annotations

import enum
import functools
import hashlib
import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Final

ALGORITHM: Final = "MQv2-HMAC-SHA1"
_QUARTER_HOUR_S: Final = 15 * 60
_MIN_OFFSET_S: Final = -12 * 3600
_MAX_OFFSET_S: Final = 14 * 3600


class SignatureProblem(enum.Enum):
    MISSING_AUTHORIZATION = "missing authorization header"
    MISSING_DATE = "missing x-mq-date-time header"
    MALFORMED = "malformed authorization header"
    BAD_DATE = "malformed x-mq-date-time"
    STALE = "request time outside the accepted window"
    UNKNOWN_KEY = "unknown or disabled access key"
    BAD_SIGNATURE = "signature mismatch"


@dataclass(frozen=True, slots=True)
class ParsedAuthorization:
    algorithm: str
    access_key: str
    signature: bytes
    signed_headers: str


class SignatureError(Exception):
    """Verification failed; ``problem`` is safe to log and to send back (no secrets)."""

    def __init__(self, problem: SignatureProblem, access_key: str = "") -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.access_key = access_key


@functools.lru_cache(maxsize=1024)
def parse_authorization(header: str) -> ParsedAuthorization:
    """Split ``<algorithm> k=v, k=v`` into its parts; raises SignatureError(MALFORMED).

    Cached: a client sends the same header for a whole second (only the date is signed).
    """
    algorithm, sep, rest = header.strip().partition(" ")
    if not sep:
        raise SignatureError(SignatureProblem.MALFORMED)
    items: dict[str, str] = {}
    for part in rest.split(","):
        key, eq, value = part.strip().partition("=")
        if eq:
            items[key.strip()] = value.strip()
    credential = items.get("Credential")
    sig_hex = items.get("Signature")
    if credential is None or sig_hex is None:
        raise SignatureError(SignatureProblem.MALFORMED)
    access_key = credential.split("/", 1)[0]
    try:
        signature = bytes.fromhex(sig_hex)  # accepts upper- and lowercase hex
    except ValueError:
        raise SignatureError(SignatureProblem.MALFORMED, access_key) from None
    return ParsedAuthorization(algorithm, access_key, signature, items.get("SignedHeaders", ""))


@functools.lru_cache(maxsize=1024)
def parse_request_time(value: str) -> float:
    """``YYYYMMDDTHHMMSSZ`` as epoch seconds, reading it as UTC (what the client claims).

    Cached: every client sends the same value for a whole second.
    """
    if len(value) != 16 or value[8] != "T" or value[15] != "Z":
        raise SignatureError(SignatureProblem.BAD_DATE)
    try:
        dt = datetime(int(value[0:4]), int(value[4:6]), int(value[6:8]), int(value[9:11]),
                      int(value[11:13]), int(value[13:15]), tzinfo=timezone.utc)
    except ValueError:
        raise SignatureError(SignatureProblem.BAD_DATE) from None
    return dt.timestamp()


def is_fresh(request_time_s: float, now_s: float, skew_s: float) -> bool:
    """Accept ``request_time`` if it is ``now`` shifted by a plausible time-zone offset ± skew."""
    delta = request_time_s - now_s
    if not _MIN_OFFSET_S - skew_s <= delta <= _MAX_OFFSET_S + skew_s:
        return False
    nearest = round(delta / _QUARTER_HOUR_S) * _QUARTER_HOUR_S
    return abs(delta - nearest) <= skew_s


def expected_signature(secret: str, date_time: str) -> bytes:
    return hmac.new(secret.encode(), date_time.encode(), hashlib.sha1).digest()


def verify_signature(
    parsed: ParsedAuthorization, date_time: str, secrets: Sequence[str]
) -> bool:
    """Constant-time check against every currently valid secret (two during rotation)."""
    ok = False
    for secret in secrets:
        ok |= hmac.compare_digest(expected_signature(secret, date_time), parsed.signature)
    return ok
