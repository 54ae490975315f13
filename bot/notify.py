"""Messages the outbox asks for (`notify` rows): rendered in the recipient's language at send."""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import UTC, datetime

from aiogram import Bot
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.callbacks import SubscriptionAction
from bot.i18n import DEFAULT_LANGUAGE, in_language
from core.db import transaction
from core.models import TelegramUser
from core.telegram import cards


def _shown(name: str, value: object) -> str:
    """A parameter as the reader sees it: a subscription's status in words, a moment as a
    UTC date and time (the payload holds `status` and ISO `until` as the event saw them)."""
    if value is None:
        return ""
    if name == "status":
        key = f"subscription_status.{value}"
        words = _(key)
        return words if words != key else str(value)
    if name == "until":
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            return str(value)
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
        return moment.strftime("%Y-%m-%d %H:%M UTC")
    return str(value)


def text_of(payload: Mapping[str, object]) -> str:
    """The message for a payload `{"message": key, ...params}` in the current locale; the
    parameters are escaped (they hold merchants' product names and URLs)."""
    key = str(payload["message"])
    params = {k: html.escape(_shown(k, v)) for k, v in payload.items()}
    return _(key).format(**params)


async def send(
    bot: Bot,
    i18n: I18n,
    sessionmaker: async_sessionmaker[AsyncSession],
    chat_id: int,
    payload: Mapping[str, object],
) -> None:
    async with transaction(sessionmaker) as db:
        if await cards.is_blocked(db, chat_id):
            return
        language = await cards.language_of(db, chat_id) or str(
            payload.get("language") or DEFAULT_LANGUAGE
        )
    with in_language(i18n, language):
        text = text_of(payload)
    await bot.send_message(chat_id=chat_id, text=text)


async def send_reminder(
    bot: Bot,
    i18n: I18n,
    sessionmaker: async_sessionmaker[AsyncSession],
    chat_id: int,
    subscription_id: int,
    payload: Mapping[str, object],
) -> None:
    """A renewal reminder with a button to the subscription's payment card; nothing for a
    subscriber who turned reminders off or blocked the bot."""
    async with transaction(sessionmaker) as db:
        person = await db.get(TelegramUser, chat_id)
        if person is not None and (person.blocked_at is not None or not person.reminders):
            return
        language = (person.language if person is not None else None) or DEFAULT_LANGUAGE
    with in_language(i18n, language):
        text = text_of(payload)
        button = InlineKeyboardButton(
            text=_("button.renew").format(product=str(payload.get("product", ""))[:30]),
            callback_data=SubscriptionAction(
                subscription_id=subscription_id, action="renew"
            ).pack(),
        )
    await bot.send_message(
        chat_id=chat_id, text=text, reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]])
    )
