"""Periodic jobs of the subscriptions domain (scheduled by chainpay/scheduler.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Subscription
from core.subscriptions import repository as subscriptions_repository
from core.subscriptions import service as subscriptions_service
from core.subscriptions.policy import Policy

LIFECYCLE_BATCH = 200


async def advance(
    session: AsyncSession, now: datetime, *, policy: Policy, limit: int = LIFECYCLE_BATCH
) -> int:
    """`subscriptions.lifecycle`: every subscription whose next step is due by `now` (at most
    `limit`, earliest first) takes every step due (see core/subscriptions/lifecycle.py), each
    event emitted and each reminder queued once. Returns how many subscriptions moved."""
    due = list(
        await session.scalars(
            select(Subscription.id)
            .where(Subscription.next_action_at <= now)
            .order_by(Subscription.next_action_at, Subscription.id)
            .limit(limit)
        )
    )
    if not due:
        return 0
    locked = await subscriptions_repository.lock_subscriptions(session, due)
    moved = 0
    for subscription in locked.values():
        # Decided on the row as locked: a payment or a worker that got here first moved it on.
        if subscription.next_action_at is None or subscription.next_action_at > now:
            continue
        await subscriptions_service.take_due_steps(session, subscription, policy=policy, now=now)
        moved += 1
    return moved
