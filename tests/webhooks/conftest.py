"""Webhook tests share the run's database: each starts and ends with no delivery still pending,
so a sender run here only ever posts this test's events."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any

import pytest
from sqlalchemy import update

from core.config import Settings
from core.db import create_engine, create_sessionmaker, transaction
from core.models import WebhookDelivery
from core.models.base import utcnow
from core.webhooks.sender import WebhookSender
from tests.harness.receiver import Receiver, running_receiver


def settle_leftovers(database_url: str) -> None:
    async def run() -> None:
        engine = create_engine(database_url, pool=False)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                await session.execute(
                    update(WebhookDelivery)
                    .where(WebhookDelivery.status == "pending")
                    .values(status="failed", last_error="left over by another test")
                )
        finally:
            await engine.dispose()

    asyncio.run(run())


@pytest.fixture(autouse=True)
def no_pending_deliveries(database_url: str) -> Iterator[None]:
    settle_leftovers(database_url)
    yield
    settle_leftovers(database_url)


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


class Clock:
    """The sender's clock, moved by hand (signatures still carry the real time)."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


def send_due(
    database_url: str, settings: Settings, *, clock: Callable[[], datetime] = utcnow, **kw: Any
) -> int:
    """One sender pass over everything due at `clock()`; returns the attempts made."""

    async def run() -> int:
        engine = create_engine(database_url, pool=False)
        sender = WebhookSender(create_sessionmaker(engine), settings, clock=clock, **kw)
        try:
            return await sender.run_once()
        finally:
            await sender.close()
            await engine.dispose()

    return asyncio.run(run())
