"""Property-based fuzzing of every API operation against the served OpenAPI schema.

Each operation gets a handful of generated requests (authenticated with a real API token of an
organisation owner whose organisation holds one object of each type); no answer may be a 5xx.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from hypothesis import HealthCheck, Phase, settings
from schemathesis.checks import not_a_server_error

pytestmark = pytest.mark.django_db


# Schema generation touches no database, so loading at collection time is fine.
schema = schemathesis.openapi.from_wsgi("/api/schema/", WSGIHandler())


@contextmanager
def connection_kept_open() -> Iterator[None]:
    """Like Django's test client: stop the WSGI handler from closing the test's DB connection
    around a request (that would abort the wrapping test transaction on PostgreSQL).

    Scoped to one call on purpose: Django's own test client, used by the fixtures, reconnects
    ``close_old_connections`` after each of its requests, so a disconnect made earlier in a
    fixture does not survive until the fuzzed request.
    """
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@schema.parametrize()
@settings(max_examples=4, deadline=None, phases=[Phase.explicit, Phase.generate],
          suppress_health_check=list(HealthCheck), database=None)
def test_no_server_errors(case: Any, tenant: Any, resources: Any) -> None:
    headers = {"Authorization": f"Token {tenant.owner.raw_token}", "X-Organisation": str(tenant.organisation.pk)}
    # Let generated values replace ours only where the operation defines them.
    merged = {**headers, **(case.headers or {})}
    if not str(merged.get("Authorization", "")).startswith("Token "):
        merged["Authorization"] = headers["Authorization"]
    with connection_kept_open():
        response = case.call(headers=merged)
    case.validate_response(response, checks=[not_a_server_error])
    assert response.status_code < 500
