"""``python -m brokers.node.relay ...``: one gRPC front-end worker (started by the node)."""

from __future__ import annotations

import sys

from .worker import main

if __name__ == "__main__":
    sys.exit(main())
