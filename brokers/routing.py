"""Websocket routes for node agents (token-authenticated inside the consumer, no browser origin)."""
from __future__ import annotations

from django.urls import path

from brokers.consumers import NodeAgentConsumer

websocket_urlpatterns: list = [
    path("ws/nodes/", NodeAgentConsumer.as_asgi()),
]
