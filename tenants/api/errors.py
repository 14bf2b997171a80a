"""The single exception handler of the API: every error answers

    {"error": {"code": "<machine code>", "message": "<human text>", "details": {...}}}

Validation errors list each problem in ``details.fields`` as ``{"field", "code", "reason"}``
(nested fields joined with dots, list items by index, ``non_field_errors`` for the object).
"""
from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import DataError, IntegrityError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.serializers import as_serializer_error

from tenants.errors import ApplicationError, ErrorCode

logger = logging.getLogger(__name__)

_DRF_CODES: dict[type[exceptions.APIException], ErrorCode] = {
    exceptions.ParseError: ErrorCode.PARSE_ERROR,
    exceptions.NotAuthenticated: ErrorCode.NOT_AUTHENTICATED,
    exceptions.AuthenticationFailed: ErrorCode.AUTHENTICATION_FAILED,
    exceptions.PermissionDenied: ErrorCode.PERMISSION_DENIED,
    exceptions.NotFound: ErrorCode.NOT_FOUND,
    exceptions.MethodNotAllowed: ErrorCode.METHOD_NOT_ALLOWED,
    exceptions.NotAcceptable: ErrorCode.NOT_ACCEPTABLE,
    exceptions.UnsupportedMediaType: ErrorCode.UNSUPPORTED_MEDIA_TYPE,
    exceptions.Throttled: ErrorCode.THROTTLED,
}


def error_body(code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": str(code), "message": message, "details": details or {}}}


def _flatten(detail: Any, prefix: str = "") -> list[dict[str, str]]:
    """DRF's nested error detail -> ``[{"field", "code", "reason"}]``."""
    items: list[dict[str, str]] = []
    if isinstance(detail, dict):
        for key, value in detail.items():
            items += _flatten(value, f"{prefix}.{key}" if prefix else str(key))
    elif isinstance(detail, list):
        if all(isinstance(v, exceptions.ErrorDetail) or isinstance(v, str) for v in detail):
            for value in detail:
                items.append({"field": prefix or "non_field_errors", "code": getattr(value, "code", "invalid"),
                              "reason": str(value)})
        else:
            for index, value in enumerate(detail):
                if value:
                    items += _flatten(value, f"{prefix}.{index}" if prefix else str(index))
    else:
        items.append({"field": prefix or "non_field_errors", "code": getattr(detail, "code", "invalid"),
                      "reason": str(detail)})
    return items


def _validation_response(detail: Any) -> Response:
    fields = _flatten(detail)
    message = "; ".join(f"{f['field']}: {f['reason']}" for f in fields[:5]) or "Invalid input."
    return Response(error_body(ErrorCode.VALIDATION_ERROR, message, {"fields": fields}), status=status.HTTP_400_BAD_REQUEST)


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    """DRF ``EXCEPTION_HANDLER``: application errors, DRF and Django errors -> one shape."""
    if isinstance(exc, ApplicationError):
        return Response(error_body(exc.code, exc.message, exc.details), status=exc.status)
    if isinstance(exc, DjangoValidationError):
        return _validation_response(as_serializer_error(exc))
    if isinstance(exc, exceptions.ValidationError):
        return _validation_response(exc.detail)
    if isinstance(exc, (DataError, OverflowError)):
        # e.g. an id beyond the database's integer range in a path, filter or body (PostgreSQL
        # raises DataError; SQLite's driver raises OverflowError before the query runs).
        return Response(error_body(ErrorCode.VALIDATION_ERROR, "A value is out of range for the database."),
                        status=status.HTTP_400_BAD_REQUEST)
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, IntegrityError):
        # A concurrent request won a uniqueness race the service had checked for.
        logger.info("integrity error turned into 409: %s", type(exc).__name__)
        return Response(error_body(ErrorCode.CONFLICT, "The change conflicts with the current state; retry."),
                        status=status.HTTP_409_CONFLICT)
    if isinstance(exc, exceptions.APIException):
        code = next((c for cls, c in _DRF_CODES.items() if isinstance(exc, cls)), None) or str(exc.default_code)
        details: dict[str, Any] = {}
        headers: dict[str, str] = {}
        if isinstance(exc, exceptions.Throttled) and exc.wait is not None:
            details["retry_after_seconds"] = int(exc.wait)
            headers["Retry-After"] = str(int(exc.wait))
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header  # type: ignore[attr-defined]
        message = str(exc.detail) if not isinstance(exc.detail, (list, dict)) else str(exc.default_detail)
        return Response(error_body(code, message, details), status=exc.status_code, headers=headers)
    return None
