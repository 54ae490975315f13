"""Outbox events: written with the state change, delivered later by webhooks and the bot.

An event's body is decided once, here: `{id, type, createdAt, data, ...}` in canonical JSON,
stored, and sent byte for byte on every delivery attempt.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import event as sa_event
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session, SessionTransaction

from core.db import insert_many
from core.events.canonical import canonical_json
from core.events.wakeup import notify_on_commit
from core.models import Event, WebhookDelivery
from core.models.base import utcnow
from core.webhooks import outbox


def new_event_id() -> str:
    """`evt_` and 128 random bits in hex (uuid4's text costs four times as much to make)."""
    return "evt_" + secrets.token_hex(16)


def timestamp_text(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and `Z`, the form every event uses."""
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class _Pending:
    """Events (and their delivery rows) emitted in one transaction, written when it commits."""

    transaction: SessionTransaction
    events: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (event #, row)


_PENDING = "chainpay.pending_events"


async def _pending(session: AsyncSession) -> _Pending:
    transaction = session.sync_session.get_transaction()
    if transaction is None:  # nothing has begun it yet: begin, so that its commit writes these
        await session.connection()
        transaction = session.sync_session.get_transaction()
        assert transaction is not None
    pending: _Pending | None = session.info.get(_PENDING)
    if pending is None or pending.transaction is not transaction:
        pending = _Pending(transaction)  # a rolled-back transaction's events are dropped here
        session.info[_PENDING] = pending
    return pending


@sa_event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    """The transaction's events in one INSERT (and their deliveries in one more)."""
    pending: _Pending | None = session.info.pop(_PENDING, None)
    if (
        pending is None
        or not pending.events
        or pending.transaction is not session.get_transaction()
    ):
        return
    table = Event.__table__
    statement, parameters = insert_many(session, table, pending.events)
    if not pending.deliveries:
        session.execute(statement, parameters)
        return
    returned = session.execute(statement.returning(table.c.uuid, table.c.id), parameters)
    ids: dict[str, int] = {uuid: id_ for uuid, id_ in returned}
    session.execute(
        insert(WebhookDelivery),
        [
            {**row, "event_id": ids[pending.events[number]["uuid"]]}
            for number, row in pending.deliveries
        ],
    )


def _row(
    *,
    organization_id: int,
    test: bool,
    type: str,
    data: dict[str, Any],
    session_id: int | None,
    subscription_id: int | None,
    payment_id: int | None,
    top_level: dict[str, Any] | None,
) -> dict[str, Any]:
    created_at = utcnow()
    event_id = new_event_id()
    body = {
        **(top_level or {}),
        "id": event_id,
        "type": type,
        "createdAt": timestamp_text(created_at),
        "data": data,
    }
    return {
        "uuid": event_id,
        "organization_id": organization_id,
        "test": test,
        "type": type,
        "session_id": session_id,
        "subscription_id": subscription_id,
        "payment_id": payment_id,
        "payload": canonical_json(body),
        "created_at": created_at,
    }


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
) -> str:
    """Record an event and its pending webhook deliveries, in the caller's transaction.

    `top_level` adds fields beside `data` (the SDK's SessionWebhookResponse fields for session
    events); `session_webhook_url` also delivers to a session's own webhookUrl. The rows are
    written when the transaction commits, all of its events in one statement (a watcher step
    emits hundreds); a transaction that rolls back writes none. Returns the event's id.
    """
    row = _row(
        organization_id=organization_id,
        test=test,
        type=type,
        data=data,
        session_id=session_id,
        subscription_id=subscription_id,
        payment_id=payment_id,
        top_level=top_level,
    )
    pending = await _pending(session)
    notify_on_commit(session)
    number = len(pending.events)
    pending.events.append(row)
    for delivery in await outbox.deliveries_for(
        session, organization_id, test, type, row["created_at"], session_webhook_url
    ):
        pending.deliveries.append((number, delivery))
    return str(row["uuid"])


async def emit_now(
    session: AsyncSession,
    *,
    organization_id: int,
    test: bool,
    type: str,
    data: dict[str, Any],
) -> Event:
    """An event written at once and delivered nowhere yet: the caller adds its one delivery."""
    event = Event(
        **_row(
            organization_id=organization_id,
            test=test,
            type=type,
            data=data,
            session_id=None,
            subscription_id=None,
            payment_id=None,
            top_level=None,
        )
    )
    session.add(event)
    await session.flush()
    notify_on_commit(session)
    return event
