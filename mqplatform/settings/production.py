"""Production: every secret and URL must come from the environment; no embedded defaults."""
from mqplatform.env import env
from mqplatform.settings.base import *  # noqa: F403

SECRET_KEY = env.str("SECRET_KEY")
MQ_ENCRYPTION_KEYS = env.list("MQ_ENCRYPTION_KEYS")
DATABASES = {"default": env.db("DATABASE_URL")}
DEBUG = False
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=True)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=True)
