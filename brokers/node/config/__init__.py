"""Node configuration: process options and the desired state pushed by the control plane."""

from __future__ import annotations

from .loader import StateHolder, load_state_file
from .node import NodeConfig
from .state import (
    EMPTY_STATE,
    AclRule,
    Action,
    Credential,
    DeliveryMode,
    DesiredState,
    Effect,
    GroupSpec,
    NamespaceSpec,
    NodeSpec,
    Quotas,
    ResourceKind,
    RetryBackoff,
    StateError,
    TopicSpec,
    TopicType,
    parse_desired_state,
)

__all__ = [
    "EMPTY_STATE", "AclRule", "Action", "Credential", "DeliveryMode", "DesiredState", "Effect",
    "GroupSpec", "NamespaceSpec", "NodeConfig", "NodeSpec", "Quotas", "ResourceKind",
    "RetryBackoff", "StateError", "StateHolder", "TopicSpec", "TopicType", "load_state_file",
    "parse_desired_state",
]
