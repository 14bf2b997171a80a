"""Outgoing e-mails of the tenancy flows. Links are absolute: ``settings.MQ_PUBLIC_URL`` + path."""
from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.mail import send_mail
from django.template.loader import render_to_string


def public_url(path: str) -> str:
    """Absolute link for e-mails, e.g. ``http://127.0.0.1:8000/accounts/confirm-email/<token>/``."""
    return settings.MQ_PUBLIC_URL.rstrip("/") + path


def send_templated(*, to: str, subject: str, template: str, context: dict[str, Any]) -> None:
    """Render ``tenants/email/<template>.txt`` and send it as plain text."""
    body = render_to_string(f"tenants/email/{template}.txt", context)
    send_mail(subject, body, settings.DEFAULT_FROM_EMAIL, [to])
