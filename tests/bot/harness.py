"""The bot under test: the real dispatcher, polling loop, event consumer and sender
(`bot.runner.run_bot`) in this process, against the fake Bot API server over HTTP."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.runner import run_bot
from core.checkout import service as checkout_service
from core.checkout.context import CheckoutContext
from core.checkout.schemas import SessionCreate
from core.clock import Clock
from core.config import Settings
from core.db import create_engine, create_sessionmaker, transaction
from core.models import CheckoutSession
from core.orgs.schemas import Principal, Role
from tests.harness.factories import Tenant
from tests.harness.fake_telegram import FakeTelegram

TOKEN = "4242:TEST-TOKEN"


@dataclass
class RunningBot:
    settings: Settings
    context: CheckoutContext
    sessionmaker: Any
    fake: FakeTelegram

    async def create_session(
        self, tenant: Tenant, *, test: bool = True, source: str = "api", **data: Any
    ) -> CheckoutSession:
        principal = Principal(
            api_key_id=0,
            organization_id=tenant.organization_id,
            user_id=tenant.owner_id,
            role=Role.OWNER,
            test=test,
        )
        body = {"product_name": "Ebook", "description": "PDF", "price": Decimal("10")} | data
        async with transaction(self.sessionmaker) as db:
            return await checkout_service.create_session(
                db, principal, self.context, SessionCreate(**body), source=source
            )

    async def create_product(
        self, tenant: Tenant, *, test: bool = True, name: str = "Club", price: str = "5"
    ) -> int:
        from core.catalog import service as catalog_service
        from core.catalog.schemas import ProductCreate

        principal = Principal(
            api_key_id=0,
            organization_id=tenant.organization_id,
            user_id=tenant.owner_id,
            role=Role.OWNER,
            test=test,
        )
        async with transaction(self.sessionmaker) as db:
            product = await catalog_service.create_product(
                db, principal, ProductCreate(name=name, description=name, price=Decimal(price))
            )
            return product.id

    async def reload(self, session_id: int) -> CheckoutSession:
        async with self.sessionmaker() as db:
            found = await db.get(CheckoutSession, session_id)
            assert found is not None
            return found


@contextlib.asynccontextmanager
async def running_bot(
    settings: Settings,
    base_url: str,
    fake: FakeTelegram,
    *,
    clock: Clock | None = None,
    **options: Any,
) -> AsyncIterator[RunningBot]:
    """`clock`: the bot's one source of `now` (a test's ManualClock), else the system's."""
    engine = create_engine(settings.database_url)
    sessionmaker = create_sessionmaker(engine)
    context = CheckoutContext.from_settings(settings, clock=clock)
    stop = asyncio.Event()
    task = asyncio.create_task(run_bot(TOKEN, base_url, sessionmaker, context, stop, **options))
    try:
        await fake.await_call("setMyCommands", timeout=10)
        yield RunningBot(settings, context, sessionmaker, fake)
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, timeout=10)
        finally:
            await engine.dispose()
