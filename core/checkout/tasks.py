"""Periodic jobs of the checkout domain (scheduled by chainpay/scheduler.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from core.checkout import settlement
from core.checkout.context import CheckoutContext
from core.clock import FixedClock

EXPIRE_BATCH = 500


async def expire(
    session: AsyncSession, now: datetime, *, context: CheckoutContext, limit: int = EXPIRE_BATCH
) -> int:
    """`checkout.expire`: open sessions past their expiresAt at `now` become expired, longest
    overdue first, at most `limit` of them. Returns how many."""
    # The whole batch is judged at the job's `now` (and stamped with it).
    at_now = replace(context, clock=FixedClock(now))
    return await settlement.expire_due_sessions(session, at_now, limit=limit)
