"""Periodic jobs of the subscriptions domain (scheduled by chainpay/scheduler.py)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import CheckoutSession, Product, Subscription
from core.subscriptions import lifecycle
from core.subscriptions import repository as subscriptions_repository
from core.subscriptions import service as subscriptions_service
from core.subscriptions.policy import Policy
from core.telegram import reminders

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
        product = await session.get(Product, subscription.product_id)
        step = lifecycle.decide(subscription, product, policy, now)
        checkout = await session.get(CheckoutSession, subscription.session_id)
        assert checkout is not None
        await session.flush()
        for kind, previous in step.events:
            await subscriptions_service.emit(
                session, kind, subscription, checkout, previous=previous
            )
        for number in step.reminders:
            await reminders.queue(session, subscription, product, number, now=now)
        moved += 1
    return moved
