"""Idempotency-Key records: same key + same request replays; same key + other request is refused."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.models import IdempotencyRecord

# A request that died between claiming a key and storing its answer frees the key after this.
STALE_IN_FLIGHT = timedelta(minutes=2)


@dataclass(frozen=True, slots=True)
class Proceed:
    record_id: int


@dataclass(frozen=True, slots=True)
class Replay:
    status_code: int
    content_type: str | None
    body: bytes


@dataclass(frozen=True, slots=True)
class Mismatch:
    pass


@dataclass(frozen=True, slots=True)
class InFlight:
    pass


Outcome = Proceed | Replay | Mismatch | InFlight


async def claim(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    scope: str,
    key: str,
    fingerprint: str,
    ttl: timedelta,
    now: datetime,
) -> Outcome:
    """Claim `key` for this request, or say what to do instead. Commits its own transaction."""
    async with sessionmaker() as session:
        existing = await session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
            )
        )
        if existing is not None and _reusable(existing, now, ttl):
            await session.delete(existing)
            await session.flush()
            existing = None
        if existing is not None:
            return _outcome_of(existing, fingerprint)
        record = IdempotencyRecord(scope=scope, key=key, fingerprint=fingerprint, created_at=now)
        session.add(record)
        try:
            await session.commit()
        except IntegrityError:
            await session.rollback()
            # Another request claimed the same key between our read and our insert.
            existing = await session.scalar(
                select(IdempotencyRecord).where(
                    IdempotencyRecord.scope == scope, IdempotencyRecord.key == key
                )
            )
            return InFlight() if existing is None else _outcome_of(existing, fingerprint)
        return Proceed(record.id)


async def complete(
    sessionmaker: async_sessionmaker[AsyncSession],
    record_id: int,
    *,
    status_code: int,
    content_type: str | None,
    body: bytes,
) -> None:
    async with sessionmaker() as session:
        record = await session.get(IdempotencyRecord, record_id)
        if record is not None:
            record.status_code = status_code
            record.content_type = content_type
            record.body = body
            await session.commit()


async def release(sessionmaker: async_sessionmaker[AsyncSession], record_id: int) -> None:
    """Forget a claim whose request failed on our side, so the client's retry runs again."""
    async with sessionmaker() as session:
        await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id == record_id))
        await session.commit()


async def purge_expired(session: AsyncSession, *, now: datetime, ttl: timedelta, limit: int) -> int:
    """Delete up to `limit` records older than the TTL, oldest first. Returns how many."""
    oldest = (
        select(IdempotencyRecord.id)
        .where(IdempotencyRecord.created_at < now - ttl)
        .order_by(IdempotencyRecord.created_at, IdempotencyRecord.id)
        .limit(limit)
    )
    ids = list(await session.scalars(oldest))
    if not ids:
        return 0
    await session.execute(delete(IdempotencyRecord).where(IdempotencyRecord.id.in_(ids)))
    return len(ids)


def _reusable(record: IdempotencyRecord, now: datetime, ttl: timedelta) -> bool:
    if record.created_at <= now - ttl:
        return True
    return record.status_code is None and record.created_at <= now - STALE_IN_FLIGHT


def _outcome_of(record: IdempotencyRecord, fingerprint: str) -> Outcome:
    if record.fingerprint != fingerprint:
        return Mismatch()
    if record.status_code is None:
        return InFlight()
    return Replay(record.status_code, record.content_type, record.body or b"")
