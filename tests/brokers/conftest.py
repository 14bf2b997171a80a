"""Fleet fixtures: node data under tmp_path, a tenant instance with one of everything."""
from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from brokers.drivers.local import LocalProcessDriver
from brokers.models import BrokerNode


@pytest.fixture
def node_root(settings: Any, tmp_path: Path) -> Path:
    settings.MQ_NODE_ROOT = str(tmp_path / "nodes")
    return tmp_path / "nodes"


@pytest.fixture
def stop_nodes(node_root: Path) -> Iterator[None]:
    """Stop every node process the test started (by the pid recorded on its row)."""
    yield
    driver = LocalProcessDriver(node_root)
    for node in BrokerNode.objects.exclude(pid=None):
        driver.stop(node, grace_s=10)
