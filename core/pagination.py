"""Opaque cursors for keyset pagination: `<prefix>:<last id>`, base64url without padding."""

from __future__ import annotations

import base64
import binascii

from core.errors import InvalidInput

# Ids are BIGINT on both databases: a cursor beyond this could never come from us, and SQLite's
# driver (OverflowError) and PostgreSQL (int64 out of range) would both fail on it.
MAX_ID = 2**63 - 1


class InvalidCursor(InvalidInput):
    code = "invalid_cursor"

    def __init__(self) -> None:
        super().__init__("Unknown pagination cursor", param="cursor")


def encode_cursor(prefix: str, last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{prefix}:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(prefix: str, cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        text = base64.urlsafe_b64decode(padded.encode("ascii")).decode("ascii")
        found, _, number = text.partition(":")
        if found != prefix or not (number.isascii() and number.isdigit()) or len(number) > 19:
            raise ValueError(cursor)
        last_id = int(number)
        if last_id > MAX_ID:
            raise ValueError(cursor)
        return last_id
    except (ValueError, UnicodeError, binascii.Error) as exc:
        raise InvalidCursor() from exc
