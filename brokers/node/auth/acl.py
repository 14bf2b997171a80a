"""ACL evaluation: pure function of (rules, resource, action, source address).

Semantics: a rule matches when its resource kind equals the requested one, its pattern matches
the bare name (exact, or prefix when it ends in ``*``; a lone ``*`` matches all), the action is
listed, and the source address lies in one of its CIDRs (no CIDRs = any source). Any matching
deny rule wins; otherwise a matching allow rule grants; no match denies (least privilege).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from brokers.node.config.state import AclRule, Action, Effect, ResourceKind

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def pattern_matches(pattern: str, name: str) -> bool:
    if pattern.endswith("*"):
        return name.startswith(pattern[:-1])
    return pattern == name


def _rule_matches(
    rule: AclRule, kind: ResourceKind, name: str, action: Action, source: IpAddress | None
) -> bool:
    if rule.resource is not kind or action not in rule.actions:
        return False
    if not pattern_matches(rule.pattern, name):
        return False
    if rule.cidrs:
        return source is not None and any(
            source.version == net.version and source in net for net in rule.cidrs
        )
    return True


def is_allowed(
    rules: Iterable[AclRule],
    kind: ResourceKind,
    name: str,
    action: Action,
    source: IpAddress | None,
) -> bool:
    """Whether the rules grant ``action`` on the resource from ``source``; deny wins."""
    allowed = False
    for rule in rules:
        if _rule_matches(rule, kind, name, action, source):
            if rule.effect is Effect.DENY:
                return False
            allowed = True
    return allowed


@functools.lru_cache(maxsize=4096)
def parse_peer(peer: str) -> IpAddress | None:
    """The address part of a grpc peer string (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``)."""
    scheme, _, rest = peer.partition(":")
    if scheme == "ipv4":
        host = rest.rsplit(":", 1)[0]
    elif scheme == "ipv6":
        host = rest.rsplit(":", 1)[0].strip("[]")
        host = host.replace("%5B", "").replace("%5D", "")
    else:
        return None
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        return None
