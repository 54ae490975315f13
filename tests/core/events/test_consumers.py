"""Event consumers: a name and a cursor over the outbox; every event handled exactly once.

Each test gets a freshly migrated database of its own (the consumers read the whole events
table), on SQLite and on PostgreSQL. The handler records what it handled in a table of the same
database, in the consumer's transaction: what committed there is what was handled.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chainpay.migrations import upgrade
from core.db import create_engine, create_sessionmaker, transaction
from core.events import consumers
from core.events import service as events_service
from core.events.wakeup import WAKEUP
from core.models import Event, EventConsumer, Organization
from tests.harness.databases import fresh_postgres_database, sqlite_url

handled_table = Table(
    "test_handled_events",
    MetaData(),
    Column("row", Integer, primary_key=True),
    Column("consumer", String(100)),
    Column("event_id", Integer),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def migrated_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database at the head revision (with a table the test handlers write to)."""

    def prepare(url: str) -> None:
        upgrade(url)

        async def create() -> None:
            engine = create_engine(url, pool=False)
            try:
                async with engine.begin() as conn:
                    await conn.run_sync(handled_table.metadata.create_all)
            finally:
                await engine.dispose()

        asyncio.run(create())

    if request.param == "sqlite":
        url = sqlite_url(tmp_path)
        prepare(url)
        yield url
    else:
        with fresh_postgres_database() as url:
            prepare(url)
            yield url


@dataclass
class Db:
    url: str
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    organization_id: int

    @property
    def postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"


@pytest.fixture
async def db(migrated_url: str) -> AsyncIterator[Db]:
    engine = create_engine(migrated_url)
    sessionmaker = create_sessionmaker(engine)
    async with transaction(sessionmaker) as session:
        organization = Organization(name="Consumers")
        session.add(organization)
        await session.flush()
        organization_id = organization.id
    try:
        yield Db(migrated_url, engine, sessionmaker, organization_id)
    finally:
        await engine.dispose()


async def emit(db: Db, count: int, type: str = "payment.detected") -> list[int]:
    """`count` events in one committed transaction; their ids."""
    async with transaction(db.sessionmaker) as session:
        uuids = [
            await events_service.emit(
                session, organization_id=db.organization_id, test=False, type=type, data={"n": n}
            )
            for n in range(count)
        ]
    async with db.sessionmaker() as session:
        return list(
            (
                await session.scalars(
                    select(Event.id).where(Event.uuid.in_(uuids)).order_by(Event.id)
                )
            ).all()
        )


def recording(
    name: str, *, delay: float = 0.0, calls: list[list[int]] | None = None
) -> consumers.Handler:
    """A handler writing one row per event it is given, in the consumer's transaction."""

    async def handle(session: AsyncSession, events: Sequence[Event]) -> None:
        if calls is not None:
            calls.append([event.id for event in events])
        await session.execute(
            insert(handled_table), [{"consumer": name, "event_id": e.id} for e in events]
        )
        if delay:
            await asyncio.sleep(delay)

    return handle


async def handled(db: Db, name: str) -> list[int]:
    """Event ids the consumer's committed transactions handled, in the order they were handled."""
    async with db.sessionmaker() as session:
        rows = await session.scalars(
            select(handled_table.c.event_id)
            .where(handled_table.c.consumer == name)
            .order_by(handled_table.c.row)
        )
        return list(rows.all())


async def all_event_ids(db: Db) -> list[int]:
    async with db.sessionmaker() as session:
        return list((await session.scalars(select(Event.id).order_by(Event.id))).all())


async def consume(db: Db, name: str, handler: consumers.Handler, *, batch: int = 100) -> int:
    async with transaction(db.sessionmaker) as session:
        return await consumers.consume_batch(session, name, handler, batch=batch)


async def until(check: Callable[[], Awaitable[bool]], seconds: float = 20.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not await check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.02)


# --- exactly once across a restart ---------------------------------------------------------


