"""Process roles. `serve` runs every role in one process; the others run one each."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Coroutine
from datetime import timedelta
from typing import Any

import structlog
import uvicorn

from api.app import create_app
from chain.watcher import ChainWatcher
from chainpay import startup
from core.checkout.context import CheckoutContext
from core.config import Settings
from core.db import create_engine, create_sessionmaker
from core.webhooks.sender import WebhookSender

log = structlog.get_logger(__name__)


def run(main: Coroutine[Any, Any, None]) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main)


def _api_server(
    settings: Settings,
    context: CheckoutContext,
    host: str | None,
    port: int | None,
    sender: WebhookSender | None = None,
) -> uvicorn.Server:
    app = create_app(settings, checkout_context=context)
    app.state.webhook_sender = sender  # the API wakes it when a test delivery is queued
    config = uvicorn.Config(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level,
        proxy_headers=True,
        server_header=False,
    )
    return uvicorn.Server(config)


async def api(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """The HTTP API under uvicorn until SIGINT/SIGTERM."""
    context = await startup.checkout_context(settings)
    await _api_server(settings, context, host, port).serve()


async def run_watchers(
    settings: Settings, stop: asyncio.Event, context: CheckoutContext | None = None
) -> None:
    """One watcher task per configured chain with RPC URLs, until `stop` is set."""
    context = context or await startup.checkout_context(settings)
    chains = [c for c in context.registry.chains.values() if c.rpc_urls]
    if not chains:
        log.info("watcher_no_chains")
        await stop.wait()
        return
    engine = create_engine(settings.database_url)
    try:
        sessionmaker = create_sessionmaker(engine)
        watchers = [
            ChainWatcher(
                chain,
                sessionmaker,
                context,
                poll_interval=settings.watcher_poll_seconds,
                lease_ttl=timedelta(seconds=settings.watcher_lease_seconds),
                start_block=settings.watcher_start_block,
                initial_lookback=settings.watcher_lookback_blocks,
                chunk_blocks=settings.watcher_chunk_blocks,
                max_chunk_blocks=settings.watcher_max_chunk_blocks,
            )
            for chain in chains
        ]
        log.info("watchers_started", chains=[c.id for c in chains])
        await asyncio.gather(*(w.run(stop) for w in watchers))
    finally:
        await engine.dispose()


async def watcher(settings: Settings) -> None:
    """Only the chain watchers (scale-out role; a lease keeps one active per chain)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_watchers(settings, stop)


async def run_sender(
    settings: Settings, stop: asyncio.Event, sender: WebhookSender | None = None
) -> None:
    """The webhook sender until `stop` is set."""
    engine = create_engine(settings.database_url)
    try:
        sender = sender or WebhookSender(create_sessionmaker(engine), settings)
        await sender.run(stop)
    finally:
        await engine.dispose()


async def worker(settings: Settings) -> None:
    """Only the webhook sender (scale-out role; senders share the outbox without overlap)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await run_sender(settings, stop)


async def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Everything in one asyncio process: the API, a watcher per chain, the webhook sender."""
    stop = asyncio.Event()
    context = await startup.checkout_context(settings)
    engine = create_engine(settings.database_url)
    sender = WebhookSender(create_sessionmaker(engine), settings)
    server = _api_server(settings, context, host, port, sender)
    watchers = asyncio.create_task(run_watchers(settings, stop, context))
    sending = asyncio.create_task(sender.run(stop))
    try:
        await server.serve()
    finally:
        stop.set()
        await asyncio.gather(watchers, sending, return_exceptions=True)
        await engine.dispose()
