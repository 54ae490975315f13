"""Webhook signing secrets: generated as `whsec_…`, kept Fernet-encrypted at rest."""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from core.config import Settings

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` + base64 of 32 random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def _fernet_key(material: str) -> bytes:
    """A Fernet key as given, or one derived (HKDF-SHA256) from any other passphrase."""
    material = material.strip()
    try:
        if len(base64.urlsafe_b64decode(material.encode())) == 32:
            return material.encode()
    except ValueError:
        pass
    derived = HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"chainpay secrets at rest"
    ).derive(material.encode())
    return base64.urlsafe_b64encode(derived)


def _key_file(path: Path) -> str:
    """The key in `path`, generated (0600) the first time; concurrent starters agree on one."""
    with contextlib.suppress(FileExistsError):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(Fernet.generate_key().decode() + "\n")
    return path.read_text().strip()


class SecretUnreadable(Exception):
    """A stored secret does not decrypt with any configured key (the key was changed)."""


@dataclass(frozen=True)
class SecretBox:
    fernet: MultiFernet
    # Decrypted secrets by ciphertext: the sender signs many deliveries per endpoint.
    _plain: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> SecretBox:
        if settings.secret_key is not None:
            materials = [m for m in settings.secret_key.get_secret_value().split(",") if m.strip()]
        else:
            materials = [_key_file(settings.secret_key_file)]
        if not materials:
            raise ValueError("CHAINPAY_SECRET_KEY is empty")
        return cls(MultiFernet([Fernet(_fernet_key(m)) for m in materials]))

    def encrypt(self, secret: str) -> str:
        return self.fernet.encrypt(secret.encode()).decode()

    def decrypt(self, token: str) -> str:
        plain = self._plain.get(token)
        if plain is not None:
            return plain
        try:
            plain = self.fernet.decrypt(token.encode()).decode()
        except InvalidToken as exc:
            raise SecretUnreadable(
                "a webhook secret does not decrypt with CHAINPAY_SECRET_KEY"
            ) from exc
        if len(self._plain) >= 10_000:
            self._plain.clear()
        self._plain[token] = plain
        return plain
