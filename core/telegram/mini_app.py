"""Telegram Mini App initData: who opened the checkout page inside Telegram, signed by Telegram.

Telegram signs the fields it hands a Mini App with a key derived from the bot's token
(core.telegram.org/bots/webapps#validating-data-received-via-the-mini-app): HMAC-SHA256 of the
sorted `key=value` lines under HMAC-SHA256("WebAppData", token). The same check as aiogram's
`safe_parse_webapp_init_data`, here because core imports no bot framework.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

from core.errors import AppError

# initData older than this is refused (Telegram signs it when the Mini App opens).
MAX_AGE = timedelta(hours=1)
_CLOCK_SKEW = timedelta(minutes=5)


class InitDataRefused(AppError):
    """initData not signed with this bot's token, stale, or without a user."""

    status_code = 403
    code = "invalid_init_data"


def telegram_user_of(init_data: str, *, bot_token: str | None, now: datetime) -> int:
    """The Telegram user id a Mini App's initData vouches for, or InitDataRefused."""
    if not bot_token:
        raise InitDataRefused("No Telegram bot is configured", param="initData")
    try:
        fields = dict(parse_qsl(init_data, keep_blank_values=True, strict_parsing=True))
    except ValueError as exc:
        raise InitDataRefused("initData is not Telegram's", param="initData") from exc
    received = fields.pop("hash", "")
    check = "\n".join(f"{key}={fields[key]}" for key in sorted(fields))
    secret = hmac.new(b"WebAppData", bot_token.encode(), hashlib.sha256).digest()
    expected = hmac.new(secret, check.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, received):
        raise InitDataRefused("initData is not signed by this bot", param="initData")
    try:
        signed_at = datetime.fromtimestamp(int(fields["auth_date"]), UTC)
        user_id = int(json.loads(fields["user"])["id"])
    except (KeyError, ValueError, TypeError, OverflowError) as exc:
        raise InitDataRefused("initData has no auth_date or user", param="initData") from exc
    if not now - MAX_AGE <= signed_at <= now + _CLOCK_SKEW:
        raise InitDataRefused("initData is stale: open the Mini App again", param="initData")
    return user_id
