"""Periodic jobs of the webhooks domain (scheduled by chainpay/scheduler.py).

`webhooks.retention` keeps the delivery log from growing forever. Past the retention period
(`CHAINPAY_RETENTION_DAYS`, 30 days by default) it deletes:
- attempt logs (`webhook_attempts`: the receiver's answer excerpt, status, timing) that
  started before the cutoff, whatever their delivery's state;
- events (`events`: the body every delivery posts) created before the cutoff whose every
  delivery is finished (delivered or failed), with those deliveries. An event with a delivery
  still pending is never deleted, nor are its deliveries, however old. Such an event can no
  longer be redelivered or looked up in an endpoint's delivery log.
  Nor is an event an event consumer (`core/events/consumers.py`) has not read yet: a consumer
  that stopped keeps every event after its cursor until it is back (or its row is removed).
Each run deletes at most `limit` attempts and `limit` events, oldest first.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import delete, exists, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Event, EventConsumer, WebhookAttempt, WebhookDelivery
from core.webhooks.queue import PENDING

RETENTION_BATCH = 1_000


async def purge_old(
    session: AsyncSession, now: datetime, *, retention: timedelta, limit: int = RETENTION_BATCH
) -> int:
    """`webhooks.retention`: one bounded batch (see the module). Returns the rows deleted."""
    cutoff = now - retention
    deleted = 0

    attempt_ids = list(
        await session.scalars(
            select(WebhookAttempt.id)
            .where(WebhookAttempt.started_at < cutoff)
            .order_by(WebhookAttempt.id)
            .limit(limit)
        )
    )
    if attempt_ids:
        await session.execute(delete(WebhookAttempt).where(WebhookAttempt.id.in_(attempt_ids)))
        deleted += len(attempt_ids)

    pending = exists().where(
        WebhookDelivery.event_id == Event.id, WebhookDelivery.status == PENDING
    )
    # Ids grow with time, so the oldest events come first along the primary key.
    old_events = select(Event.id).where(Event.created_at < cutoff, ~pending)
    slowest_consumer = await session.scalar(select(func.min(EventConsumer.after_id)))
    if slowest_consumer is not None:
        old_events = old_events.where(Event.id <= slowest_consumer)
    event_ids = list(await session.scalars(old_events.order_by(Event.id).limit(limit)))
    if event_ids:
        delivery_ids = list(
            await session.scalars(
                select(WebhookDelivery.id).where(WebhookDelivery.event_id.in_(event_ids))
            )
        )
        if delivery_ids:
            result = await session.execute(
                delete(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(delivery_ids))
            )
            deleted += int(getattr(result, "rowcount", 0) or 0)
            await session.execute(
                delete(WebhookDelivery).where(WebhookDelivery.id.in_(delivery_ids))
            )
            deleted += len(delivery_ids)
        await session.execute(delete(Event).where(Event.id.in_(event_ids)))
        deleted += len(event_ids)
    return deleted
