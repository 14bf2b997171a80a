"""ACL evaluation, the same rule the broker nodes enforce (docs/tenancy.md, "ACL evaluation").

1. Only rules whose resource type equals the request's, whose pattern matches the name (exact,
   ``prefix*`` or ``*``), whose actions contain the action, and whose source CIDRs contain the
   client address (no CIDRs = any address) apply. A rule restricted to CIDRs never applies to a
   request whose address is unknown.
2. If any applicable rule denies -> denied (deny wins, whatever the order of the rules).
3. Else if any applicable rule allows -> allowed.
4. Else denied (default deny: a credential without rules can do nothing).
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Mapping
from typing import Any


def _field(rule: Any, name: str) -> Any:
    return rule[name] if isinstance(rule, Mapping) else getattr(rule, name)


def pattern_matches(pattern: str, name: str) -> bool:
    """``*`` matches everything, ``orders-*`` every name starting with ``orders-``, else exact."""
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return pattern == name


def _source_matches(cidrs: Iterable[str], source_ip: str | None) -> bool:
    cidrs = list(cidrs or [])
    if not cidrs:
        return True
    if not source_ip:
        return False
    try:
        address = ipaddress.ip_address(source_ip)
    except ValueError:
        return False
    for cidr in cidrs:
        network = ipaddress.ip_network(cidr, strict=False)
        if address.version == network.version and address in network:
            return True
    return False


def rule_applies(rule: Any, resource_type: str, name: str, action: str, source_ip: str | None) -> bool:
    """Whether one rule (model instance or mapping) applies to the request."""
    return (
        _field(rule, "resource_type") == resource_type
        and action in _field(rule, "actions")
        and pattern_matches(_field(rule, "pattern"), name)
        and _source_matches(_field(rule, "source_cidrs"), source_ip)
    )


def evaluate(rules: Iterable[Any], resource_type: str, name: str, action: str, source_ip: str | None = None) -> bool:
    """Decide a request: deny wins, then allow, default deny. ``rules`` are :class:`AclRule`
    rows or mappings with ``resource_type``, ``pattern``, ``actions``, ``effect``, ``source_cidrs``."""
    allowed = False
    for rule in rules:
        if not rule_applies(rule, resource_type, name, action, source_ip):
            continue
        if _field(rule, "effect") == "deny":
            return False
        allowed = True
    return allowed