async def test_a_consumer_sees_every_event_once_across_a_restart(db: Db) -> None:
    first_ids = await emit(db, 25)
    stop = asyncio.Event()
    calls: list[list[int]] = []
    record = recording("bot", calls=calls)

    async def stop_after_two_batches(session: AsyncSession, events: Sequence[Event]) -> None:
        await record(session, events)
        if len(calls) == 2:
            stop.set()

    await asyncio.wait_for(
        consumers.run_consumer(db.sessionmaker, "bot", stop_after_two_batches, stop, batch=10),
        timeout=20,
    )
    assert await handled(db, "bot") == first_ids[:20]  # stopped mid-way, after two batches

    later_ids = await emit(db, 5)
    # A new process: its own engine, the same consumer name.
    engine = create_engine(db.url)
    try:
        stop = asyncio.Event()
        task = asyncio.create_task(
            consumers.run_consumer(
                create_sessionmaker(engine), "bot", recording("bot"), stop, batch=10, poll=0.05
            )
        )
        await until(lambda: _count_is(db, "bot", 30))
        await asyncio.sleep(0.2)  # a few more polls: nothing is handled again
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    finally:
        await engine.dispose()
    assert await handled(db, "bot") == first_ids + later_ids
    # Another name has its own cursor: it starts from the first event.
    assert await consume(db, "other", recording("other")) == 30
    assert await handled(db, "other") == first_ids + later_ids


async def _count_is(db: Db, name: str, count: int) -> bool:
    return len(await handled(db, name)) >= count


async def test_the_cursor_and_its_holes_are_stored_under_the_consumer_name(db: Db) -> None:
    ids = await emit(db, 3)
    assert await consume(db, "page", recording("page")) == 3
    assert await consume(db, "page", recording("page")) == 0
    async with db.sessionmaker() as session:
        row = await session.get(EventConsumer, "page")
    assert row is not None
    assert row.after_id == ids[-1]


# --- out-of-order commits (PostgreSQL: ids are handed out at INSERT, seen at COMMIT) ----------


async def test_a_lower_id_committed_late_is_handled_once(db: Db) -> None:
    if not db.postgresql:
        pytest.skip("SQLite has one writer at a time: ids always commit in order")
    async with db.sessionmaker() as slow:
        # The slow writer takes its id first and holds its transaction open.
        low = await events_service.emit_now(
            slow, organization_id=db.organization_id, test=False, type="payment.detected", data={}
        )
        [high] = await emit(db, 1)
        assert low.id < high
        assert await consume(db, "bot", recording("bot")) == 1
        assert await handled(db, "bot") == [high]
        await slow.commit()
    # Another process picks the consumer up: the hole was stored with the cursor.
    engine = create_engine(db.url, pool=False)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            assert await consumers.consume_batch(session, "bot", recording("bot")) == 1
    finally:
        await engine.dispose()
    assert await consume(db, "bot", recording("bot")) == 0
    assert await handled(db, "bot") == [high, low.id]


async def test_concurrent_writers_with_out_of_order_commits_lose_nothing(db: Db) -> None:
    if not db.postgresql:
        pytest.skip("SQLite has one writer at a time: ids always commit in order")
    rng = random.Random(12)
    calls: list[list[int]] = []

    async def writer(count: int) -> None:
        for _ in range(count):
            async with transaction(db.sessionmaker) as session:
                for _ in range(rng.randint(1, 3)):
                    await events_service.emit_now(
                        session,
                        organization_id=db.organization_id,
                        test=False,
                        type="payment.detected",
                        data={},
                    )
                await asyncio.sleep(rng.uniform(0, 0.03))  # ids taken, not visible yet

    stop = asyncio.Event()
    engine = create_engine(db.url)  # the consumer's own connections
    try:
        task = asyncio.create_task(
            consumers.run_consumer(
                create_sessionmaker(engine), "bot", recording("bot", calls=calls), stop, poll=0.01
            )
        )
        await asyncio.gather(*(writer(25) for _ in range(4)))
        everything = await all_event_ids(db)
        await until(lambda: _count_is(db, "bot", len(everything)))
        await asyncio.sleep(0.2)
        stop.set()
        await asyncio.wait_for(task, timeout=10)
    finally:
        await engine.dispose()
    got = await handled(db, "bot")
    assert sorted(got) == everything  # each exactly once
    seen: list[int] = [event_id for call in calls for event_id in call]
    late = [i for n, i in enumerate(seen) if any(i < earlier for earlier in seen[:n])]
    assert late, "the writers produced no out-of-order commit: the test proved nothing"


