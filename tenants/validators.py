"""Name and address rules shared by models, serializers and services.

Topic and group names follow RocketMQ's own checks (``TopicValidator`` in the broker):
``^[%|a-zA-Z0-9_-]+$``, at most 127 characters, and nothing that collides with the broker's
system namespace. We refuse ``|`` (RocketMQ tolerates it for legacy reasons) because it is
used as a separator in retry topic names.
"""
from __future__ import annotations

import ipaddress
import re
from typing import Final

from django.core.exceptions import ValidationError

RESOURCE_NAME_MAX: Final = 127
_RESOURCE_NAME_RE: Final = re.compile(r"^[%A-Za-z0-9_-]+$")
_SIMPLE_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")

# Prefixes the broker keeps for itself (retry/DLQ topics, system topics, schedule topic...).
RESERVED_PREFIXES: Final = ("rmq_sys_", "RMQ_SYS_", "%RETRY%", "%DLQ%", "%SYS%", "SCHEDULE_TOPIC", "TBW102")
# Built-in system topics and groups of RocketMQ (TopicValidator.SYSTEM_TOPIC_SET, MixAll groups).
SYSTEM_NAMES: Final = frozenset(
    {
        "TBW102",
        "SCHEDULE_TOPIC_XXXX",
        "BenchmarkTest",
        "RMQ_SYS_TRANS_HALF_TOPIC",
        "RMQ_SYS_TRACE_TOPIC",
        "RMQ_SYS_TRANS_OP_HALF_TOPIC",
        "TRANS_CHECK_MAX_TIME_TOPIC",
        "SELF_TEST_TOPIC",
        "OFFSET_MOVED_EVENT",
        "DefaultCluster",
        "DEFAULT_PRODUCER",
        "DEFAULT_CONSUMER",
        "TOOLS_CONSUMER",
        "FILTERSRV_CONSUMER",
        "__MONITOR_CONSUMER",
        "CLIENT_INNER_PRODUCER",
        "SELF_TEST_P_GROUP",
        "SELF_TEST_C_GROUP",
        "CID_ONS-HTTP-PROXY",
        "CID_ONSAPI_PERMISSION",
        "CID_ONSAPI_OWNER",
        "CID_ONSAPI_PULL",
        "CID_RMQ_SYS_",
    }
)


def resource_name_problem(name: str) -> str | None:
    """Why ``name`` is not a valid topic/group name, or ``None`` when it is."""
    if not name:
        return "must not be empty"
    if len(name) > RESOURCE_NAME_MAX:
        return f"must be at most {RESOURCE_NAME_MAX} characters"
    if not _RESOURCE_NAME_RE.match(name):
        return "may contain only letters, digits, '_', '-' and '%'"
    if name in SYSTEM_NAMES:
        return "is a reserved system name"
    for prefix in RESERVED_PREFIXES:
        if name.startswith(prefix):
            return f"must not start with the reserved prefix {prefix!r}"
    return None


def validate_resource_name(name: str) -> None:
    """Django validator for topic and consumer-group names."""
    problem = resource_name_problem(name)
    if problem:
        raise ValidationError(f"Name {problem}.", code="invalid_name")


def validate_simple_name(name: str) -> None:
    """Instance names: a letter/digit, then letters, digits, '_' or '-', at most 64 characters."""
    if not _SIMPLE_NAME_RE.match(name or ""):
        raise ValidationError(
            "Name must start with a letter or digit and contain only letters, digits, '_' and '-' "
            "(at most 64 characters).",
            code="invalid_name",
        )


def validate_cidr(value: str) -> None:
    """An IPv4 or IPv6 network in CIDR form (host bits must be zero), e.g. ``10.0.0.0/8``."""
    try:
        ipaddress.ip_network(value, strict=True)
    except (ValueError, TypeError) as exc:
        raise ValidationError(f"{value!r} is not a valid CIDR network: {exc}", code="invalid_cidr") from exc


def validate_acl_pattern(pattern: str) -> None:
    """An exact resource name, a prefix pattern ending in a single ``*`` (``orders-*``) or ``*``."""
    if pattern == "*":
        return
    body = pattern[:-1] if pattern.endswith("*") else pattern
    if "*" in body:
        raise ValidationError("Only one trailing '*' is allowed in a pattern.", code="invalid_pattern")
    if not body or len(body) > RESOURCE_NAME_MAX or not _RESOURCE_NAME_RE.match(body):
        raise ValidationError(
            "Pattern must be a resource name or a prefix followed by '*'.", code="invalid_pattern"
        )
