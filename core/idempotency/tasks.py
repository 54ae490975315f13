"""Periodic jobs of the idempotency domain (scheduled by chainpay/scheduler.py)."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from core.idempotency import service as idempotency_service

PURGE_BATCH = 5_000


async def purge(
    session: AsyncSession, now: datetime, *, ttl: timedelta, limit: int = PURGE_BATCH
) -> int:
    """`idempotency.purge`: forget up to `limit` Idempotency-Key records older than `ttl` (a
    client retrying after that runs its request again, as documented). Returns how many."""
    return await idempotency_service.purge_expired(session, now=now, ttl=ttl, limit=limit)
