"""Turn service errors into form errors, so a refused change shows next to the field it concerns."""
from __future__ import annotations

from django import forms

from tenants.errors import ApplicationError, ErrorCode


def apply_error(form: forms.Form, exc: ApplicationError) -> None:
    """Attach ``exc`` to ``form``: to the fields its details name, else as a form-wide error."""
    fields = exc.details.get("fields") if isinstance(exc.details, dict) else None
    placed = False
    for item in fields or []:
        name = item.get("field")
        if name in form.fields:
            form.add_error(name, item.get("reason") or exc.message)
            placed = True
    field = exc.details.get("field") if isinstance(exc.details, dict) else None
    if not placed and field in form.fields:
        form.add_error(field, exc.message)
        placed = True
    if not placed:
        message = exc.message
        if exc.code == ErrorCode.QUOTA_EXCEEDED:
            message += " See Usage for your plan's limits."
        form.add_error(None, message)