# --- one consumer name, several processes -----------------------------------------------------


async def test_two_consumers_with_one_name_never_handle_an_event_twice(db: Db) -> None:
    ids = await emit(db, 120)
    engines = [create_engine(db.url) for _ in range(2)]
    stop = asyncio.Event()
    try:
        tasks = [
            asyncio.create_task(
                consumers.run_consumer(
                    create_sessionmaker(engine),
                    "bot",
                    recording("bot", delay=0.005),
                    stop,
                    batch=7,
                    poll=0.01,
                )
            )
            for engine in engines
        ]
        await until(lambda: _count_is(db, "bot", len(ids)))
        await asyncio.sleep(0.1)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
    finally:
        for engine in engines:
            await engine.dispose()
    assert await handled(db, "bot") == ids


# --- a failing handler ------------------------------------------------------------------------


async def test_a_failing_handler_rolls_back_the_cursor_and_its_own_writes(db: Db) -> None:
    ids = await emit(db, 4)
    record = recording("bot")

    async def fail_after_writing(session: AsyncSession, events: Sequence[Event]) -> None:
        await record(session, events)
        raise RuntimeError("handler failed")

    with pytest.raises(RuntimeError, match="handler failed"):
        await consume(db, "bot", fail_after_writing)
    assert await handled(db, "bot") == []
    async with db.sessionmaker() as session:
        row = await session.get(EventConsumer, "bot")
    assert row is None or row.after_id == 0

    # The runner logs the failure and tries again: the same events come back.
    failures = 0

    async def fail_once(session: AsyncSession, events: Sequence[Event]) -> None:
        nonlocal failures
        await record(session, events)
        if not failures:
            failures += 1
            raise RuntimeError("first try fails")

    stop = asyncio.Event()
    task = asyncio.create_task(
        consumers.run_consumer(db.sessionmaker, "bot", fail_once, stop, poll=0.01)
    )
    await until(lambda: _count_is(db, "bot", 4))
    stop.set()
    await asyncio.wait_for(task, timeout=10)
    assert failures == 1
    assert await handled(db, "bot") == ids


# --- the wake-up ------------------------------------------------------------------------------


async def test_the_wakeup_fires_when_events_commit_and_not_on_rollback(db: Db) -> None:
    with WAKEUP.listen() as listener:
        async with db.sessionmaker() as session:
            await events_service.emit(
                session, organization_id=db.organization_id, test=False, type="x.y", data={}
            )
            await events_service.emit_now(
                session, organization_id=db.organization_id, test=False, type="x.y", data={}
            )
            await session.rollback()
        assert not listener.is_set()
        async with db.sessionmaker() as session:
            await session.execute(select(func.count()).select_from(Event))
            await session.commit()  # a transaction without events wakes nobody
        assert not listener.is_set()

        async with transaction(db.sessionmaker) as session:
            await events_service.emit(
                session, organization_id=db.organization_id, test=False, type="x.y", data={}
            )
            assert not listener.is_set()  # not before the commit
        assert listener.is_set()
        listener.clear()

        async with transaction(db.sessionmaker) as session:
            await events_service.emit_now(
                session, organization_id=db.organization_id, test=False, type="x.y", data={}
            )
        assert listener.is_set()
    assert not WAKEUP.listening()


async def test_a_commit_in_this_process_wakes_a_consumer_long_before_its_poll(db: Db) -> None:
    stop = asyncio.Event()
    task = asyncio.create_task(
        consumers.run_consumer(db.sessionmaker, "bot", recording("bot"), stop, poll=30)
    )
    await until(lambda: _consumer_exists(db, "bot"))  # its first (empty) batch committed
    await asyncio.sleep(0.1)  # and it waits, for up to 30 s
    [event_id] = await emit(db, 1)
    await until(lambda: _count_is(db, "bot", 1), seconds=3)
    stop.set()
    await asyncio.wait_for(task, timeout=5)
    assert await handled(db, "bot") == [event_id]


async def _consumer_exists(db: Db, name: str) -> bool:
    async with db.sessionmaker() as session:
        return await session.get(EventConsumer, name) is not None
