"""Process roles. `serve` runs every role in one process; the others run one each.

Every role stops the same way on SIGTERM (systemd, Docker, Kubernetes) and SIGINT (Ctrl-C):
it stops taking work, lets what is in flight finish for up to SHUTDOWN_GRACE_SECONDS (a
watcher's step commits or, cancelled, rolls back; webhook posts are recorded or handed back),
gives back its watcher and job leases so a successor takes over at once, closes its engine
and exits with 0. A second signal exits at once (128 + the signal's number).

A process builds one engine and one clock (`_process`) and hands them to every part it runs:
start-up reads, the API, the watchers, the sender and the scheduler share one pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import sys
from collections.abc import AsyncIterator, Coroutine, Iterator, Sequence
from datetime import timedelta
from typing import Any

import structlog
import uvicorn
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from api.app import create_app
from chain.watcher import ChainWatcher
from chainpay import startup
from chainpay.scheduler import JobScheduler, default_jobs
from core.checkout.context import CheckoutContext, SessionCreatedHook
from core.clock import Clock, DatabaseClock, SystemClock
from core.config import Settings
from core.db import create_engine, create_sessionmaker
from core.webhooks.sender import WebhookSender

log = structlog.get_logger(__name__)

# Under Docker's default 10 s between SIGTERM and SIGKILL, with room for the rest of the exit.
SHUTDOWN_GRACE_SECONDS = 5.0


def run(main: Coroutine[Any, Any, None]) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main)


def _stop_on_signals(stop: asyncio.Event) -> None:
    """The first SIGTERM or SIGINT sets `stop`; a second one exits at once."""
    loop = asyncio.get_running_loop()

    def handle(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("shutdown_forced", signal=sig.name)
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(128 + sig.value)
        log.info("shutdown_requested", signal=sig.name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, handle, sig)


class _Server(uvicorn.Server):
    """uvicorn without signal handling of its own: the role's handlers stop it.

    uvicorn's own handlers re-raise the signal once the server has shut down, which ends the
    process with -15 before the watchers and the sender have stopped and given back leases.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


async def _serve_until(server: uvicorn.Server, stop: asyncio.Event) -> None:
    """Run `server` until `stop` is set (then it finishes requests in flight and returns)."""

    async def stopper() -> None:
        await stop.wait()
        server.should_exit = True

    stopping = asyncio.create_task(stopper())
    try:
        await server.serve()
    finally:
        stopping.cancel()


async def _wind_down(tasks: Sequence[asyncio.Task[None]], stop: asyncio.Event) -> None:
    """Wait for `tasks`; once `stop` is set they get SHUTDOWN_GRACE_SECONDS to finish, then
    what is left is cancelled. Re-raises the first task's failure."""
    pending: set[asyncio.Task[Any]] = set(tasks)
    stopping = asyncio.create_task(stop.wait())
    failed = False
    try:
        while pending and not stop.is_set() and not failed:
            done, pending = await asyncio.wait(
                pending | {stopping}, return_when=asyncio.FIRST_COMPLETED
            )
            pending.discard(stopping)
            failed = any(t is not stopping and _failed(t) for t in done)
        if pending and not failed:
            _, pending = await asyncio.wait(pending, timeout=SHUTDOWN_GRACE_SECONDS)
            for task in pending:
                log.warning("shutdown_cancelled_in_flight", task=task.get_name())
    finally:
        stopping.cancel()
        for task in tasks:
            task.cancel()  # no-op for those already done
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, Exception):
            raise result


def _failed(task: asyncio.Task[Any]) -> bool:
    return not task.cancelled() and task.exception() is not None


def _api_server(
    settings: Settings,
    context: CheckoutContext,
    sessionmaker: async_sessionmaker[AsyncSession],
    host: str | None,
    port: int | None,
) -> uvicorn.Server:
    app = create_app(settings, sessionmaker, checkout_context=context)
    config = uvicorn.Config(
        app,
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level,
        proxy_headers=True,
        server_header=False,
        timeout_graceful_shutdown=int(SHUTDOWN_GRACE_SECONDS),
    )
    return _Server(config)


@contextlib.asynccontextmanager
async def _process(
    settings: Settings,
) -> AsyncIterator[tuple[async_sessionmaker[AsyncSession], CheckoutContext]]:
    """The process's one engine (as a sessionmaker) and its checkout context, which carries the
    process's one clock; the engine is closed (and a database clock stopped) on the way out."""
    engine = create_engine(settings.database_url)
    clock_stop = asyncio.Event()
    refreshing: asyncio.Task[None] | None = None
    try:
        sessionmaker = create_sessionmaker(engine)
        clock: Clock = SystemClock()
        if settings.clock == "database":
            database_clock = DatabaseClock(sessionmaker)
            await database_clock.refresh()
            refreshing = asyncio.create_task(database_clock.run(clock_stop), name="clock")
            clock = database_clock
        yield sessionmaker, await startup.checkout_context(settings, sessionmaker, clock=clock)
    finally:
        clock_stop.set()
        if refreshing is not None:
            await refreshing
        await engine.dispose()


