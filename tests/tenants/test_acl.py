"""tenants.acl.evaluate: deny wins, default deny, patterns, CIDRs."""
from __future__ import annotations

import pytest

from tenants.acl import evaluate, pattern_matches


def rule(pattern: str, actions: list[str], effect: str = "allow", resource_type: str = "topic",
         cidrs: list[str] | None = None) -> dict:
    return {"resource_type": resource_type, "pattern": pattern, "actions": actions, "effect": effect,
            "source_cidrs": cidrs or []}


def test_no_rules_means_denied() -> None:
    assert evaluate([], "topic", "orders", "pub") is False


@pytest.mark.parametrize(("pattern", "name", "expected"), [
    ("orders", "orders", True), ("orders", "orders-eu", False), ("orders-*", "orders-eu", True),
    ("orders-*", "orders", False), ("*", "anything", True),
])
def test_pattern_matching(pattern: str, name: str, expected: bool) -> None:
    assert pattern_matches(pattern, name) is expected
    assert evaluate([rule(pattern, ["pub"])], "topic", name, "pub") is expected


def test_deny_wins_regardless_of_order() -> None:
    allow, deny = rule("orders-*", ["pub", "sub"]), rule("orders-secret", ["pub"], effect="deny")
    for rules in ([allow, deny], [deny, allow]):
        assert evaluate(rules, "topic", "orders-secret", "pub") is False
        assert evaluate(rules, "topic", "orders-secret", "sub") is True
        assert evaluate(rules, "topic", "orders-eu", "pub") is True


def test_action_and_resource_type_must_match() -> None:
    rules = [rule("orders", ["sub"])]
    assert evaluate(rules, "topic", "orders", "pub") is False
    assert evaluate(rules, "group", "orders", "sub") is False
    assert evaluate([rule("billing", ["sub"], resource_type="group")], "group", "billing", "sub") is True


def test_source_cidrs() -> None:
    rules = [rule("*", ["pub"], cidrs=["10.0.0.0/8", "2001:db8::/32"])]
    assert evaluate(rules, "topic", "t", "pub", "10.1.2.3") is True
    assert evaluate(rules, "topic", "t", "pub", "2001:db8::1") is True
    assert evaluate(rules, "topic", "t", "pub", "192.168.1.1") is False
    assert evaluate(rules, "topic", "t", "pub", None) is False  # unknown address never matches a CIDR rule
    assert evaluate(rules, "topic", "t", "pub", "garbage") is False


def test_deny_limited_to_cidr_only_denies_there() -> None:
    rules = [rule("*", ["pub"]), rule("*", ["pub"], effect="deny", cidrs=["203.0.113.0/24"])]
    assert evaluate(rules, "topic", "t", "pub", "203.0.113.9") is False
    assert evaluate(rules, "topic", "t", "pub", "198.51.100.1") is True


def test_model_rows_are_accepted(resources) -> None:
    from tenants.models import AclRule

    rows = list(AclRule.objects.all())
    assert evaluate(rows, "topic", "orders-eu", "pub") is True
    assert evaluate(rows, "topic", "orders-eu", "sub") is False
