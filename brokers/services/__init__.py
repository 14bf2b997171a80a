"""Write-side logic of the broker fleet (see style guide §10): placement, nodes, events,
provisioning. Tasks and consumers call these; nothing here talks to a socket."""
from brokers.services.fleet import (  # noqa: F401
    SHARED_CLUSTER_NAME,
    cluster_ensure_node,
    instance_place,
    node_authenticate,
    node_create,
    node_event,
    node_issue_token,
    node_next_state_version,
    node_record_applied,
    node_record_heartbeat,
    shared_cluster_ensure_local,
)