async def api(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """The HTTP API under uvicorn until SIGINT/SIGTERM."""
    stop = asyncio.Event()
    _stop_on_signals(stop)
    async with _process(settings) as (sessionmaker, context):
        if not stop.is_set():
            await _serve_until(_api_server(settings, context, sessionmaker, host, port), stop)


async def run_watchers(
    settings: Settings,
    stop: asyncio.Event,
    context: CheckoutContext,
    sessionmaker: async_sessionmaker[AsyncSession],
) -> None:
    """One watcher task per configured chain with RPC URLs, until `stop` is set.

    Each watcher finishes its step (or, past the grace, has it cancelled and rolled back) and
    gives back its lease on the way out.
    """
    chains = [c for c in context.registry.chains.values() if c.rpc_urls]
    if not chains:
        log.info("watcher_no_chains")
        await stop.wait()
        return
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
    await _wind_down(
        [asyncio.create_task(w.run(stop), name=f"watcher-{w.chain.id}") for w in watchers],
        stop,
    )


async def watcher(settings: Settings) -> None:
    """Only the chain watchers (scale-out role; a lease keeps one active per chain)."""
    stop = asyncio.Event()
    _stop_on_signals(stop)
    async with _process(settings) as (sessionmaker, context):
        await run_watchers(settings, stop, context, sessionmaker)


def _scheduler(
    settings: Settings, context: CheckoutContext, sessionmaker: async_sessionmaker[AsyncSession]
) -> JobScheduler:
    return JobScheduler(
        sessionmaker,
        default_jobs(settings, context),
        context.clock,
        lease_ttl=timedelta(seconds=settings.job_lease_seconds),
    )


async def worker(settings: Settings) -> None:
    """The webhook sender and the periodic jobs (scale-out role; senders share the outbox
    without overlap, and a named lease runs each job in one worker at a time)."""
    stop = asyncio.Event()
    _stop_on_signals(stop)
    async with _process(settings) as (sessionmaker, context):
        if stop.is_set():
            return
        sender = WebhookSender(sessionmaker, settings, clock=context.clock.now)
        await _wind_down(
            [
                asyncio.create_task(sender.run(stop), name="webhook-sender"),
                asyncio.create_task(
                    _scheduler(settings, context, sessionmaker).run(stop), name="scheduler"
                ),
            ],
            stop,
        )


async def run_telegram_bot(
    settings: Settings,
    stop: asyncio.Event,
    context: CheckoutContext,
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    webhook_url: str | None = None,
    listen_host: str = "127.0.0.1",
    listen_port: int = 8081,
) -> None:
    """The Telegram bot (polling, or a webhook server) with its event consumer and sender;
    without CHAINPAY_TELEGRAM_BOT_TOKEN it says so once and waits for `stop`."""
    if not settings.telegram_bot_token:
        log.info("telegram_bot_skipped", reason="CHAINPAY_TELEGRAM_BOT_TOKEN is not set")
        await stop.wait()
        return
    from bot.runner import run_bot  # aiogram: imported when a bot runs

    await run_bot(
        settings.telegram_bot_token,
        settings.telegram_api_url,
        sessionmaker,
        context,
        stop,
        webhook_url=webhook_url,
        listen_host=listen_host,
        listen_port=listen_port,
    )


async def telegram_bot(
    settings: Settings,
    *,
    webhook_url: str | None = None,
    listen_host: str = "127.0.0.1",
    listen_port: int = 8081,
) -> None:
    """Only the Telegram bot (scale-out role: one polling replica, or any number in webhook
    mode)."""
    stop = asyncio.Event()
    _stop_on_signals(stop)
    async with _process(settings) as (sessionmaker, context):
        if not stop.is_set():
            await run_telegram_bot(
                settings,
                stop,
                context,
                sessionmaker,
                webhook_url=webhook_url,
                listen_host=listen_host,
                listen_port=listen_port,
            )


async def serve(
    settings: Settings,
    *,
    host: str | None = None,
    port: int | None = None,
    stop: asyncio.Event | None = None,
    on_session_created: SessionCreatedHook | None = None,
) -> None:
    """Everything in one asyncio process: the API, a watcher per chain, the webhook sender,
    the periodic jobs and (with a token) the Telegram bot.

    `stop` (default: a new one) also ends it when set by the caller (`chainpay demo`);
    `on_session_created` is told of each new session (the devnet's log line)."""
    stop = stop if stop is not None else asyncio.Event()
    _stop_on_signals(stop)
    async with _process(settings) as (sessionmaker, context):
        if stop.is_set():
            return
        if on_session_created is not None:
            context = dataclasses.replace(context, on_session_created=on_session_created)
        sender = WebhookSender(sessionmaker, settings, clock=context.clock.now)
        # The API's commits wake the sender (same process).
        server = _api_server(settings, context, sessionmaker, host, port)
        background = [
            asyncio.create_task(
                run_watchers(settings, stop, context, sessionmaker), name="watchers"
            ),
            asyncio.create_task(sender.run(stop), name="webhook-sender"),
            asyncio.create_task(
                _scheduler(settings, context, sessionmaker).run(stop), name="scheduler"
            ),
            asyncio.create_task(
                run_telegram_bot(settings, stop, context, sessionmaker), name="telegram-bot"
            ),
        ]
        try:
            await _serve_until(server, stop)
        finally:
            stop.set()
            await _wind_down(background, stop)
