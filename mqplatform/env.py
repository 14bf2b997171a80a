"""Reads the environment in one place (12-factor) and provides the embedded defaults.

With nothing configured the platform runs out of the box: SQLite under ``var/``, generated
secrets under ``var/`` (never committed), e-mails written to ``var/mail/``. Production
deployments set every value explicitly; ``mqplatform.settings.production`` refuses defaults.
"""
from __future__ import annotations

import base64
import os
import secrets
from collections.abc import Callable
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("MQ_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()


def fernet_key() -> str:
    """A fresh key in the form ``cryptography.fernet.Fernet`` expects (url-safe base64 of 32 bytes)."""
    return base64.urlsafe_b64encode(os.urandom(32)).decode()


def generated_secret(name: str, *, factory: Callable[[], str] = lambda: secrets.token_urlsafe(48)) -> str:
    """Return a random secret persisted at ``var/<name>``, creating it (mode 0600) on first use.

    Used only for the embedded defaults, so a developer's platform keeps its sessions and its
    encrypted SecretKeys readable across restarts without any configuration.
    """
    VAR_DIR.mkdir(parents=True, exist_ok=True)
    path = VAR_DIR / name
    if not path.exists():
        path.write_text(factory())
        path.chmod(0o600)
    return path.read_text().strip()
