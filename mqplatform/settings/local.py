"""Developer defaults: everything embedded, nothing to configure."""
from mqplatform.settings.base import *  # noqa: F403

DEBUG = env.bool("DEBUG", default=True)  # noqa: F405
