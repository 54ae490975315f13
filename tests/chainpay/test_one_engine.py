"""One process, one engine: `chainpay serve` runs start-up, the API, the watchers, the webhook
sender and the scheduler on a single connection pool."""

from __future__ import annotations

import asyncio
import os
import signal
from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

import core.db
from chainpay import roles
from core.chains import ChainConfig, TokenConfig
from core.checkout import service as checkout_service
from core.db import create_engine, create_sessionmaker, transaction
from tests.harness.factories import test_settings
from tests.harness.server import free_port

# Configured without decimals: start-up reads them from the database's cache.
UNLISTED_TOKEN = "0x000000000000000000000000000000000000bEEF"


async def _cache_decimals(url: str) -> None:
    engine = create_engine(url, pool=False)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            await checkout_service.remember_decimals(
                session,
                chain_id=31337,
                contract=UNLISTED_TOKEN,
                symbol="USDT",
                decimals=6,
                test=True,
            )
    finally:
        await engine.dispose()


def test_serve_runs_every_role_on_one_engine(
    fresh_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(_cache_decimals(fresh_url))
    chain = ChainConfig(
        id=31337,
        rpc_urls=("http://127.0.0.1:9",),  # nothing listens: the watcher only retries
        confirmations=2,
        test=True,
        tokens=(TokenConfig(symbol="USDT", contract=UNLISTED_TOKEN),),
    )
    settings = test_settings(fresh_url, chains=[chain])
    built: list[AsyncEngine] = []
    real = core.db.create_async_engine

    def counted(*args: Any, **kwargs: Any) -> AsyncEngine:
        engine = real(*args, **kwargs)
        built.append(engine)
        return engine

    monkeypatch.setattr(core.db, "create_async_engine", counted)
    port = free_port()

    async def main() -> dict[str, Any]:
        serving = asyncio.create_task(roles.serve(settings, host="127.0.0.1", port=port))
        health: dict[str, Any] = {}
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            for _ in range(300):  # the API answers once the scheduler has run its jobs once
                await asyncio.sleep(0.1)
                assert not serving.done(), serving.exception()
                try:
                    health = (await client.get("/health")).json()
                except httpx.TransportError:
                    continue
                if health.get("jobs"):
                    break
        os.kill(os.getpid(), signal.SIGTERM)  # serve's own handler stops it
        await asyncio.wait_for(serving, timeout=30)
        return health

    health = asyncio.run(main())
    assert health["jobs"], health
    assert len(built) == 1
