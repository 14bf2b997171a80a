"""The desired state of one broker node: typed, validated, immutable.

The control plane owns this document (format in docs/desired-state.md); the node reads it from a
file today and will receive the same JSON over its agent websocket later. ``parse_desired_state``
turns the decoded JSON into frozen dataclasses or raises ``StateError`` naming the offending path,
so a bad document never replaces the last good one.

Secrets are part of this state; ``Credential.__repr__`` hides them so that logging a state object
cannot leak them.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

MiB: Final = 1024 * 1024

#: Names follow the client's own check (``^[%a-zA-Z0-9_-]+$``) minus ``%`` (our separator).
_NAME_RE: Final = re.compile(r"^[a-zA-Z0-9_-]{1,127}$")
_NAMESPACE_RE: Final = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


class StateError(ValueError):
    """The document is not a valid desired state; ``path`` points at the bad field."""

    def __init__(self, path: str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = path
        self.problem = problem


class TopicType(enum.Enum):
    NORMAL = "NORMAL"
    FIFO = "FIFO"
    DELAY = "DELAY"
    TRANSACTION = "TRANSACTION"
    MIXED = "MIXED"


class DeliveryMode(enum.Enum):
    CLUSTERING = "clustering"
    BROADCAST = "broadcast"


class ResourceKind(enum.Enum):
    TOPIC = "topic"
    GROUP = "group"


class Action(enum.Enum):
    PUB = "pub"
    SUB = "sub"


class Effect(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"


@dataclass(frozen=True, slots=True)
class TopicSpec:
    name: str
    type: TopicType = TopicType.NORMAL
    queues: int = 8
    retention_hours: float = 72.0


@dataclass(frozen=True, slots=True)
class RetryBackoff:
    """Consumer retry delays. ``customized`` uses ``next_s``; ``exponential`` the other fields."""

    kind: str = "customized"
    next_s: tuple[float, ...] = (
        1, 5, 10, 30, 60, 120, 180, 240, 300, 360, 420, 480, 540, 600, 1200, 1800, 3600, 7200,
    )
    initial_s: float = 1.0
    max_s: float = 7200.0
    multiplier: float = 2.0


@dataclass(frozen=True, slots=True)
class GroupSpec:
    name: str
    delivery: DeliveryMode = DeliveryMode.CLUSTERING
    fifo: bool = False
    max_delivery_attempts: int = 16
    retry_backoff: RetryBackoff = field(default_factory=RetryBackoff)


@dataclass(frozen=True, slots=True)
class AclRule:
    resource: ResourceKind
    pattern: str
    actions: frozenset[Action]
    effect: Effect = Effect.ALLOW
    cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()


@dataclass(frozen=True, slots=True)
class Credential:
    access_key: str
    secrets: tuple[str, ...] = field(repr=False)
    enabled: bool = True
    acl: tuple[AclRule, ...] = ()


@dataclass(frozen=True, slots=True)
class Quotas:
    """Per-namespace limits; ``None`` means unlimited."""

    send_tps: float | None = None
    receive_tps: float | None = None
    max_message_bytes: int = 4 * MiB
    storage_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class NamespaceSpec:
    name: str
    topics: Mapping[str, TopicSpec]
    groups: Mapping[str, GroupSpec]
    credentials: Mapping[str, Credential]
    quotas: Quotas = field(default_factory=Quotas)


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str = "node-0"
    role: str = "master"
    advertised_host: str | None = None
    advertised_port: int | None = None


@dataclass(frozen=True, slots=True)
class DesiredState:
    version: int
    node: NodeSpec
    namespaces: Mapping[str, NamespaceSpec]

    def find_credential(self, access_key: str) -> tuple[NamespaceSpec, Credential] | None:
        """The namespace owning ``access_key`` and the credential, if any namespace has it."""
        for ns in self.namespaces.values():
            cred = ns.credentials.get(access_key)
            if cred is not None:
                return ns, cred
        return None


EMPTY_STATE: Final = DesiredState(version=0, node=NodeSpec(), namespaces={})


# --------------------------------------------------------------------------- parsing helpers


def _obj(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise StateError(path, "must be an object")
    return value


def _known(obj: Mapping[str, Any], path: str, allowed: set[str]) -> None:
    unknown = set(obj) - allowed
    if unknown:
        raise StateError(path, f"unknown field(s) {sorted(unknown)}")


def _int(value: Any, path: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise StateError(path, f"must be an integer in [{lo}, {hi}]")
    return value


def _num(value: Any, path: str, lo: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise StateError(path, "must be a number")
    if not math.isfinite(value) or value < lo:
        raise StateError(path, f"must be a finite number >= {lo}")
    return float(value)


def _opt_num(value: Any, path: str) -> float | None:
    return None if value is None else _num(value, path, 0)


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise StateError(path, "must be true or false")
    return value


def _enum(cls: type[enum.Enum], value: Any, path: str) -> Any:
    try:
        return cls(value)
    except ValueError:
        raise StateError(path, f"must be one of {[e.value for e in cls]}") from None


def _name(value: str, path: str, regex: re.Pattern[str] = _NAME_RE) -> str:
    if not regex.match(value):
        raise StateError(path, f"invalid name {value!r} (letters, digits, '_' and '-')")
    return value


# --------------------------------------------------------------------------- sections


def _parse_topic(name: str, raw: Any, path: str) -> TopicSpec:
    obj = _obj(raw, path)
    _known(obj, path, {"type", "queues", "retention_hours"})
    return TopicSpec(
        name=_name(name, path),
        type=_enum(TopicType, obj.get("type", "NORMAL"), f"{path}.type"),
        queues=_int(obj.get("queues", 8), f"{path}.queues", 1, 1024),
        retention_hours=_num(obj.get("retention_hours", 72), f"{path}.retention_hours", 0),
    )


def _parse_backoff(raw: Any, path: str) -> RetryBackoff:
    if raw is None:
        return RetryBackoff()
    obj = _obj(raw, path)
    _known(obj, path, {"kind", "next_s", "initial_s", "max_s", "multiplier"})
    kind = obj.get("kind", "customized")
    if kind not in ("customized", "exponential"):
        raise StateError(f"{path}.kind", "must be 'customized' or 'exponential'")
    default = RetryBackoff()
    next_raw = obj.get("next_s", list(default.next_s))
    if not isinstance(next_raw, list) or not next_raw:
        raise StateError(f"{path}.next_s", "must be a non-empty list of seconds")
    return RetryBackoff(
        kind=kind,
        next_s=tuple(_num(v, f"{path}.next_s[{i}]", 0) for i, v in enumerate(next_raw)),
        initial_s=_num(obj.get("initial_s", default.initial_s), f"{path}.initial_s", 0),
        max_s=_num(obj.get("max_s", default.max_s), f"{path}.max_s", 0),
        multiplier=_num(obj.get("multiplier", default.multiplier), f"{path}.multiplier", 1),
    )


def _parse_group(name: str, raw: Any, path: str) -> GroupSpec:
    obj = _obj(raw, path)
    _known(obj, path, {"delivery", "fifo", "max_delivery_attempts", "retry_backoff"})
    return GroupSpec(
        name=_name(name, path),
        delivery=_enum(DeliveryMode, obj.get("delivery", "clustering"), f"{path}.delivery"),
        fifo=_bool(obj.get("fifo", False), f"{path}.fifo"),
        max_delivery_attempts=_int(
            obj.get("max_delivery_attempts", 16), f"{path}.max_delivery_attempts", 1, 1000
        ),
        retry_backoff=_parse_backoff(obj.get("retry_backoff"), f"{path}.retry_backoff"),
    )


def _parse_rule(raw: Any, path: str) -> AclRule:
    obj = _obj(raw, path)
    _known(obj, path, {"resource", "pattern", "actions", "effect", "cidrs"})
    pattern = obj.get("pattern")
    if not isinstance(pattern, str) or not pattern:
        raise StateError(f"{path}.pattern", "must be a name or a prefix ending in '*'")
    if "*" in pattern[:-1]:
        raise StateError(f"{path}.pattern", "'*' is only allowed at the end")
    actions = obj.get("actions")
    if not isinstance(actions, list) or not actions:
        raise StateError(f"{path}.actions", "must be a non-empty list of 'pub'/'sub'")
    cidrs_raw = obj.get("cidrs", [])
    if not isinstance(cidrs_raw, list):
        raise StateError(f"{path}.cidrs", "must be a list of CIDR strings")
    cidrs = []
    for i, c in enumerate(cidrs_raw):
        try:
            cidrs.append(ipaddress.ip_network(c, strict=False))
        except (ValueError, TypeError):
            raise StateError(f"{path}.cidrs[{i}]", f"invalid CIDR {c!r}") from None
    return AclRule(
        resource=_enum(ResourceKind, obj.get("resource"), f"{path}.resource"),
        pattern=pattern,
        actions=frozenset(_enum(Action, a, f"{path}.actions") for a in actions),
        effect=_enum(Effect, obj.get("effect", "allow"), f"{path}.effect"),
        cidrs=tuple(cidrs),
    )


def _parse_credential(ak: str, raw: Any, path: str) -> Credential:
    obj = _obj(raw, path)
    _known(obj, path, {"secrets", "enabled", "acl"})
    if not ak or any(c in ak for c in " ,=/"):
        raise StateError(path, "access key must be non-empty without spaces, ',', '=' or '/'")
    secrets = obj.get("secrets")
    if (
        not isinstance(secrets, list)
        or not 1 <= len(secrets) <= 2
        or not all(isinstance(s, str) and s for s in secrets)
    ):
        # Never echo the value: it is a secret.
        raise StateError(f"{path}.secrets", "must list 1 or 2 non-empty secret keys")
    acl = obj.get("acl", [])
    if not isinstance(acl, list):
        raise StateError(f"{path}.acl", "must be a list of rules")
    return Credential(
        access_key=ak,
        secrets=tuple(secrets),
        enabled=_bool(obj.get("enabled", True), f"{path}.enabled"),
        acl=tuple(_parse_rule(r, f"{path}.acl[{i}]") for i, r in enumerate(acl)),
    )


def _parse_quotas(raw: Any, path: str) -> Quotas:
    obj = _obj(raw if raw is not None else {}, path)
    _known(obj, path, {"send_tps", "receive_tps", "max_message_bytes", "storage_bytes"})
    storage = obj.get("storage_bytes")
    return Quotas(
        send_tps=_opt_num(obj.get("send_tps"), f"{path}.send_tps"),
        receive_tps=_opt_num(obj.get("receive_tps"), f"{path}.receive_tps"),
        max_message_bytes=_int(
            obj.get("max_message_bytes", 4 * MiB), f"{path}.max_message_bytes", 1, 64 * MiB
        ),
        storage_bytes=None if storage is None else _int(storage, f"{path}.storage_bytes", 0, 2**62),
    )


def _parse_namespace(name: str, raw: Any, path: str) -> NamespaceSpec:
    obj = _obj(raw, path)
    _known(obj, path, {"topics", "groups", "credentials", "quotas"})
    topics = _obj(obj.get("topics", {}), f"{path}.topics")
    groups = _obj(obj.get("groups", {}), f"{path}.groups")
    creds = _obj(obj.get("credentials", {}), f"{path}.credentials")
    return NamespaceSpec(
        name=_name(name, path, _NAMESPACE_RE),
        topics={t: _parse_topic(t, v, f"{path}.topics.{t}") for t, v in topics.items()},
        groups={g: _parse_group(g, v, f"{path}.groups.{g}") for g, v in groups.items()},
        credentials={
            ak: _parse_credential(ak, v, f"{path}.credentials.{ak}") for ak, v in creds.items()
        },
        quotas=_parse_quotas(obj.get("quotas"), f"{path}.quotas"),
    )


def _parse_node(raw: Any, path: str) -> NodeSpec:
    obj = _obj(raw if raw is not None else {}, path)
    _known(obj, path, {"name", "role", "advertised_host", "advertised_port"})
    role = obj.get("role", "master")
    if role not in ("master", "slave"):
        raise StateError(f"{path}.role", "must be 'master' or 'slave'")
    host = obj.get("advertised_host")
    if host is not None:
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise StateError(f"{path}.advertised_host", "must be an IPv4 address") from None
    port = obj.get("advertised_port")
    return NodeSpec(
        name=str(obj.get("name", "node-0")),
        role=role,
        advertised_host=host,
        advertised_port=None if port is None else _int(port, f"{path}.advertised_port", 1, 65535),
    )


def parse_desired_state(doc: Any) -> DesiredState:
    """Validate a decoded JSON document and build the immutable state, or raise StateError."""
    obj = _obj(doc, "$")
    _known(obj, "$", {"version", "node", "namespaces"})
    version = _int(obj.get("version"), "$.version", 0, 2**62)
    namespaces = _obj(obj.get("namespaces", {}), "$.namespaces")
    parsed = {n: _parse_namespace(n, v, f"$.namespaces.{n}") for n, v in namespaces.items()}
    seen: dict[str, str] = {}
    for ns in parsed.values():
        for ak in ns.credentials:
            if ak in seen:
                # An AK resolves to exactly one tenant; a duplicate would make that ambiguous.
                raise StateError(
                    f"$.namespaces.{ns.name}.credentials.{ak}",
                    f"access key already used by namespace {seen[ak]!r}",
                )
            seen[ak] = ns.name
    return DesiredState(version=version, node=_parse_node(obj.get("node"), "$.node"),
                        namespaces=parsed)
