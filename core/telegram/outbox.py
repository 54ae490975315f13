"""The bot's queue of Telegram work: written in the transaction that decided it, done outside.

Telegram calls take a network round trip (and may be told to wait for seconds); a database
transaction must not stay open across them (on SQLite every transaction holds the write lock).
So whoever decides that a card must change or a message must go out writes a row here, and
the bot's sender claims rows in one short transaction, makes the calls with none open, and
marks each row done in another. A claim lasts `CLAIM_SECONDS`: rows of a sender that died
come back, and several bot replicas never hold the same row at once (`FOR UPDATE SKIP LOCKED`
on PostgreSQL). A row is unique by its `dedupe_key`, so an event handled twice queues nothing
twice. Delivery is at least once: a sender that dies between a send and its mark repeats it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.events.wakeup import notify_on_commit
from core.models import TelegramOutbox

CLAIM_SECONDS = 60
MAX_ATTEMPTS = 8

CARD = "card"
NOTIFY = "notify"
ACCESS_GRANT = "access_grant"
ACCESS_REVOKE = "access_revoke"
REMINDER = "reminder"


async def enqueue(
    session: AsyncSession,
    *,
    key: str,
    kind: str,
    now: datetime,
    chat_id: int | None = None,
    session_id: int | None = None,
    subscription_id: int | None = None,
    payload: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> None:
    """Queue one piece of Telegram work (nothing if `key` was queued before)."""
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(TelegramOutbox)
        .values(
            dedupe_key=key[:200],
            kind=kind,
            chat_id=chat_id,
            session_id=session_id,
            subscription_id=subscription_id,
            payload=json.dumps(payload or {}, sort_keys=True),
            attempts=0,
            available_at=at or now,
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["dedupe_key"])
    )
    notify_on_commit(session)


async def claim(
    session: AsyncSession, *, now: datetime, limit: int = 50
) -> Sequence[TelegramOutbox]:
    """Rows due now, claimed for `CLAIM_SECONDS` (commit before working on them)."""
    rows = list(
        await session.scalars(
            select(TelegramOutbox)
            .where(
                TelegramOutbox.done_at.is_(None),
                TelegramOutbox.available_at <= now,
                or_(TelegramOutbox.claimed_until.is_(None), TelegramOutbox.claimed_until < now),
            )
            .order_by(TelegramOutbox.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    until = now + timedelta(seconds=CLAIM_SECONDS)
    for row in rows:
        row.claimed_until = until
        row.attempts += 1
    await session.flush()
    return rows


async def finish(
    session: AsyncSession, row_id: int, *, now: datetime, error: str | None = None
) -> None:
    """Done (or given up, with why)."""
    await session.execute(
        update(TelegramOutbox)
        .where(TelegramOutbox.id == row_id)
        .values(done_at=now, claimed_until=None, error=error[:500] if error else None)
    )


async def retry_at(session: AsyncSession, row_id: int, at: datetime, *, error: str) -> None:
    """Try again at `at` (the sender gives a row up after MAX_ATTEMPTS)."""
    await session.execute(
        update(TelegramOutbox)
        .where(TelegramOutbox.id == row_id)
        .values(available_at=at, claimed_until=None, error=error[:500])
    )


def payload_of(row: TelegramOutbox) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(row.payload)
    return data
