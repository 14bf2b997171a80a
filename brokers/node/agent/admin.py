"""The node end of the admin channel (docs/fleet.md, "Admin channel").

The control plane sends ``{"type": "admin.request", "id", "op", "namespace", "args"}`` on the
agent's websocket (authenticated by the node token in ``hello``); the node answers
``{"type": "admin.response", "id", "ok": true, "result": {...}}`` or
``{"type": "admin.response", "id", "ok": false, "error": {"code", "message"}}``.
Each request runs in its own task so a slow query never holds up state pushes.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

log = logging.getLogger("brokers.node.agent.admin")

#: ``handler(op, namespace, args) -> result``; raises an exception with ``code`` and
#: ``message`` attributes (``brokers.node.admin.AdminError``) for a refused request.
AdminHandler = Callable[[str, str, Mapping[str, Any]], Awaitable[dict[str, Any]]]

_tasks: set[asyncio.Task[None]] = set()


class _Sender(Protocol):
    async def send(self, message: str) -> None: ...


async def answer(ws: _Sender, msg: Mapping[str, Any], handler: AdminHandler | None) -> None:
    """Run one request and send its response (errors become ``ok: false``, never raise)."""
    reply: dict[str, Any] = {"type": "admin.response", "id": msg.get("id")}
    try:
        if handler is None:
            raise _Refused("admin_unavailable", "this node has no admin handler")
        result = await handler(str(msg.get("op") or ""), msg.get("namespace") or "",
                               msg.get("args") or {})
        reply |= {"ok": True, "result": result}
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # noqa: BLE001 - every failure is an answer
        code = getattr(exc, "code", None)
        if code is None:
            log.exception("admin op %r failed", msg.get("op"))
            code, message = "internal_error", f"{type(exc).__name__}: {exc}"
        else:
            message = getattr(exc, "message", str(exc))
        reply |= {"ok": False, "error": {"code": str(code), "message": message}}
    try:
        await ws.send(json.dumps(reply))
    except Exception:  # noqa: BLE001 - the connection went away; the control plane times out
        log.warning("admin response %r not sent: connection closed", msg.get("id"))


def dispatch(ws: _Sender, msg: Mapping[str, Any], handler: AdminHandler | None) -> None:
    """Start ``answer`` in its own task (kept referenced until done)."""
    task = asyncio.create_task(answer(ws, msg, handler), name=f"admin-{msg.get('id')}")
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


class _Refused(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message
