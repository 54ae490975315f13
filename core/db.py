"""Async engine and sessions. SQLite (WAL, foreign keys on) by default, PostgreSQL in production."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import Insert, Table, bindparam, event, func, insert, inspect, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import NullPool
from sqlalchemy.util import await_only

_Row = TypeVar("_Row")

SQLITE_BUSY_TIMEOUT_MS = 30_000
# Per connection; with the pool handing out the most recently used connection first, the
# watcher's and the API's hot pages (open sessions, recent payments) stay in memory.
SQLITE_CACHE_KIB = 65_536


def _sqlite_on_connect(dbapi_connection: Any, _record: Any) -> None:
    # aiosqlite's adapter hides the driver's own transaction handling; we want SQLAlchemy to
    # emit BEGIN itself so that the pragmas below run outside a transaction.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA cache_size=-{SQLITE_CACHE_KIB}")
    cursor.close()


# An execution option: this connection's transactions only read (see read_only_transaction).
SQLITE_READ_ONLY = "chainpay_sqlite_read_only"


class _SqliteWriters:
    """The process's writers to one SQLite database, one at a time, in arrival order.

    BEGIN IMMEDIATE makes a second writer wait on SQLite's busy handler, which polls by
    sleeping 1, 2, 5, 10 ... up to 100 ms between tries: under a burst of writes most of a
    request's time went to those sleeps (p99 1.5 s at 16 connections) while the database sat
    idle. Here a writer first waits its turn on an asyncio lock, released the moment the
    previous writer's connection goes back to the pool (commit or rollback done), so the BEGIN
    IMMEDIATE that follows finds the lock free. Other processes still meet the busy handler;
    a turn that takes longer than the busy timeout is not waited for (the busy handler then
    decides, as without this queue), so a writer that holds its connection across an await of
    another writer cannot deadlock the process.
    """

    def __init__(self) -> None:
        self._locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Lock] = (
            weakref.WeakKeyDictionary()
        )
        self._holders: dict[int, asyncio.Lock] = {}  # id(dbapi connection) -> the lock it holds

    def _lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        lock = self._locks.get(loop)
        if lock is None:
            lock = self._locks[loop] = asyncio.Lock()
        return lock

    async def _acquire(self, lock: asyncio.Lock) -> bool:
        try:
            await asyncio.wait_for(lock.acquire(), SQLITE_BUSY_TIMEOUT_MS / 1000)
        except TimeoutError:
            # A holder that never gave its connection back (it should not happen: sessions
            # return theirs even when cancelled) must not make every later writer wait too.
            self._locks.pop(asyncio.get_running_loop(), None)
            return False
        return True

    def on_begin(self, conn: Any) -> None:
        if conn.get_execution_options().get(SQLITE_READ_ONLY):
            # WAL: a reader sees the last commit and neither waits for nor blocks a writer.
            conn.exec_driver_sql("BEGIN")
            return
        dbapi_connection = conn.connection.dbapi_connection
        if id(dbapi_connection) not in self._holders:
            lock = self._lock()
            # We are inside SQLAlchemy's greenlet on the event loop: await_only waits there.
            if await_only(self._acquire(lock)):
                self._holders[id(dbapi_connection)] = lock
        # BEGIN IMMEDIATE takes the write lock up front: two writers wait on busy_timeout
        # instead of one failing with "database is locked" when it upgrades a read transaction.
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            self.release(dbapi_connection)
            raise

    def release(self, dbapi_connection: Any, *_: Any) -> None:
        lock = self._holders.pop(id(dbapi_connection), None)
        if lock is not None:
            lock.release()


def create_engine(url: str, *, pool: bool = True) -> AsyncEngine:
    """An engine for `url`; SQLite gets WAL, foreign keys, a busy timeout and write-locking BEGIN."""
    kwargs: dict[str, Any] = {}
    if not pool:
        kwargs["poolclass"] = NullPool
    is_sqlite = make_url(url).get_backend_name() == "sqlite"
    if not is_sqlite:
        kwargs["pool_pre_ping"] = True
    if pool:
        kwargs["pool_use_lifo"] = True  # a few warm connections rather than all of them lukewarm
        # One engine serves the whole process (API, watchers, sender, jobs in `serve`): room for
        # all of them at once rather than SQLAlchemy's 5 + 10.
        kwargs["pool_size"] = 10
        kwargs["max_overflow"] = 20
    engine = create_async_engine(url, **kwargs)
    if is_sqlite:
        writers = _SqliteWriters()
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        event.listen(engine.sync_engine, "begin", writers.on_begin)
        # Back in the pool (after its commit or rollback), or gone: the next writer's turn.
        for name in ("checkin", "close", "invalidate", "detach", "close_detached"):
            event.listen(engine.sync_engine.pool, name, writers.release)
    return engine


def create_sessionmaker(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(engine, expire_on_commit=False, autoflush=False)


def read_only_sessionmaker(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> async_sessionmaker[AsyncSession]:
    """Sessions like `sessionmaker`'s whose transactions only read: on SQLite a deferred BEGIN
    that takes no write lock (under WAL it reads the last commit beside the writer and never
    waits for it); elsewhere ordinary transactions. They must not write."""
    kw = dict(sessionmaker.kw)
    bind = kw.pop("bind")
    return async_sessionmaker(
        bind.execution_options(**{SQLITE_READ_ONLY: True}), class_=sessionmaker.class_, **kw
    )


@asynccontextmanager
async def transaction(
    sessionmaker: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """One unit of work for entry points outside HTTP (CLI, jobs): commit on success, else roll back."""
    async with sessionmaker() as session:
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


_ON_COMMIT = "chainpay.on_commit"


@dataclass(slots=True)
class _OnCommit:
    transaction: SessionTransaction
    callbacks: list[Callable[[], None]] = field(default_factory=list)


def on_commit(session: AsyncSession, callback: Callable[[], None]) -> None:
    """Run `callback()` right after the session's current transaction commits; never if it
    rolls back. For what must not outlive a rolled-back transaction: log lines that report its
    changes, in-process caches of rows it inserted."""
    sync = session.sync_session
    transaction = sync.get_transaction() or sync.begin()
    pending: _OnCommit | None = sync.info.get(_ON_COMMIT)
    if pending is None or pending.transaction is not transaction:
        pending = _OnCommit(transaction)  # an earlier, rolled-back transaction's are dropped
        sync.info[_ON_COMMIT] = pending
    pending.callbacks.append(callback)


@event.listens_for(Session, "after_commit")
def _run_on_commit(session: Session) -> None:
    if session.get_nested_transaction() is not None:
        return  # a savepoint was released: the transaction itself goes on
    pending: _OnCommit | None = session.info.pop(_ON_COMMIT, None)
    if pending is None or pending.transaction is not session.get_transaction():
        return
    for callback in pending.callbacks:
        # The data is committed: a callback that fails must not look like a failed commit.
        with contextlib.suppress(Exception):
            callback()


def insert_many(
    session: Session | AsyncSession, entity: Any, rows: list[dict[str, Any]]
) -> tuple[Insert, Any]:
    """An INSERT of `rows` (all with the same keys) as one statement, and its parameters.

    On PostgreSQL the columns travel as arrays through `unnest(...)`: the statement's text is the
    same for every batch size, so it is parsed, described and planned once per connection and
    cached, not once per size (a multi-row VALUES of 200 payments is ~4,800 parameters), and its
    FROM is one function scan. Elsewhere it is an ordinary executemany INSERT (SQLAlchemy sends
    it as multi-row VALUES). Execute as `session.execute(statement.returning(...), parameters)`;
    with RETURNING, rows come back in no promised order: match them on a unique key (ids from a
    sequence are handed out in the rows' order on both backends). Rows give
    every column that has a Python-side default (an INSERT ... SELECT would compute it once).
    """
    if not rows:
        return insert(entity), rows
    keys = rows[0].keys()
    if any(row.keys() != keys for row in rows):
        raise ValueError("insert_many: every row needs the same keys")
    if isinstance(entity, Table):  # rows keyed by column
        fields = [(column.key, column, column) for column in entity.columns]
    else:  # a mapped class: rows keyed by attribute
        fields = [
            (prop.key, getattr(entity, prop.key), prop.columns[0])
            for prop in inspect(entity).column_attrs
        ]
    unknown = set(keys) - {key for key, _, _ in fields}
    if unknown:
        raise ValueError(f"insert_many: unknown columns {sorted(unknown)}")
    defaulted = [key for key, _, column in fields if column.default is not None and key not in keys]
    if defaulted:
        raise ValueError(f"insert_many: give {defaulted} in every row")
    if session.get_bind().dialect.name != "postgresql":
        return insert(entity), rows
    given = [(key, target, column) for key, target, column in fields if key in keys]
    names = [f"c{number}" for number in range(len(given))]
    arrays = func.unnest(
        *(
            bindparam(name, [row[key] for row in rows], type_=ARRAY(column.type))
            for name, (key, _, column) in zip(names, given, strict=True)
        )
    )
    # WITH ORDINALITY ... ORDER BY: ids from a sequence follow the rows' order, as they do for
    # the executemany INSERT (an event log read in id order reads them as emitted).
    source = arrays.table_valued(*names, with_ordinality="ordinality").render_derived()
    rows_in_order = select(*(source.c[name] for name in names)).order_by(source.c.ordinality)
    statement = insert(entity).from_select(
        [target for _, target, _ in given], rows_in_order, include_defaults=False
    )
    return statement, None


def chunks(values: Sequence[Any], size: int = 500) -> list[Sequence[Any]]:
    """`values` in slices of `size`: keeps `IN (...)` lists and parameter counts bounded."""
    return [values[i : i + size] for i in range(0, len(values), size)]


_LOCKED = "chainpay.locked"
LOCK_CHUNK = 500


@dataclass(slots=True)
class _Locked:
    transaction: SessionTransaction
    rows: dict[tuple[type, int], Any] = field(default_factory=dict)


def _held(session: AsyncSession) -> _Locked:
    """The rows this session's current transaction has locked (a new record per transaction)."""
    sync = session.sync_session
    transaction = sync.get_transaction() or sync.begin()
    locked: _Locked | None = sync.info.get(_LOCKED)
    if locked is None or locked.transaction is not transaction:
        locked = _Locked(transaction)
        sync.info[_LOCKED] = locked
    return locked


async def lock_rows(
    session: AsyncSession, entity: type[_Row], ids: Iterable[int]
) -> dict[int, _Row]:
    """These rows of `entity`, locked for the rest of the transaction, with their state as of
    the lock: `SELECT ... WHERE id IN (...) ORDER BY id FOR NO KEY UPDATE`, 500 ids a statement.

    Whoever recomputes a row's state from what it reads locks it first, so two such paths run
    one after the other and the second starts from what the first committed. Rows are locked
    in id order: two transactions that each lock their rows in one call cannot deadlock. A
    transaction that must lock several sets locks their union first (or locks sessions before
    subscriptions, each in id order). Rows this transaction locked already are not read again:
    their state since is its own (and the objects are kept for it). On SQLite there is nothing
    to take (BEGIN IMMEDIATE holds the database's write lock; the dialect drops FOR UPDATE), but
    the same statements run, so both backends take one code path.
    """
    locked = _held(session)
    wanted = sorted(set(ids))
    found: dict[int, _Row] = {}
    missing = []
    for id_ in wanted:
        row = locked.rows.get((entity, id_))
        if row is None:
            missing.append(id_)
        else:
            found[id_] = row
    if missing:
        # Reloading overwrites the objects' attributes: what this transaction changed must be
        # written first.
        await session.flush()
    column: Any = inspect(entity).primary_key[0]
    for start in range(0, len(missing), LOCK_CHUNK):
        chunk = missing[start : start + LOCK_CHUNK]
        rows = await session.scalars(
            select(entity)
            .where(column.in_(chunk))
            .order_by(column)
            # FOR NO KEY UPDATE: it excludes every other locker of the row (and its UPDATEs) but
            # not the key-share locks of foreign-key checks, so inserting a payment or an event
            # that refers to a locked row never waits for (or deadlocks with) its holder.
            .with_for_update(key_share=True)
            .execution_options(populate_existing=True)
        )
        for row in rows:
            id_ = int(getattr(row, column.key))
            locked.rows[(entity, id_)] = row
            found[id_] = row
    return found


async def lock_where(session: AsyncSession, entity: type[_Row], condition: Any) -> dict[int, _Row]:
    """The rows of `entity` that match `condition`, locked in id order in one statement, as
    `lock_rows` locks them (and recorded with them, so a later `lock_rows` of these ids reads
    nothing): for a caller that would otherwise look the ids up first and lock them second.

    One statement keeps the id order only while it is one statement: the caller bounds what
    `condition` can match (or uses `lock_rows` with ids it collected).
    """
    locked = _held(session)
    await session.flush()
    column: Any = inspect(entity).primary_key[0]
    found: dict[int, _Row] = {}
    for row in await session.scalars(
        select(entity)
        .where(condition)
        .order_by(column)
        .with_for_update(key_share=True)
        .execution_options(populate_existing=True)
    ):
        id_ = int(getattr(row, column.key))
        locked.rows[(entity, id_)] = row
        found[id_] = row
    return found
