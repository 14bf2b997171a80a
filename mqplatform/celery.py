"""The Celery application: provisioning and orchestration tasks, beat schedules."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mqplatform.settings.local")

app = Celery("mqplatform")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
