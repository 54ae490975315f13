"""One injectable source of `now`: services judge expiry, lateness, leases and retries by it.

A process builds one clock in its composition root (`SystemClock` in production) and hands it
on through the objects services already receive (`CheckoutContext.clock`, the API's
`app.state.clock`, the watcher's and the sender's constructors, the scheduler). Tests use a
`ManualClock` and move it instead of sleeping.

`now()` is synchronous on purpose: it is read in the middle of pure decisions. The clock that
tests share across processes (`DatabaseClock`, chosen with `CHAINPAY_CLOCK=database`) keeps an
offset in memory, refreshed from a row of `clock_offsets` by a task the composition root
starts; `now()` stays a cheap, synchronous `system time + offset`.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.models.clock import ClockOffset

log = structlog.get_logger(__name__)


@runtime_checkable
class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class SystemClock:
    """The machine's clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """Always the same moment (one decision judged at one instant)."""

    def __init__(self, at: datetime) -> None:
        self._at = _utc(at)

    def now(self) -> datetime:
        return self._at


class ManualClock:
    """A clock tests move: `advance(minutes=61)` or `set(moment)`; it never moves by itself."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = _utc(start) if start is not None else datetime.now(UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta | None = None, **units: float) -> datetime:
        """Move forward by `delta` or by `timedelta(**units)`; returns the new time."""
        step = delta if delta is not None else timedelta(**units)
        if step < timedelta(0):
            raise ValueError("a clock does not go back; use set()")
        self._now += step
        return self._now

    def set(self, moment: datetime) -> None:
        self._now = _utc(moment)


class DatabaseClock:
    """The machine's clock plus an offset read from the database, for tests that span
    processes: one process moves the offset (`set_offset`) and every process running with
    `CHAINPAY_CLOCK=database` follows within `refresh_seconds`. Without a row the offset is 0.
    """

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        name: str = "default",
        refresh_seconds: float = 0.2,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.name = name
        self.refresh_seconds = refresh_seconds
        self._offset = timedelta(0)

    def now(self) -> datetime:
        return datetime.now(UTC) + self._offset

    @property
    def offset(self) -> timedelta:
        return self._offset

    async def refresh(self) -> None:
        """Read the offset now (the composition root does once before anything reads `now`)."""
        async with self._sessionmaker() as session:
            offset_ms = await session.scalar(
                select(ClockOffset.offset_ms).where(ClockOffset.name == self.name)
            )
        self._offset = timedelta(milliseconds=offset_ms or 0)

    async def run(self, stop: asyncio.Event) -> None:
        """Refresh every `refresh_seconds` until `stop` is set; a failed read keeps the offset."""
        while not stop.is_set():
            try:
                await self.refresh()
            except Exception as exc:
                log.warning("clock_refresh_failed", error=str(exc)[:200])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.refresh_seconds)


async def set_offset(session: AsyncSession, offset: timedelta, *, name: str = "default") -> None:
    """Move every `DatabaseClock` called `name` to the machine's time + `offset` (tests)."""
    offset_ms = round(offset / timedelta(milliseconds=1))
    row = await session.get(ClockOffset, name)
    if row is None:
        session.add(ClockOffset(name=name, offset_ms=offset_ms))
    else:
        row.offset_ms = offset_ms
    await session.flush()


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("a clock needs a timezone-aware datetime")
    return moment.astimezone(UTC)
