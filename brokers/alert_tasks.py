"""Celery tasks of metrics and alerting (adapters: ids in, one service call; see style guide §13).
Their beat schedules are in ``settings.CELERY_BEAT_SCHEDULE``."""
from __future__ import annotations

import smtplib
from typing import Any

from celery import shared_task


@shared_task(ignore_result=True)
def evaluate_alerts_task() -> dict[str, int]:
    """Every 30 s: evaluate all enabled rules against the latest metrics."""
    from brokers.services.alerting import alerts_evaluate, platform_rules_ensure_defaults

    platform_rules_ensure_defaults()
    return alerts_evaluate()


@shared_task(ignore_result=True)
def rollup_metrics_task() -> dict[str, Any]:
    """Every 5 min: hourly roll-ups of the recent minute rows, then retention."""
    from brokers.services.metrics import metrics_purge, metrics_rollup

    return {"hour_rows": metrics_rollup(), "deleted": metrics_purge()}


@shared_task(bind=True, ignore_result=True, autoretry_for=(smtplib.SMTPException, OSError),
             retry_backoff=30, retry_backoff_max=600, max_retries=8)
def send_alert_email_task(self: Any, alert_id: int, event: str) -> int:
    """Send one alert e-mail (firing, reminder, resolved); retried while the SMTP server fails."""
    from brokers.services.alerting import alert_notify

    return alert_notify(alert_id=alert_id, event=event)
