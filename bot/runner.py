"""Running the bot: long polling (one replica) or a webhook server (any number of replicas),
beside its event consumer and its outbox sender, until `stop` is set.

Polling allows one process per bot token (Telegram ends a second `getUpdates`); the webhook
mode's aiohttp server checks `X-Telegram-Bot-Api-Secret-Token` (derived from the bot token,
so every replica agrees without another setting) and hands updates to the dispatcher. The
conversation state lives in the database (`bot.storage`), never in a replica's memory.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator
from urllib.parse import urlsplit

import structlog
from aiogram import Bot, Dispatcher
from aiogram.types import BotCommand, BotCommandScopeDefault
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.dispatcher import UPDATE_TYPES, create_bot, create_dispatcher
from bot.i18n import LANGUAGES, create_i18n, in_language
from bot.sender import OutboxSender, run_events
from core.checkout.context import CheckoutContext

log = structlog.get_logger(__name__)

COMMANDS = (
    "start",
    "subscriptions",
    "language",
    "help",
    "link",
    "invoice",
    "sublink",
    "invoices",
    "bind",
    "unlink",
)


def webhook_secret(token: str) -> str:
    """The secret Telegram sends with each webhook update: the same on every replica."""
    return hashlib.sha256(f"chainpay-telegram-webhook:{token}".encode()).hexdigest()


async def set_commands(bot: Bot, i18n: I18n) -> None:
    """The command menu in each language (and English for everyone else)."""
    for language in (None, *LANGUAGES):
        with in_language(i18n, language or "en"):
            commands = [
                BotCommand(command=name, description=_("command." + name)) for name in COMMANDS
            ]
        await bot.set_my_commands(commands, scope=BotCommandScopeDefault(), language_code=language)


async def run_bot(
    token: str,
    api_url: str,
    sessionmaker: async_sessionmaker[AsyncSession],
    context: CheckoutContext,
    stop: asyncio.Event,
    *,
    webhook_url: str | None = None,
    listen_host: str = "127.0.0.1",
    listen_port: int = 8081,
) -> None:
    i18n = create_i18n()
    bot = create_bot(token, api_url)
    dispatcher = create_dispatcher(sessionmaker, context, i18n)
    sender = OutboxSender(bot, i18n, sessionmaker, context)
    try:
        await set_commands(bot, i18n)
        # The webhook server stops last: its shutdown closes the bot's HTTP session, which
        # the sender may still be using until it has seen `stop`.
        async with contextlib.AsyncExitStack() as server:
            if webhook_url is not None:
                await server.enter_async_context(
                    _webhook(bot, dispatcher, token, webhook_url, listen_host, listen_port)
                )
            background = [
                asyncio.create_task(run_events(sessionmaker, context, stop), name="bot-events"),
                asyncio.create_task(sender.run(stop), name="bot-sender"),
            ]
            try:
                if webhook_url is None:
                    await _poll(bot, dispatcher, stop)
                else:
                    await stop.wait()
            finally:
                stop.set()
                await asyncio.gather(*background, return_exceptions=True)
    finally:
        await bot.session.close()


async def _poll(bot: Bot, dispatcher: Dispatcher, stop: asyncio.Event) -> None:
    await bot.delete_webhook(drop_pending_updates=False)
    log.info("telegram_bot_polling")
    polling = asyncio.create_task(
        dispatcher.start_polling(
            bot, handle_signals=False, close_bot_session=False, allowed_updates=UPDATE_TYPES
        ),
        name="bot-polling",
    )
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({polling, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not polling.done():
            with contextlib.suppress(RuntimeError):  # polling had not started yet
                await dispatcher.stop_polling()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(polling, timeout=5)
        stopping.cancel()
    if polling.done() and not polling.cancelled() and polling.exception() is not None:
        raise polling.exception()  # type: ignore[misc]


@contextlib.asynccontextmanager
async def _webhook(
    bot: Bot,
    dispatcher: Dispatcher,
    token: str,
    url: str,
    host: str,
    port: int,
) -> AsyncIterator[None]:
    """The aiohttp server Telegram posts updates to, and the webhook set at Telegram, for the
    block."""
    secret = webhook_secret(token)
    app = web.Application()
    path = urlsplit(url).path or "/"
    SimpleRequestHandler(dispatcher=dispatcher, bot=bot, secret_token=secret).register(
        app, path=path
    )
    setup_application(app, dispatcher, bot=bot)
    runner = web.AppRunner(app)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host=host, port=port)
        await site.start()
        await bot.set_webhook(url, secret_token=secret, allowed_updates=UPDATE_TYPES)
        log.info("telegram_bot_webhook", url=url, listen=f"{host}:{port}{path}")
        yield
    finally:
        await runner.cleanup()
