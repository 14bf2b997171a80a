"""The RocketMQ 5.x gRPC endpoint (``apache.rocketmq.v2.MessagingService``) of a broker node.

``codec`` holds the pure StoredMessage <-> protocol Message conversions other layers reuse.
"""

from __future__ import annotations
