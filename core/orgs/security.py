"""API key material and password hashing."""

from __future__ import annotations

import hashlib
import secrets

from argon2 import PasswordHasher

LIVE_PREFIX = "cp_live_"
TEST_PREFIX = "cp_test_"
PREVIEW_LENGTH = 8

_hasher = PasswordHasher()


def generate_api_key(*, test: bool) -> str:
    """A fresh random key, prefixed so a leaked key says what it is."""
    return (TEST_PREFIX if test else LIVE_PREFIX) + secrets.token_urlsafe(32)


def hash_api_key(raw_key: str) -> str:
    """Keys are stored only as SHA-256: they are long and random, so a slow hash adds nothing."""
    return hashlib.sha256(raw_key.encode("utf-8")).hexdigest()


def key_preview(raw_key: str) -> str:
    return raw_key[-PREVIEW_LENGTH:]


def hash_password(password: str) -> str:
    """Argon2id, the library's current defaults."""
    return _hasher.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except Exception:
        return False
