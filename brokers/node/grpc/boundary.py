"""The one boundary where requests are admitted and errors become response ``status``.

Every RPC handler is wrapped by ``unary`` (or handles streams through ``admit`` itself): it
extracts the call's headers, authenticates them against the current desired state, and turns any
``MqError`` / ``AuthError`` raised by the handler into ``Response(status=...)`` with gRPC status OK.
Unexpected exceptions become INTERNAL_SERVER_ERROR and are logged with a traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final, TypeVar

import grpc
from rocketmq.grpc_protocol import definition_pb2 as pb

from brokers.node.auth import AuthError, AuthFailure, Principal, parse_peer, resolve_namespace
from brokers.node.delivery import DeliveryError
from brokers.node.filter import FilterError

from .errors import Forbidden, MqError, Unauthorized
from .logthrottle import LogThrottle
from .runtime import NodeRuntime
from .status import delivery_error_code, status

log = logging.getLogger("brokers.node.grpc")
_refusals = LogThrottle(log)

Resp = TypeVar("Resp")


@dataclass(frozen=True, slots=True)
class Call:
    """What a handler knows about the caller once admitted."""

    principal: Principal
    client_id: str
    peer: str

    @property
    def namespace(self) -> str:
        return self.principal.namespace.name


def headers_of(context: grpc.aio.ServicerContext) -> dict[str, str]:
    md = context.invocation_metadata() or ()
    return {k: v for k, v in md if isinstance(v, str)}


_ADMITTED_MAX: Final = 4096


def admit(
    runtime: NodeRuntime,
    context: grpc.aio.ServicerContext,
    resource_namespaces: Iterable[str],
    *,
    method: str,
    check_freshness: bool = True,
) -> Call:
    """Authenticate the call; raises Unauthorized (never returns an unverified caller).

    A successful admission depends only on the signed headers, the namespaces, the peer and
    the desired state, so it is remembered per Authenticator (one per state version) by those
    values: a client signs once per second, and its other calls in that second only get the
    freshness check again. Refusals are never remembered (each is logged and counted).
    """
    headers = dict(context.invocation_metadata() or ())  # -bin values are bytes: never read
    peer = context.peer() or ""
    authenticator = runtime.authenticator
    date_time = headers.get("x-mq-date-time")
    key = (headers.get("authorization"), date_time, headers.get("x-mq-namespace"),
           headers.get("x-mq-client-id"), peer, tuple(resource_namespaces), check_freshness)
    cached = authenticator.admitted.get(key)
    if cached is not None and (not check_freshness
                               or authenticator.is_fresh(date_time, time.time())):  # type: ignore[arg-type]
        return cached  # type: ignore[no-any-return]
    call = _admit(runtime, headers, peer, key[5], method, check_freshness)
    admitted = authenticator.admitted
    if len(admitted) >= _ADMITTED_MAX:
        admitted.clear()
    admitted[key] = call
    return call


def _admit(
    runtime: NodeRuntime,
    headers: dict[str, str],
    peer: str,
    resource_namespaces: Iterable[str],
    method: str,
    check_freshness: bool,
) -> Call:
    headers = {k: v for k, v in headers.items() if isinstance(v, str)}
    try:
        namespace = resolve_namespace(headers.get("x-mq-namespace"), resource_namespaces)
        principal = runtime.authenticator.authenticate(
            headers, namespace, time.time(), parse_peer(peer), check_freshness=check_freshness
        )
    except AuthError as exc:
        runtime.metrics.auth_failure(headers.get("x-mq-namespace") or "", exc.failure.value)
        # Log who and why, never the authorization header itself.
        ns = headers.get("x-mq-namespace", "")
        _refusals.warning(
            f"ns={ns}", "[ns=%s] refused %s from %s ak=%r: %s",
            ns, method, peer, exc.access_key, exc,
        )
        raise Unauthorized(str(exc)) from None
    client_id = headers.get("x-mq-client-id", "").strip()
    if not client_id:
        # Per-client state (settings, telemetry, receipts, broadcast offsets) is keyed on it.
        raise MqError("x-mq-client-id header is required", pb.Code.CLIENT_ID_REQUIRED)
    return Call(principal, client_id, peer)


def translate(exc: BaseException, method: str) -> pb.Status:
    """Map an exception to a protocol Status (the only place this mapping happens)."""
    if isinstance(exc, MqError):
        return status(exc.code, exc.message)
    code_name = getattr(getattr(exc, "code", None), "value", getattr(exc, "code", None))
    if isinstance(exc, (DeliveryError, FilterError)) and isinstance(code_name, str):
        return status(delivery_error_code(code_name), str(exc))
    if isinstance(exc, AuthError):
        err = Forbidden(str(exc)) if exc.failure is AuthFailure.FORBIDDEN else Unauthorized(str(exc))
        return status(err.code, err.message)
    log.error("internal error in %s", method, exc_info=exc)
    return status(MqError.code, "internal error")


def unary(
    response_cls: Callable[..., Resp], *, raw: bool = False,
) -> Callable[[Callable[..., Awaitable[Resp]]], Callable[..., Awaitable[Resp]]]:
    """Wrap ``async handler(self, request, context)`` so refusals come back in ``status``.

    ``raw``: the handler returns serialized response bytes (its method is registered without a
    response serializer, servicer.RAW_RESPONSES), so refusals are serialized here too.
    """

    def wrap(handler: Callable[..., Awaitable[Resp]]) -> Callable[..., Awaitable[Resp]]:
        async def rpc(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Resp:
            try:
                return await handler(self, request, context)
            except Exception as exc:  # noqa: BLE001 - this is the translation boundary
                if isinstance(exc, AuthError) and exc.failure is AuthFailure.FORBIDDEN:
                    self.runtime.metrics.auth_failure(
                        headers_of(context).get("x-mq-namespace", ""), "forbidden"
                    )
                    ns = headers_of(context).get("x-mq-namespace", "")
                    _refusals.warning(f"ns={ns}", "[ns=%s] forbidden %s: %s",
                                      ns, handler.__name__, exc)
                response = response_cls(status=translate(exc, handler.__name__))
                return response.SerializeToString() if raw else response  # type: ignore[attr-defined,no-any-return]

        rpc.__name__ = handler.__name__
        rpc.__doc__ = handler.__doc__
        return rpc

    return wrap

