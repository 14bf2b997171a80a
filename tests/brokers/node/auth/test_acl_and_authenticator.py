"""ACL evaluation (deny wins, prefixes, CIDRs) and tenant isolation in the authenticator."""

from __future__ import annotations

import ipaddress

import pytest

from brokers.node.auth import AuthError, AuthFailure, Authenticator, is_allowed, resolve_namespace
from brokers.node.auth.signature import expected_signature
from brokers.node.config import Action, ResourceKind, parse_desired_state

STATE = parse_desired_state({
    "version": 1,
    "namespaces": {
        "a": {
            "topics": {"orders": {}},
            "credentials": {"AKA": {"secrets": ["ska"], "acl": [
                {"resource": "topic", "pattern": "ord*", "actions": ["pub", "sub"]},
                {"resource": "topic", "pattern": "orders-secret", "actions": ["sub"],
                 "effect": "deny"},
                {"resource": "group", "pattern": "g1", "actions": ["sub"],
                 "cidrs": ["10.0.0.0/8"]},
            ]}},
        },
        "b": {"topics": {"orders": {}}, "credentials": {"AKB": {"secrets": ["skb"]},
                                                        "OFF": {"secrets": ["x"],
                                                                "enabled": False}}},
    },
})
RULES = STATE.namespaces["a"].credentials["AKA"].acl
LOCAL = ipaddress.ip_address("127.0.0.1")
DT = "20261121T141445Z"
NOW = 1795270485.0  # 2026-11-21T14:14:45Z


def _headers(ak: str, sk: str) -> dict[str, str]:
    sig = expected_signature(sk, DT).hex()
    return {"authorization": f"MQv2-HMAC-SHA1 Credential={ak}, SignedHeaders=x-mq-date-time, "
                             f"Signature={sig}", "x-mq-date-time": DT}


def test_prefix_allow_and_deny_wins() -> None:
    assert is_allowed(RULES, ResourceKind.TOPIC, "orders", Action.PUB, LOCAL)
    assert is_allowed(RULES, ResourceKind.TOPIC, "orders-secret", Action.PUB, LOCAL)
    assert not is_allowed(RULES, ResourceKind.TOPIC, "orders-secret", Action.SUB, LOCAL)
    assert not is_allowed(RULES, ResourceKind.TOPIC, "payments", Action.PUB, LOCAL)


def test_cidr_restricts_source() -> None:
    assert not is_allowed(RULES, ResourceKind.GROUP, "g1", Action.SUB, LOCAL)
    assert is_allowed(RULES, ResourceKind.GROUP, "g1", Action.SUB,
                      ipaddress.ip_address("10.1.2.3"))


def test_credential_only_reaches_its_namespace() -> None:
    auth = Authenticator(STATE)
    principal = auth.authenticate(_headers("AKA", "ska"), "a", NOW, LOCAL)
    assert principal.namespace.name == "a"
    with pytest.raises(AuthError) as info:
        auth.authenticate(_headers("AKA", "ska"), "b", NOW, LOCAL)
    assert info.value.failure is AuthFailure.UNAUTHENTICATED


@pytest.mark.parametrize("headers", [
    {}, {"authorization": "MQv2-HMAC-SHA1 Credential=AKA, Signature=00"},
    _headers("AKA", "wrong"), _headers("NOPE", "ska"), _headers("OFF", "x"),
])
def test_unsigned_forged_unknown_disabled_are_unauthenticated(headers: dict[str, str]) -> None:
    with pytest.raises(AuthError) as info:
        Authenticator(STATE).authenticate(headers, "a", NOW, LOCAL)
    assert info.value.failure is AuthFailure.UNAUTHENTICATED
    assert "ska" not in str(info.value)


def test_forbidden_carries_the_reason() -> None:
    principal = Authenticator(STATE).authenticate(_headers("AKA", "ska"), "a", NOW, LOCAL)
    with pytest.raises(AuthError) as info:
        principal.require(ResourceKind.TOPIC, "payments", Action.PUB)
    assert info.value.failure is AuthFailure.FORBIDDEN
    assert "payments" in str(info.value)


def test_namespace_resolution() -> None:
    assert resolve_namespace("a", ["a", ""]) == "a"
    assert resolve_namespace(None, ["b"]) == "b"
    assert resolve_namespace("", []) == ""
    with pytest.raises(AuthError):
        resolve_namespace("a", ["b"])
