"""Rate limits for the console's login, sign-up and password-reset forms. They share the rates
(and the cache) of the REST API's throttles (``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]``), so
a browser is limited exactly like a program."""
from __future__ import annotations

import time

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def _rate(scope: str) -> tuple[int, int]:
    rate = settings.REST_FRAMEWORK.get("DEFAULT_THROTTLE_RATES", {}).get(scope) or "10/min"
    count, period = rate.split("/")
    return int(count), _PERIODS[period[0]]


def allow(request: HttpRequest, scope: str) -> bool:
    """Count one attempt for the client address; False once the scope's rate is used up."""
    limit, period = _rate(scope)
    window = int(time.time() // period)
    key = f"console-rl:{scope}:{request.META.get('REMOTE_ADDR', '')}:{window}"
    cache.add(key, 0, timeout=period)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, timeout=period)
        count = 1
    return count <= limit
