"""Wire shapes for linking a Telegram account to a chainpay user."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from core.schemas import CamelModel


class LinkCode(CamelModel):
    """A one-time code to send to the bot as `/link <code>`; shown once, never stored raw."""

    code: str = Field(description="Send `/link <code>` to the bot; works once")
    expires_at: datetime = Field(description="The code stops working at this time")
