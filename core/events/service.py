"""Outbox events: written with the state change, delivered later by webhooks and the bot.

An event's body is decided once, here: `{id, type, createdAt, data, ...}` in canonical JSON,
stored, and sent byte for byte on every delivery attempt.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.events.canonical import canonical_json
from core.models import Event
from core.models.base import utcnow
from core.webhooks import outbox


def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def timestamp_text(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and `Z`, the form every event uses."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


async def emit(
    session: AsyncSession,
    *,
    organization_id: int,
    test: bool,
    type: str,
    data: dict[str, Any],
    session_id: int | None = None,
    subscription_id: int | None = None,
    payment_id: int | None = None,
    top_level: dict[str, Any] | None = None,
    session_webhook_url: str | None = None,
    fan_out: bool = True,
) -> Event:
    """Record an event and, in the same transaction, its pending webhook deliveries.

    `top_level` adds fields beside `data` (the SDK's SessionWebhookResponse fields for session
    events); `session_webhook_url` also delivers to a session's own webhookUrl; `fan_out=False`
    leaves the deliveries to the caller (a test delivery goes to one endpoint only).
    """
    created_at = utcnow()
    event_id = new_event_id()
    body = {
        **(top_level or {}),
        "id": event_id,
        "type": type,
        "createdAt": timestamp_text(created_at),
        "data": data,
    }
    event = Event(
        uuid=event_id,
        organization_id=organization_id,
        test=test,
        type=type,
        session_id=session_id,
        subscription_id=subscription_id,
        payment_id=payment_id,
        payload=canonical_json(body),
        created_at=created_at,
    )
    # Not flushed here: events are written with the rest of the step's unit of work.
    session.add(event)
    if fan_out:
        await outbox.add_deliveries(session, event, session_webhook_url=session_webhook_url)
    return event
