"""One injectable source of `now`: services judge expiry, lateness, leases and retries by it.

A process builds one clock in its composition root (`SystemClock` in production) and hands it
on through the objects services already receive (`CheckoutContext.clock`, the API's
`app.state.clock`, the watcher's and the sender's constructors, the scheduler). Tests use a
`ManualClock` and move it instead of sleeping.

`now()` is synchronous on purpose: it is read in the middle of pure decisions. A clock that
tests share across processes (`DatabaseClock`, not built yet) fits the same protocol by
keeping an offset in memory and refreshing it asynchronously from a settings row (for
example before each job run and request, or every second from a task the composition root
starts); `now()` then stays a cheap, synchronous `system time + offset`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Protocol, runtime_checkable


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


def _utc(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise ValueError("a clock needs a timezone-aware datetime")
    return moment.astimezone(UTC)
