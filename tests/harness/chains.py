"""Real EVM nodes for tests: anvil devnets, and watchers driven step by step against them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from chain.devnet import Devnet, DevnetError, ensure_anvil, running_devnet
from chain.watcher import ChainWatcher
from core.chains import ChainConfig, TokenConfig
from core.checkout.context import CheckoutContext
from core.config import Settings
from core.db import create_engine, create_sessionmaker
from tests.harness.databases import require_or_skip
from tests.harness.factories import test_settings


def require_anvil() -> None:
    """Skip (fail under CI=true) when anvil cannot be had."""
    try:
        ensure_anvil()
    except (DevnetError, OSError) as exc:
        require_or_skip(f"anvil is not available: {exc}")


def devnet_or_skip(**kwargs: Any) -> Iterator[Devnet]:
    require_anvil()
    with running_devnet(**kwargs) as devnet:
        yield devnet


def chain_configs(devnet: Devnet, *, confirmations: int = 2) -> list[ChainConfig]:
    return [
        ChainConfig(
            id=node.chain_id,
            name=f"Devnet {node.chain_id}",
            rpc_urls=(node.rpc_url,),
            confirmations=confirmations,
            test=True,
            tokens=(
                TokenConfig(
                    symbol="USDT",
                    contract=devnet.tokens[node.chain_id][0],
                    decimals=devnet.tokens[node.chain_id][1],
                ),
            ),
        )
        for node in devnet.nodes
    ]


def watcher_settings(database_url: str, devnet: Devnet, **overrides: Any) -> Settings:
    return test_settings(database_url, chains=chain_configs(devnet), **overrides)


async def drain_async(
    settings: Settings,
    *,
    max_steps: int = 200,
    context: CheckoutContext | None = None,
    **watcher_kwargs: Any,
) -> None:
    """Step a watcher per chain until none has work left (deterministic; no background task).
    `context`: the watcher's (a test's ManualClock in it), else one from `settings`."""
    engine = create_engine(settings.database_url)
    try:
        context = context or CheckoutContext.from_settings(settings)
        watchers = [
            ChainWatcher(
                chain, create_sessionmaker(engine), context, start_block=0, **watcher_kwargs
            )
            for chain in context.registry.chains.values()
        ]
        try:
            for _ in range(max_steps):
                busy = [await w.step() for w in watchers]
                if not any(busy):
                    break
            else:
                raise AssertionError("watchers still busy after max_steps")
        finally:
            for w in watchers:
                await w.close()
    finally:
        await engine.dispose()


def drain(settings: Settings, **kwargs: Any) -> None:
    asyncio.run(drain_async(settings, **kwargs))


@pytest.fixture(scope="module")
def devnet() -> Iterator[Devnet]:
    yield from devnet_or_skip()
