"""Application errors: a stable machine code, a human message, structured details and an HTTP
status. Services raise these; ``tenants.api.errors.exception_handler`` renders them (and every
other API error) as ``{"error": {"code", "message", "details"}}``."""
from __future__ import annotations

from enum import StrEnum
from typing import Any, ClassVar


class ErrorCode(StrEnum):
    """Every machine code the API can answer with (documented in docs/api.md)."""

    VALIDATION_ERROR = "validation_error"
    PARSE_ERROR = "parse_error"
    NOT_AUTHENTICATED = "not_authenticated"
    AUTHENTICATION_FAILED = "authentication_failed"
    PERMISSION_DENIED = "permission_denied"
    NOT_FOUND = "not_found"
    METHOD_NOT_ALLOWED = "method_not_allowed"
    NOT_ACCEPTABLE = "not_acceptable"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    THROTTLED = "throttled"
    CONFLICT = "conflict"
    ALREADY_EXISTS = "already_exists"
    QUOTA_EXCEEDED = "quota_exceeded"
    ORGANISATION_REQUIRED = "organisation_required"
    EMAIL_NOT_CONFIRMED = "email_not_confirmed"
    INVALID_CREDENTIALS = "invalid_credentials"
    INVALID_TOKEN = "invalid_token"
    EMAIL_TAKEN = "email_taken"
    LAST_OWNER = "last_owner"
    INSTANCE_DELETING = "instance_deleting"
    SECRET_LIMIT = "secret_limit"
    LAST_SECRET = "last_secret"
    CREDENTIAL_REVOKED = "credential_revoked"
    PLAN_NOT_SELF_SERVICE = "plan_not_self_service"
    ORGANISATION_NOT_EMPTY = "organisation_not_empty"
    SERVER_ERROR = "server_error"


class ApplicationError(Exception):
    """Base of business errors. Subclasses fix ``code`` and ``status``; callers add details."""

    code: ClassVar[ErrorCode] = ErrorCode.CONFLICT
    status: ClassVar[int] = 409

    def __init__(self, message: str, *, code: ErrorCode | None = None, details: dict[str, Any] | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code  # type: ignore[misc]  # instance override of the class default
        self.details = details or {}


class Conflict(ApplicationError):
    """The request clashes with the current state (duplicate name, last owner, ...)."""


class QuotaExceeded(ApplicationError):
    """A plan or organisation quota would be exceeded. ``details``: quota, limit, current[, requested]."""

    code = ErrorCode.QUOTA_EXCEEDED
    status = 409

    def __init__(self, *, quota: str, limit: int, current: int, requested: int | None = None):
        details: dict[str, Any] = {"quota": quota, "limit": limit, "current": current}
        if requested is not None:
            details["requested"] = requested
        super().__init__(f"Quota {quota!r} exceeded (limit {limit}, current {current}).", details=details)


class InvalidInput(ApplicationError):
    """A business-level validation failure on one field (rendered like serializer errors)."""

    code = ErrorCode.VALIDATION_ERROR
    status = 400

    def __init__(self, field: str, reason: str, *, reason_code: str = "invalid"):
        super().__init__(
            f"{field}: {reason}", details={"fields": [{"field": field, "code": reason_code, "reason": reason}]}
        )


class Unauthorized(ApplicationError):
    code = ErrorCode.INVALID_CREDENTIALS
    status = 401


class Forbidden(ApplicationError):
    code = ErrorCode.PERMISSION_DENIED
    status = 403


class NotFound(ApplicationError):
    code = ErrorCode.NOT_FOUND
    status = 404


class BadRequest(ApplicationError):
    """The request cannot be acted on as sent (invalid link token, missing organisation, ...)."""

    code = ErrorCode.VALIDATION_ERROR
    status = 400
