"""Test settings: PostgreSQL/Redis when their URLs are set (CI), embedded defaults otherwise."""
from mqplatform.settings.base import *  # noqa: F403

PASSWORD_HASHERS = ["django.contrib.auth.hashers.Argon2PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
# E-mail: tests/conftest.py sends every test's mail over SMTP to a real server on loopback.
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"  # only outside pytest fixtures
# Throttles on in tests too (they are tested), but generous so other tests never trip them.
REST_FRAMEWORK = {**REST_FRAMEWORK}  # noqa: F405
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Instances are provisioned explicitly by the fleet tests (no node process per tenant test).
MQ_FLEET_AUTOPROVISION = False
MQ_NODE_HEARTBEAT_INTERVAL_S = 0.5
MQ_NODE_RECONNECT_MAX_S = 1.0
