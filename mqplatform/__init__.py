"""The control plane's Django project package (named mqplatform, not platform: see README)."""
from mqplatform.celery import app as celery_app

__all__ = ("celery_app",)
