"""NodeMetrics sums the hot-path counts in plain integers and adds them to the Prometheus
counters when the registry is read: every read must show exactly what was counted."""

from __future__ import annotations

from prometheus_client import generate_latest

from brokers.node.metrics import NodeMetrics


def _value(metrics: NodeMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def test_counts_show_on_every_read_without_double_counting() -> None:
    m = NodeMetrics()
    m.sent("ns1", "orders", 3, 300)
    m.sent("ns1", "orders", 1, 10)
    m.delivered("ns1", "orders", 2, 200)
    assert _value(m, "mq_messages_in_total", namespace="ns1", topic="orders") == 4
    assert _value(m, "mq_bytes_in_total", namespace="ns1", topic="orders") == 310
    # a second read adds nothing more
    assert _value(m, "mq_messages_in_total", namespace="ns1", topic="orders") == 4
    m.sent("ns1", "orders", 2, 20)
    m.sent("ns2", "t", 1, 1)
    text = generate_latest(m.registry).decode()
    assert 'mq_messages_in_total{namespace="ns1",topic="orders"} 6.0' in text
    assert 'mq_bytes_in_total{namespace="ns1",topic="orders"} 330.0' in text
    assert 'mq_messages_in_total{namespace="ns2",topic="t"} 1.0' in text
    assert 'mq_messages_out_total{namespace="ns1",topic="orders"} 2.0' in text
    assert 'mq_bytes_out_total{namespace="ns1",topic="orders"} 200.0' in text
    assert "mq_messages_in_created" in text  # still real Prometheus counters
