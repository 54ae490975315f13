"""The delivery log an endpoint shows, a test delivery, and redelivery of an event."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.events import service as events_service
from core.events.wakeup import notify_on_commit
from core.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from core.orgs.schemas import Principal
from core.webhooks.endpoints import get_endpoint
from core.webhooks.exceptions import EventNotFound, require_admin
from core.webhooks.queue import PENDING


async def send_test(
    session: AsyncSession, principal: Principal, uuid: str
) -> tuple[Event, WebhookDelivery]:
    """A `webhook.test` event delivered to this endpoint only."""
    require_admin(principal)
    endpoint = await get_endpoint(session, principal, uuid)
    event = await events_service.emit_now(
        session,
        organization_id=principal.organization_id,
        test=principal.test,
        type="webhook.test",
        data={"endpointUUID": endpoint.uuid, "message": "chainpay test delivery"},
    )
    delivery = WebhookDelivery(
        organization_id=principal.organization_id,
        event=event,
        endpoint_id=endpoint.id,
        next_attempt_at=event.created_at,
    )
    session.add(delivery)
    await session.flush()
    return event, delivery


@dataclass(frozen=True)
class DeliveryRecord:
    delivery: WebhookDelivery
    event: Event
    endpoint_uuid: str | None
    attempts: list[WebhookAttempt]


async def _records(
    session: AsyncSession, deliveries: Sequence[WebhookDelivery]
) -> list[DeliveryRecord]:
    if not deliveries:
        return []
    ids = [d.id for d in deliveries]
    events = {
        e.id: e
        for e in await session.scalars(
            select(Event).where(Event.id.in_({d.event_id for d in deliveries}))
        )
    }
    endpoint_ids = {d.endpoint_id for d in deliveries if d.endpoint_id is not None}
    endpoints: dict[int, str] = {}
    if endpoint_ids:
        rows = await session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.uuid).where(
                WebhookEndpoint.id.in_(endpoint_ids)
            )
        )
        endpoints = {endpoint_id: uuid for endpoint_id, uuid in rows}
    attempts: dict[int, list[WebhookAttempt]] = {}
    for attempt in await session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(ids))
        .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt, WebhookAttempt.id)
    ):
        attempts.setdefault(attempt.delivery_id, []).append(attempt)
    return [
        DeliveryRecord(
            delivery=d,
            event=events[d.event_id],
            endpoint_uuid=endpoints.get(d.endpoint_id) if d.endpoint_id else None,
            attempts=attempts.get(d.id, []),
        )
        for d in deliveries
    ]


async def recent_deliveries(
    session: AsyncSession, principal: Principal, uuid: str, *, limit: int
) -> list[DeliveryRecord]:
    """An endpoint's latest deliveries, newest first, each with its attempts."""
    endpoint = await get_endpoint(session, principal, uuid)
    deliveries = (
        await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint.id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
    ).all()
    return await _records(session, deliveries)


async def delivery_record(session: AsyncSession, delivery: WebhookDelivery) -> DeliveryRecord:
    return (await _records(session, [delivery]))[0]


async def redeliver(
    session: AsyncSession,
    principal: Principal,
    event_id: str,
    endpoint_uuid: str | None,
    *,
    now: datetime,
) -> list[DeliveryRecord]:
    """Send an event again now: its deliveries (or the one to `endpoint_uuid`) restart."""
    require_admin(principal)
    event = await session.scalar(
        select(Event).where(
            Event.uuid == event_id,
            Event.organization_id == principal.organization_id,
            Event.test == principal.test,
        )
    )
    if event is None:
        raise EventNotFound()
    query = select(WebhookDelivery).where(WebhookDelivery.event_id == event.id)
    endpoint = None
    if endpoint_uuid is not None:
        endpoint = await get_endpoint(session, principal, endpoint_uuid, param="endpointUUID")
        query = query.where(WebhookDelivery.endpoint_id == endpoint.id)
    deliveries = list((await session.scalars(query.order_by(WebhookDelivery.id))).all())
    if endpoint is not None and not deliveries:
        delivery = WebhookDelivery(
            organization_id=principal.organization_id,
            event_id=event.id,
            endpoint_id=endpoint.id,
            next_attempt_at=now,
        )
        session.add(delivery)
        deliveries.append(delivery)
    for delivery in deliveries:
        delivery.status = PENDING
        delivery.next_attempt_at = now
        delivery.claimed_until = None
    await session.flush()
    notify_on_commit(session)  # this process's sender posts them at once
    return await _records(session, deliveries)
