"""Encryption at rest for SecretKeys: MultiFernet over ``settings.MQ_ENCRYPTION_KEYS``.

The first key encrypts; every key decrypts, so keys rotate by prepending a new one and running
:func:`reencrypt` over stored ciphertexts before dropping the old key.
"""
from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, MultiFernet
from django.conf import settings
from django.core.signals import setting_changed


@lru_cache(maxsize=1)
def _fernet() -> MultiFernet:
    keys = settings.MQ_ENCRYPTION_KEYS
    if not keys:
        raise RuntimeError("MQ_ENCRYPTION_KEYS is empty")
    return MultiFernet([Fernet(k.encode() if isinstance(k, str) else k) for k in keys])


def _reset(*, setting: str, **_: object) -> None:
    if setting == "MQ_ENCRYPTION_KEYS":
        _fernet.cache_clear()


setting_changed.connect(_reset)


def encrypt(plaintext: str) -> str:
    """Encrypt a secret for storage; the result is ASCII and safe for a text column."""
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(ciphertext: str) -> str:
    """Decrypt a stored secret (used only to push SecretKeys to the broker nodes)."""
    return _fernet().decrypt(ciphertext.encode()).decode()


def reencrypt(ciphertext: str) -> str:
    """Re-encrypt under the current first key (key rotation)."""
    return _fernet().rotate(ciphertext.encode()).decode()
