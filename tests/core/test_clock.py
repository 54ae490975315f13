"""The injectable clock: system time in production, a clock tests move instead of sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from core.checkout.context import CheckoutContext
from core.clock import Clock, FixedClock, ManualClock, SystemClock
from core.config import Settings

START = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


def test_system_clock_is_timezone_aware_utc_and_current() -> None:
    before = datetime.now(UTC)
    now = SystemClock().now()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)
    assert before <= now <= datetime.now(UTC)


def test_manual_clock_only_moves_when_told() -> None:
    clock = ManualClock(START)
    assert clock.now() == START
    assert clock.now() == START
    assert clock.advance(minutes=61) == START + timedelta(minutes=61)
    assert clock.advance(timedelta(seconds=1)) == START + timedelta(minutes=61, seconds=1)
    clock.set(START)
    assert clock.now() == START
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(timedelta(seconds=-1))


def test_clocks_refuse_naive_times_and_normalise_to_utc() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ManualClock(datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(ValueError, match="timezone-aware"):
        FixedClock(datetime(2026, 1, 1))  # noqa: DTZ001
    moscow = timezone(timedelta(hours=3))
    fixed = FixedClock(datetime(2026, 1, 1, 15, 0, tzinfo=moscow))
    assert fixed.now() == datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
    assert fixed.now().tzinfo == UTC


def test_every_clock_satisfies_the_protocol() -> None:
    for clock in (SystemClock(), FixedClock(START), ManualClock(START)):
        assert isinstance(clock, Clock)


def test_checkout_context_carries_the_process_clock() -> None:
    context = CheckoutContext.from_settings(Settings())
    assert isinstance(context.clock, SystemClock)
    clock = ManualClock(START)
    assert CheckoutContext.from_settings(Settings(), clock=clock).clock is clock
