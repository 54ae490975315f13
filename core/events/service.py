"""Outbox events: written with the state change, delivered later by webhooks and the bot."""

from __future__ import annotations

from typing import Any

import simplejson
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Event


def canonical_json(data: Any) -> str:
    """Sorted keys, compact separators, Decimals as exact numbers, UTF-8."""
    return str(
        simplejson.dumps(
            data,
            sort_keys=True,
            separators=(",", ":"),
            use_decimal=True,
            default=str,
            ensure_ascii=False,
        )
    )


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
) -> Event:
    event = Event(
        organization_id=organization_id,
        test=test,
        type=type,
        session_id=session_id,
        subscription_id=subscription_id,
        payment_id=payment_id,
        payload=canonical_json(data),
    )
    # Not flushed here: events are written with the rest of the step's unit of work.
    session.add(event)
    return event
