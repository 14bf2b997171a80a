"""Models of the brokers app, one module per area.

fleet: clusters, nodes, placement, node events (orchestration).
metrics/alerting: their own modules, imported below by their owners.
"""
from brokers.models.fleet import *  # noqa: F401,F403

from brokers.models.metrics import *  # noqa: F401,F403
from brokers.models.alerting import *  # noqa: F401,F403

# Alerting's signal receiver (default rules for new instances); dispatch_uid makes it idempotent.
from brokers import alert_receivers  # noqa: E402,F401
