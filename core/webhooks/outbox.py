"""Fan-out of a new event to its delivery rows, inside the transaction that created the event."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import SessionTransaction

from core.models import WebhookEndpoint

_CACHE_KEY = "chainpay.webhook_endpoints"


@dataclass(frozen=True, slots=True)
class Target:
    endpoint_id: int
    event_types: frozenset[str] | None

    def wants(self, event_type: str) -> bool:
        return self.event_types is None or event_type in self.event_types


def event_types_of(endpoint: WebhookEndpoint) -> frozenset[str] | None:
    return frozenset(json.loads(endpoint.event_types)) if endpoint.event_types else None


async def _targets(session: AsyncSession, organization_id: int, test: bool) -> list[Target]:
    """The organization's active endpoints of this mode, read once per transaction."""
    transaction = session.sync_session.get_transaction()
    cached: tuple[SessionTransaction | None, dict[tuple[int, bool], list[Target]]] | None = (
        session.info.get(_CACHE_KEY)
    )
    if cached is None or cached[0] is not transaction:
        cached = (transaction, {})
        session.info[_CACHE_KEY] = cached
    by_org = cached[1]
    key = (organization_id, test)
    if key not in by_org:
        endpoints = await session.scalars(
            select(WebhookEndpoint).where(
                WebhookEndpoint.organization_id == organization_id,
                WebhookEndpoint.test == test,
                WebhookEndpoint.active.is_(True),
            )
        )
        by_org[key] = [Target(e.id, event_types_of(e)) for e in endpoints]
    return by_org[key]


def forget_endpoints(session: AsyncSession) -> None:
    """Endpoints changed in this transaction: the next event reads them again."""
    session.info.pop(_CACHE_KEY, None)


async def deliveries_for(
    session: AsyncSession,
    organization_id: int,
    test: bool,
    event_type: str,
    created_at: datetime,
    session_webhook_url: str | None,
) -> list[dict[str, Any]]:
    """Delivery rows (all but their event id) for a new event: one per subscribed endpoint,
    plus the session's own webhookUrl."""
    rows: list[dict[str, Any]] = [
        {
            "organization_id": organization_id,
            "endpoint_id": target.endpoint_id,
            "next_attempt_at": created_at,
        }
        for target in await _targets(session, organization_id, test)
        if target.wants(event_type)
    ]
    if session_webhook_url:
        rows.append(
            {
                "organization_id": organization_id,
                "url": session_webhook_url,
                "next_attempt_at": created_at,
            }
        )
    return rows
