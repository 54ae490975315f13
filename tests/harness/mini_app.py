"""Telegram Mini App initData, signed the way Telegram signs it (for the checkout page tests)."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from urllib.parse import urlencode


def signed_init_data(user_id: int, *, token: str, signed_at: datetime | None = None) -> str:
    """HMAC-SHA256 over the sorted fields with a key derived from the bot token
    (core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app)."""
    fields = {
        "auth_date": str(int((signed_at or datetime.now(UTC)).timestamp())),
        "query_id": "AAHdF6IQAAAAAN0XohDhrOrc",
        "user": json.dumps({"id": user_id, "first_name": "Ann", "language_code": "en"}),
    }
    check = "\n".join(f"{key}={fields[key]}" for key in sorted(fields))
    secret = hmac.new(b"WebAppData", token.encode(), hashlib.sha256).digest()
    fields["hash"] = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    return urlencode(fields)
