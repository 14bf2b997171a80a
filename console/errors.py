"""Turn service errors into form errors, so a refused change shows next to the field it concerns."""
from __future__ import annotations

from collections.abc import Mapping

from django import forms

from tenants.errors import ApplicationError, ErrorCode


def apply_error(form: forms.Form, exc: ApplicationError, aliases: Mapping[str, str] | None = None) -> None:
    """Attach ``exc`` to ``form``: to the fields its details name (a refused quota names its field
    as ``quota``; ``aliases`` maps service field names to the form's), else as a form-wide error."""
    aliases = aliases or {}
    details = exc.details if isinstance(exc.details, dict) else {}
    placed = False
    for item in details.get("fields") or []:
        name = aliases.get(item.get("field"), item.get("field"))
        if name in form.fields:
            form.add_error(name, item.get("reason") or exc.message)
            placed = True
    for key in ("field", "quota"):
        field = aliases.get(details.get(key), details.get(key))
        if not placed and field in form.fields:
            form.add_error(field, exc.message)
            placed = True
    if not placed:
        message = exc.message
        if exc.code == ErrorCode.QUOTA_EXCEEDED:
            message += " See Usage for your plan's limits."
        form.add_error(None, message)
