"""What a broker node has applied, read from the desired-state file it last accepted.

End-to-end tests wait on this before driving the SDK: each API change is pushed as its own
snapshot, so "applied the latest version" alone can be true just before the next push (for
instance the ACL rule created after the credential) bumps the desired version.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def applied_state(node: Any) -> dict[str, Any] | None:
    """The node's last applied desired state, or None while it is still catching up."""
    if node.applied_version == 0 or node.applied_version < node.desired_version:
        return None
    return json.loads((Path(node.data_dir).parent / "state.json").read_text())


def node_has_applied(node: Any, namespace: str, *, topics: set[str], access_key: str | None = None,
                     acl_rules: int = 0) -> bool:
    """True when the node serves ``topics`` in ``namespace`` and, if given, ``access_key`` with at
    least ``acl_rules`` ACL rules."""
    state = applied_state(node)
    if state is None:
        return False
    ns = state["namespaces"].get(namespace, {})
    if not topics <= set(ns.get("topics", {})):
        return False
    if access_key is not None:
        credential = ns.get("credentials", {}).get(access_key)
        if credential is None or len(credential.get("acl", [])) < acl_rules:
            return False
    return True
