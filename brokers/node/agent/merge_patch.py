"""Desired-state increments as JSON merge patches (RFC 7386), shared by both ends.

The control plane sends a node the full desired state on connect and, after that, only what
changed: a merge patch against the last document it sent on that connection. Objects merge key
by key, ``null`` deletes a key, anything else (lists included) replaces the value. A merge patch
cannot carry a ``null`` *value*, so the sender checks that ``apply(base, diff(base, new)) == new``
and falls back to a full snapshot when it does not hold; the receiver checks the result against
the sender's ``fingerprint`` of the new document before applying it. Both ends are this module,
so the canonical JSON used for the fingerprint is the same on both.
"""
from __future__ import annotations

import copy
import hashlib
import json
from typing import Any

_MISSING = object()


def diff(base: Any, new: Any) -> Any:
    """A merge patch that turns ``base`` into ``new`` (``{}`` when they are equal)."""
    if not (isinstance(base, dict) and isinstance(new, dict)):
        return copy.deepcopy(new)
    patch: dict[str, Any] = {}
    for key in base.keys() - new.keys():
        patch[key] = None
    for key, value in new.items():
        old = base.get(key, _MISSING)
        if old is _MISSING:
            patch[key] = copy.deepcopy(value)
        elif old != value:
            patch[key] = diff(old, value) if isinstance(old, dict) and isinstance(value, dict) else copy.deepcopy(value)
    return patch


def apply(doc: Any, patch: Any) -> Any:
    """``doc`` with ``patch`` merged in (RFC 7386 §2); neither argument is modified."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = copy.deepcopy(doc) if isinstance(doc, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = apply(out.get(key), value)
    return out


def fingerprint(doc: Any) -> str:
    """SHA-256 of the document's canonical JSON (sorted keys, no spaces)."""
    canonical = json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()
