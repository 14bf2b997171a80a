"""Receipt handles: opaque ASCII strings that name one delivery and cannot be forged.

Format (all lowercase hex, dot-separated)::

    v2.<batch id>.<index in batch>.<deadline ms>.<mac>     (issued now)
    v1.<batch id>.<index in batch>.<deadline ms>.<mac>     (issued before; still accepted)

v2: the MACs of one batch are slices of one keyed SHAKE-256 output,
``SHAKE256(secret || len(group):group | len(topic):topic | batch | deadline)``, 10 bytes per
entry: entry ``i``'s MAC is bytes ``[10 i, 10 i + 10)``. One hash per *batch* on issue, and one
per batch on ack (the stream is cached), instead of one keyed BLAKE2b per handle each way.
Knowing some entries' MACs says nothing about another entry's (independent output bytes of a
PRF); the length prefixes keep ``a|b`` + ``c`` apart from ``a`` + ``b|c``.

v1: ``mac`` = first 10 bytes of keyed BLAKE2b(node secret, "group|topic|batch|index|deadline").

Because the group and topic are inside the MAC, a handle presented for another group or topic
(or a made-up one) fails verification without any lookup.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any, Final

_VERSION: Final = "v1"
_MAC_BYTES: Final = 10
_MAC_HEX: Final = 2 * _MAC_BYTES
_MAX_BATCH: Final = 1024  # entries per batch a v2 stream covers (the engine issues <= 32)


@dataclass(frozen=True, slots=True)
class Receipt:
    batch_id: int
    index: int
    deadline_ms: int


class ReceiptCodec:
    """Encodes and verifies handles with one node secret (keep it across restarts).

    Hot path: ``encode_batch`` (one SHAKE per batch) and ``verify`` (a cached stream lookup, a
    slice and a constant-time compare per ack).
    """

    _PREFIX_CACHE_MAX: Final = 4096
    _STREAM_CACHE_MAX: Final = 8192
    _ISSUED_MAX: Final = 131072

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("receipt secret must be at least 16 bytes")
        self._key = secret[:64]
        self._prefixes: dict[tuple[str, str], Any] = {}
        self._shake_prefixes: dict[tuple[str, str], Any] = {}
        #: (group, topic, batch id, deadline) -> hex MAC stream of that batch (v2)
        self._streams: dict[tuple[str, str, int, int], str] = {}
        #: Handles issued recently and not yet verified -> (group, topic, batch, index,
        #: deadline). The exact string came from here, so its first verification is a dict
        #: pop and a name check, no parsing or MAC. Only a cache: a miss takes the MAC path.
        self._issued: dict[str, tuple[str, str, int, int, int]] = {}

    # ------------------------------------------------------------------ v2
    def _stream(self, group: str, topic: str, batch_id: int, deadline_ms: int,
                count: int) -> str:
        base = self._shake_prefixes.get((group, topic))
        if base is None:
            if len(self._shake_prefixes) >= self._PREFIX_CACHE_MAX:
                self._shake_prefixes.clear()
            base = hashlib.shake_256(
                self._key + f"{len(group)}:{group}|{len(topic)}:{topic}|".encode())
            self._shake_prefixes[(group, topic)] = base
        h = base.copy()
        h.update(f"{batch_id:x}.{deadline_ms:x}".encode())
        return h.hexdigest(_MAC_BYTES * count)

    def _remember(self, key: tuple[str, str, int, int], stream: str) -> None:
        streams = self._streams
        if len(streams) >= self._STREAM_CACHE_MAX:
            del streams[next(iter(streams))]
        streams[key] = stream

    def encode_batch(self, group: str, topic: str, batch_id: int, count: int,
                     deadline_ms: int) -> list[str]:
        """Handles for entries 0..count-1 of one batch."""
        stream = self._stream(group, topic, batch_id, deadline_ms, count)
        self._remember((group, topic, batch_id, deadline_ms), stream)
        head, tail = f"v2.{batch_id:x}.", f".{deadline_ms:x}."
        handles = [f"{head}{i:x}{tail}{stream[i * _MAC_HEX:(i + 1) * _MAC_HEX]}"
                   for i in range(count)]
        issued = self._issued
        if len(issued) + count > self._ISSUED_MAX:
            for old in list(issued)[:max(count, len(issued) // 8)]:
                del issued[old]
        for i, h in enumerate(handles):
            issued[h] = (group, topic, batch_id, i, deadline_ms)
        return handles

    def encode(self, group: str, topic: str, receipt: Receipt) -> str:
        return self.encode_batch(group, topic, receipt.batch_id, receipt.index + 1,
                                 receipt.deadline_ms)[receipt.index]

    def decode(self, group: str, topic: str, handle: str) -> Receipt | None:
        """The receipt if ``handle`` was issued by this node for ``group`` and ``topic``."""
        r = self.verify(group, topic, handle)
        return None if r is None else Receipt(*r)

    def verify(self, group: str, topic: str, handle: str) -> tuple[int, int, int] | None:
        """``decode`` as a plain (batch id, index, deadline ms) tuple (the ack hot path)."""
        hit = self._issued.pop(handle, None)
        if hit is not None and hit[0] == group and hit[1] == topic:
            return hit[2], hit[3], hit[4]
        if len(handle) > 128:
            return None
        if handle.startswith("v2."):
            parts = handle.split(".")
            if len(parts) != 5 or len(parts[4]) != _MAC_HEX:
                return None
            try:
                batch_id, index, deadline = int(parts[1], 16), int(parts[2], 16), int(parts[3], 16)
            except ValueError:
                return None
            if not 0 <= index < _MAX_BATCH or batch_id < 0 or deadline < 0:
                return None
            key = (group, topic, batch_id, deadline)
            stream = self._streams.get(key)
            fresh = stream is None or len(stream) < (index + 1) * _MAC_HEX
            if fresh:
                # Not issued recently (restart, eviction) or a made-up one: derive it again,
                # sized for a whole batch so the batch's other acks hit the cache.
                stream = self._stream(group, topic, batch_id, deadline, max(index + 1, 32))
            if not hmac.compare_digest(parts[4], stream[index * _MAC_HEX:(index + 1) * _MAC_HEX]):
                return None
            if fresh:  # only genuine handles enter the cache (junk must not flush it)
                self._remember(key, stream)
            return batch_id, index, deadline
        if handle.startswith(_VERSION + "."):
            r = self._decode_v1(group, topic, handle)
            return None if r is None else (r.batch_id, r.index, r.deadline_ms)
        return None

    # ------------------------------------------------------------------ v1 (handles issued
    # before v2; still verified so acks in flight across an upgrade keep working)
    def _mac(self, group: str, topic: str, body: str) -> str:
        base = self._prefixes.get((group, topic))
        if base is None:
            if len(self._prefixes) >= self._PREFIX_CACHE_MAX:
                self._prefixes.clear()
            base = hashlib.blake2b(f"{group}|{topic}|".encode(), key=self._key,
                                   digest_size=_MAC_BYTES)
            self._prefixes[(group, topic)] = base
        h = base.copy()
        h.update(body.encode())
        return h.hexdigest()

    def encode_v1(self, group: str, topic: str, receipt: Receipt) -> str:
        """A v1 handle (tests of the upgrade path only)."""
        body = f"{receipt.batch_id:x}.{receipt.index:x}.{receipt.deadline_ms:x}"
        return f"{_VERSION}.{body}.{self._mac(group, topic, body)}"

    def _decode_v1(self, group: str, topic: str, handle: str) -> Receipt | None:
        head, _, mac = handle.rpartition(".")
        body = head[len(_VERSION) + 1:]
        parts = body.split(".")
        if len(parts) != 3 or not hmac.compare_digest(mac, self._mac(group, topic, body)):
            return None
        try:
            return Receipt(int(parts[0], 16), int(parts[1], 16), int(parts[2], 16))
        except ValueError:
            return None
