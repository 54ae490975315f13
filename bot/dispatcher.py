"""The bot's composition: the Bot (aimed at CHAINPAY_TELEGRAM_API_URL), its Dispatcher with the
database and i18n middlewares, the FSM storage in the database, and the routers in order."""

from __future__ import annotations

from aiogram import Bot, Dispatcher, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.handlers import channels, common, errors, merchant, payment, start, subscriptions
from bot.i18n import ChainpayI18nMiddleware, create_i18n
from bot.middlewares.database import DatabaseMiddleware
from bot.storage import DatabaseStorage
from core.checkout.context import CheckoutContext

# The updates the handlers use (what getUpdates and setWebhook ask Telegram for).
UPDATE_TYPES = ["message", "callback_query", "chat_join_request", "my_chat_member"]


def create_bot(token: str, api_url: str) -> Bot:
    return Bot(
        token,
        session=AiohttpSession(api=TelegramAPIServer.from_base(api_url.rstrip("/"))),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


def create_dispatcher(
    sessionmaker: async_sessionmaker[AsyncSession],
    context: CheckoutContext,
    i18n: I18n | None = None,
) -> Dispatcher:
    i18n = i18n or create_i18n()
    dispatcher = Dispatcher(
        storage=DatabaseStorage(sessionmaker),
        context=context,
        sessionmaker=sessionmaker,
    )
    database = DatabaseMiddleware(sessionmaker, context.clock)
    # The database middleware runs first: it loads the person's chosen language for i18n's.
    for observer in (
        dispatcher.message,
        dispatcher.callback_query,
        dispatcher.chat_join_request,
        dispatcher.my_chat_member,
    ):
        observer.outer_middleware(database)
    ChainpayI18nMiddleware(i18n).setup(dispatcher)
    routers = [
        errors.router,
        start.router,
        payment.router,
        subscriptions.router,
        merchant.router,
        channels.router,
        common.router,
        common.fallback,  # the catch-all, last
    ]
    for router in routers:
        _detach(router)
    dispatcher.include_routers(*routers)
    return dispatcher


def _detach(router: Router) -> None:
    """Routers are module-level (one per handler module) and aiogram attaches a router to one
    parent: a new dispatcher (a restarted bot in the same process, the tests) takes them over."""
    parent = router.parent_router
    if parent is not None:
        parent.sub_routers.remove(router)
        router._parent_router = None
