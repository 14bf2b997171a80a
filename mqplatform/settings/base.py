"""Settings shared by every environment. Values come from the environment (see mqplatform.env)."""
from __future__ import annotations

from mqplatform.env import BASE_DIR, VAR_DIR, env, fernet_key, generated_secret

SECRET_KEY = env.str("SECRET_KEY", default="") or generated_secret("django_secret_key")
# Fernet key(s) for SecretKeys at rest; comma-separated, first one encrypts, all decrypt (rotation).
MQ_ENCRYPTION_KEYS = env.list("MQ_ENCRYPTION_KEYS", default=[]) or [generated_secret("encryption_key", factory=fernet_key)]
DEBUG = env.bool("DEBUG", default=False)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# Where people open the console; used in e-mail links.
MQ_PUBLIC_URL = env.str("MQ_PUBLIC_URL", default="http://127.0.0.1:8000")

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_filters",
    "drf_spectacular",
    "channels",
    "django_celery_beat",
    "tenants",
    "brokers.apps.BrokersConfig",
    "console",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "mqplatform.urls"
ASGI_APPLICATION = "mqplatform.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'db.sqlite3'}")}
DATABASES["default"].setdefault("CONN_MAX_AGE", 0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded default has three writers (web, worker, beat): WAL lets readers run beside
    # a writer (switched on by mqplatform.sqlite, which retries the switch when the processes
    # open a fresh database at once), IMMEDIATE transactions take the write lock up front (a
    # deferred transaction that upgrades fails at once with "database is locked" instead of
    # waiting), and the timeout makes writers queue rather than fail.
    DATABASES["default"]["ENGINE"] = "mqplatform.sqlite"
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=20000;",
        }
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")

PASSWORD_HASHERS = [
    "django.contrib.auth.hashers.Argon2PasswordHasher",
    "django.contrib.auth.hashers.PBKDF2PasswordHasher",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "/login/"
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# Caches back rate limiting (throttles); shared across processes when Redis is configured.
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
    # redis-py 8 defaults socket_timeout to 5 s, the length of channels_redis' blocking BZPOPMIN:
    # every idle websocket consumer then dies with TimeoutError (django/channels_redis#422).
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [{"address": REDIS_URL, "socket_timeout": 30, "socket_connect_timeout": 5}]},
        }
    }
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}

# E-mail: SMTP when EMAIL_URL is set (e.g. smtp://user:pass@host:587 or smtp+tls://...),
# otherwise every message is written as a file under var/mail/ (the README says where).
_email = env.email_url("EMAIL_URL", default="filemail://")
if _email.get("EMAIL_BACKEND", "").endswith("filebased.EmailBackend") or env.str("EMAIL_URL", default="") == "":
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = str(VAR_DIR / "mail")
else:
    vars().update(_email)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="MQ Platform <no-reply@mqplatform.local>")
# Platform operators who receive platform alerts (comma-separated).
MQ_OPERATOR_EMAILS = env.list("MQ_OPERATOR_EMAILS", default=[])

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "tenants.api.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_FILTER_BACKENDS": ["django_filters.rest_framework.DjangoFilterBackend"],
    "EXCEPTION_HANDLER": "tenants.api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "login": env.str("THROTTLE_LOGIN", default="10/min"),
        "signup": env.str("THROTTLE_SIGNUP", default="5/min"),
        "password_reset": env.str("THROTTLE_PASSWORD_RESET", default="5/min"),
        "token_create": env.str("THROTTLE_TOKEN_CREATE", default="20/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MQ Platform API",
    "DESCRIPTION": "Provision RocketMQ-compatible messaging instances, topics, groups, credentials and ACLs.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    "ENUM_NAME_OVERRIDES": {"AclActionEnum": "tenants.models.AclAction"},
}

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = "UTC"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "mqplatform.logging.RedactSecretsFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain", "filters": ["redact"]}},
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
}

# Broker fleet (brokers app). This host's name = its Celery queue `host.<name>`.
MQ_HOST_NAME = env.str("MQ_HOST_NAME", default="local")
# Data directories of the broker nodes started on this host: <MQ_NODE_ROOT>/<node name>/.
MQ_NODE_ROOT = env.str("MQ_NODE_ROOT", default=str(VAR_DIR / "nodes"))
# Where node agents connect back to (the web process's websocket endpoint).
MQ_CONTROL_PLANE_WS_URL = env.str(
    "MQ_CONTROL_PLANE_WS_URL", default=f"ws://127.0.0.1:{env.int('PORT', default=8000)}/ws/nodes/"
)
# Address clients are given for the nodes of this host.
MQ_NODE_ADVERTISE_HOST = env.str("MQ_NODE_ADVERTISE_HOST", default="127.0.0.1")
# Provision instances as soon as they are created (tests switch it off and call the task).
MQ_FLEET_AUTOPROVISION = env.bool("MQ_FLEET_AUTOPROVISION", default=True)
MQ_NODE_HEARTBEAT_INTERVAL_S = env.float("MQ_NODE_HEARTBEAT_INTERVAL_S", default=5.0)
MQ_NODE_HEARTBEAT_TIMEOUT_S = env.float("MQ_NODE_HEARTBEAT_TIMEOUT_S", default=20.0)
MQ_NODE_RESTART_BACKOFF_S = env.float("MQ_NODE_RESTART_BACKOFF_S", default=5.0)
MQ_NODE_RESTART_MAX = env.int("MQ_NODE_RESTART_MAX", default=5)
MQ_PROVISION_TIMEOUT_S = env.float("MQ_PROVISION_TIMEOUT_S", default=60.0)
MQ_NODE_START_TIMEOUT_S = env.float("MQ_NODE_START_TIMEOUT_S", default=30.0)

# Every periodic task, in one place (django_celery_beat's DatabaseScheduler installs these).
CELERY_BEAT_SCHEDULE = {
    "brokers-check-node-health": {"task": "brokers.tasks.check_node_health_task", "schedule": 10.0},
    "brokers-evaluate-alerts": {"task": "brokers.alert_tasks.evaluate_alerts_task", "schedule": 30.0},
    "brokers-rollup-metrics": {"task": "brokers.alert_tasks.rollup_metrics_task", "schedule": 300.0},
}
# Task modules outside the autodiscovered `<app>.tasks`.
CELERY_IMPORTS = ["brokers.alert_tasks"]
# Metrics retention: per-minute rows for N hours, hourly roll-ups for N days.
MQ_METRICS_MINUTE_RETENTION_HOURS = env.int("MQ_METRICS_MINUTE_RETENTION_HOURS", default=24)
MQ_METRICS_HOUR_RETENTION_DAYS = env.int("MQ_METRICS_HOUR_RETENTION_DAYS", default=30)
