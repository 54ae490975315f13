"""Periodic jobs of the Telegram domain (scheduled by chainpay/scheduler.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import TelegramClaim, TelegramLinkCode, TelegramOutbox

RETENTION_BATCH = 1_000


async def purge_old(
    session: AsyncSession, now: datetime, *, retention: timedelta, limit: int = RETENTION_BATCH
) -> int:
    """`telegram.retention`: past `retention`, the bot's finished outbox rows and the link
    codes and claim tokens that expired (used or not); up to `limit` of each. Returns how
    many rows went. Rows still to be sent are never deleted."""
    cutoff = now - retention
    deleted = 0
    for model, old in (
        (TelegramOutbox, TelegramOutbox.done_at < cutoff),
        (TelegramLinkCode, TelegramLinkCode.expires_at < cutoff),
        (TelegramClaim, TelegramClaim.expires_at < cutoff),
    ):
        ids = list(
            await session.scalars(select(model.id).where(old).order_by(model.id).limit(limit))
        )
        if ids:
            await session.execute(delete(model).where(model.id.in_(ids)))
            deleted += len(ids)
    return deleted
