"""Websocket routes of every app, composed in one list (see mqplatform.asgi)."""
from __future__ import annotations

from brokers.routing import websocket_urlpatterns as broker_websockets
from console.routing import websocket_urlpatterns as console_websockets

websocket_urlpatterns = [*broker_websockets, *console_websockets]
