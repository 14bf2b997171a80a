"""RocketMQ-compatible name rules and CIDR/pattern validation."""
from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from tenants.validators import resource_name_problem, validate_acl_pattern, validate_cidr


@pytest.mark.parametrize("name", ["orders", "Orders_2-eu", "a", "%weird%", "x" * 127])
def test_valid_names(name: str) -> None:
    assert resource_name_problem(name) is None


@pytest.mark.parametrize(("name", "reason"), [
    ("", "empty"), ("x" * 128, "127"), ("with space", "letters"), ("dot.name", "letters"), ("pipe|x", "letters"),
    ("rmq_sys_x", "reserved"), ("RMQ_SYS_TRACE", "reserved"), ("%RETRY%grp", "reserved"), ("%DLQ%grp", "reserved"),
    ("%SYS%x", "reserved"), ("SCHEDULE_TOPIC_XXXX", "reserved"), ("TBW102", "reserved"), ("DEFAULT_CONSUMER", "reserved"),
])
def test_invalid_names(name: str, reason: str) -> None:
    problem = resource_name_problem(name)
    assert problem is not None and reason in problem


@pytest.mark.parametrize("cidr", ["10.0.0.0/8", "192.168.1.1/32", "::/0", "2001:db8::/32"])
def test_valid_cidrs(cidr: str) -> None:
    validate_cidr(cidr)


@pytest.mark.parametrize("cidr", ["10.0.0.1/8", "300.0.0.0/8", "nonsense", "10.0.0.0/33"])
def test_invalid_cidrs(cidr: str) -> None:
    with pytest.raises(ValidationError):
        validate_cidr(cidr)


@pytest.mark.parametrize("pattern", ["*", "orders", "orders-*"])
def test_valid_patterns(pattern: str) -> None:
    validate_acl_pattern(pattern)


@pytest.mark.parametrize("pattern", ["", "**", "or*ders", "a b*", "*orders"])
def test_invalid_patterns(pattern: str) -> None:
    with pytest.raises(ValidationError):
        validate_acl_pattern(pattern)
