"""Admissions are remembered per desired state by the signed headers: repeated calls skip the
signature work but never the freshness check, refusals are never remembered, a new state
starts empty, and a forged signature with a remembered date is still refused."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import Any

import pytest

from brokers.node.auth import AuthError, AuthFailure, Authenticator
from brokers.node.auth.signature import expected_signature
from brokers.node.config import Action, ResourceKind, parse_desired_state
from brokers.node.grpc.boundary import admit
from brokers.node.grpc.errors import Unauthorized

STATE = parse_desired_state({
    "version": 1,
    "namespaces": {"a": {"topics": {"t": {}}, "credentials": {"AKA": {"secrets": ["ska"], "acl": [
        {"resource": "topic", "pattern": "t", "actions": ["pub"]}]}}}},
})


def _stamp(offset_s: float = 0) -> str:
    return (datetime.now(timezone.utc) + timedelta(seconds=offset_s)).strftime("%Y%m%dT%H%M%SZ")


def _md(dt: str, secret: str = "ska") -> tuple[tuple[str, str], ...]:
    sig = expected_signature(secret, dt).hex()
    return (("x-mq-date-time", dt), ("x-mq-namespace", "a"), ("x-mq-client-id", "c1"),
            ("authorization",
             f"MQv2-HMAC-SHA1 Credential=AKA, SignedHeaders=x-mq-date-time, Signature={sig}"),
            ("trace-bin", b"\x00\x01"))


class _Ctx:
    def __init__(self, md: Any) -> None:
        self.md = md

    def invocation_metadata(self) -> Any:
        return self.md

    def peer(self) -> str:
        return "ipv4:127.0.0.1:5000"


def _runtime() -> Any:
    failures: list[str] = []
    metrics = SimpleNamespace(auth_failure=lambda ns, reason: failures.append(reason))
    return SimpleNamespace(authenticator=Authenticator(STATE), metrics=metrics, failures=failures)


def test_second_call_is_served_from_the_cache_and_acl_still_applies() -> None:
    rt = _runtime()
    md = _md(_stamp())
    first = admit(rt, _Ctx(md), ["a"], method="SendMessage")
    assert admit(rt, _Ctx(md), ["a"], method="SendMessage") is first
    first.principal.require(ResourceKind.TOPIC, "t", Action.PUB)
    for _ in range(2):  # the second time from the remembered decision: the same refusal
        with pytest.raises(AuthError, match="no sub permission") as exc:
            first.principal.require(ResourceKind.TOPIC, "t", Action.SUB)
        assert exc.value.failure is AuthFailure.FORBIDDEN


def test_forged_signature_with_a_remembered_date_is_refused() -> None:
    rt = _runtime()
    dt = _stamp()
    admit(rt, _Ctx(_md(dt)), ["a"], method="SendMessage")
    for _ in range(2):  # refusals are not remembered either
        with pytest.raises(Unauthorized):
            admit(rt, _Ctx(_md(dt, secret="wrong")), ["a"], method="SendMessage")
    assert rt.failures == ["unauthenticated", "unauthenticated"]


def test_remembered_admission_goes_stale(monkeypatch: pytest.MonkeyPatch) -> None:
    rt = _runtime()
    md = _md(_stamp())
    admit(rt, _Ctx(md), ["a"], method="SendMessage")
    later = time.time() + 3 * 3600 + 7 * 60  # 3 h 07 min: no time-zone offset explains it
    monkeypatch.setattr(time, "time", lambda: later)
    with pytest.raises(Unauthorized, match="outside the accepted window"):
        admit(rt, _Ctx(md), ["a"], method="SendMessage")


def test_new_state_starts_empty_and_namespaces_are_part_of_the_key() -> None:
    rt = _runtime()
    md = _md(_stamp())
    first = admit(rt, _Ctx(md), ["a"], method="SendMessage")
    rt.authenticator = Authenticator(STATE)
    assert admit(rt, _Ctx(md), ["a"], method="SendMessage") is not first
    with pytest.raises(Unauthorized, match="namespace mismatch"):
        admit(rt, _Ctx(md), ["b"], method="SendMessage")
