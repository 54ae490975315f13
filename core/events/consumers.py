"""Event consumers: readers of the outbox besides webhooks (the bot's notifications, ...).

A consumer is a name and a cursor over the events table. One batch, in the caller's
transaction: lock the consumer's row, read the events after its cursor (and those it skipped
earlier that have committed since), hand them to the handler, move the cursor. The cursor moves
in the transaction of the handler's own writes, so a handler that fails undoes both and the
same events come again: each event is handled exactly once.

Ids are handed out at INSERT but seen at COMMIT, so a lower id can appear after a higher one
was read. The consumer keeps, with its cursor, the recent ids it skipped (`core.cursor`, the
same rule the watcher applies to deposit addresses) and reads them once they appear; the set
is stored in its row, so a consumer that restarts, or another process taking over, misses
nothing either. A skipped id still missing after `HOLE_SECONDS` was a rollback.

Two processes running one consumer name never handle one event twice: a batch holds the row
lock (`FOR UPDATE SKIP LOCKED` on PostgreSQL: the other process finds nothing to do and waits
for its next turn; on SQLite every write transaction is exclusive anyway).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Sequence

import structlog
from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.cursor import IdCursor
from core.db import transaction
from core.events.wakeup import WAKEUP, Listener
from core.models import Event, EventConsumer
from core.models.base import utcnow

log = structlog.get_logger(__name__)

Handler = Callable[[AsyncSession, Sequence[Event]], Awaitable[None]]

DEFAULT_BATCH = 100
_IN_CHUNK = 500  # ids per `IN (...)` when asking for skipped events again


async def _locked(session: AsyncSession, name: str) -> EventConsumer | None:
    """The consumer's row, locked for this transaction (made on first use); None while another
    transaction holds it."""
    query = (
        select(EventConsumer)
        .where(EventConsumer.name == name)
        .with_for_update(skip_locked=True)
        .execution_options(populate_existing=True)
    )
    row = await session.scalar(query)
    if row is not None:
        return row
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(EventConsumer)
        .values(name=name, after_id=0, holes="{}", updated_at=utcnow())
        .on_conflict_do_nothing(index_elements=["name"])
    )
    return await session.scalar(query)


def _load_holes(text: str) -> dict[int, float]:
    return {int(number): float(since) for number, since in json.loads(text).items()}


def _dump_holes(holes: dict[int, float]) -> str:
    return json.dumps({str(number): holes[number] for number in sorted(holes)})


async def consume_batch(
    session: AsyncSession,
    name: str,
    handler: Handler,
    *,
    batch: int = DEFAULT_BATCH,
    now: float | None = None,
) -> int:
    """Hand the consumer's next events (at most `batch` new ones, plus skipped ones that have
    appeared) to `handler` and move its cursor, all in the caller's transaction. Returns how
    many events were handled (0 also when another process holds this consumer).

    `now` (Unix time, default the wall clock) only dates the ids skipped here.
    """
    row = await _locked(session, name)
    if row is None:
        return 0
    moment = time.time() if now is None else now
    cursor = IdCursor(position=row.after_id, holes=_load_holes(row.holes))
    before = dict(cursor.holes)
    cursor.expire(moment)
    appeared: list[Event] = []
    pending = cursor.pending()
    for start in range(0, len(pending), _IN_CHUNK):
        appeared.extend(
            await session.scalars(
                select(Event)
                .where(Event.id.in_(pending[start : start + _IN_CHUNK]))
                .order_by(Event.id)
            )
        )
    cursor.filled(event.id for event in appeared)
    fresh = list(
        await session.scalars(
            select(Event).where(Event.id > cursor.position).order_by(Event.id).limit(batch)
        )
    )
    # A full batch may be far behind: only ids near the newest can still be in flight.
    newest = await session.scalar(select(func.max(Event.id))) if len(fresh) == batch else None
    cursor.advance([event.id for event in fresh], moment, newest=newest)
    events = appeared + fresh  # skipped ones are all below the cursor: still in id order
    if events:
        await handler(session, events)
    if events or cursor.holes != before:
        row.after_id = cursor.position
        row.holes = _dump_holes(cursor.holes)
        row.updated_at = utcnow()
        await session.flush()
    return len(events)


async def run_consumer(
    sessionmaker: async_sessionmaker[AsyncSession],
    name: str,
    handler: Handler,
    stop: asyncio.Event,
    *,
    batch: int = DEFAULT_BATCH,
    poll: float = 1.0,
) -> None:
    """Consume until `stop` is set: one committed transaction per batch, the next at once while
    there is more, else after `poll` seconds or as soon as events commit in this process. A
    batch that fails is rolled back, logged and tried again after `poll` seconds."""
    with WAKEUP.listen() as wake:
        while not stop.is_set():
            wake.clear()  # a commit from here on wakes the pause after this batch
            try:
                async with transaction(sessionmaker) as session:
                    handled = await consume_batch(session, name, handler, batch=batch)
            except Exception:
                log.exception("event_consumer_failed", consumer=name)
                await _pause(stop, None, poll)
                continue
            if handled < batch:
                await _pause(stop, wake, poll)


async def _pause(stop: asyncio.Event, wake: Listener | None, seconds: float) -> None:
    """Until `stop` is set, `wake` is, or `seconds` have passed."""
    waiters: list[asyncio.Future[object]] = [asyncio.ensure_future(stop.wait())]
    if wake is not None:
        waiters.append(asyncio.ensure_future(wake.wait()))
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        for waiter in waiters:
            with contextlib.suppress(asyncio.CancelledError):
                await waiter
