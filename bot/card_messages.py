"""Showing a session's card in a chat, and bringing every card of a session up to date.

Both read what they need in a transaction, commit it, and only then call Telegram (on SQLite
a transaction holds the write lock); what Telegram answered is written in a second one.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import BufferedInputFile, InputMediaPhoto, Message
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.cards import RenderedCard, render
from bot.i18n import in_language
from core.checkout.context import CheckoutContext
from core.db import transaction
from core.models import CheckoutSession
from core.telegram import cards, payer

log = structlog.get_logger(__name__)

# Telegram's wording for an edit that changes nothing, and for a message it no longer has.
NOT_MODIFIED = "message is not modified"
GONE = ("message to edit not found", "message can't be edited", "message_id_invalid")
# A 429 this short is waited out here, in a handler too (Telegram's usual flood waits are a
# second or two); a longer one propagates: the sender puts its row back until then, a
# handler's update ends in the errors router, which tells the person when to try again.
PATIENCE_SECONDS = 5

T = TypeVar("T")


async def show(
    bot: Bot,
    i18n: I18n,
    db: AsyncSession,
    context: CheckoutContext,
    checkout: CheckoutSession,
    *,
    chat_id: int,
    language: str,
    now: datetime,
) -> Message:
    """Send the session's card to `chat_id` as a new message (it replaces an older card of the
    session in that chat, which is deleted)."""
    card = await payer.card(db, context, checkout, now=now)
    old = await cards.in_chat(db, checkout.id, chat_id)
    old_message = old.message_id if old is not None else None
    await db.commit()
    with in_language(i18n, language):
        rendered = render(card, now)
    message = await _send(bot, chat_id, rendered)
    await cards.remember(
        db,
        session_id=checkout.id,
        chat_id=chat_id,
        message_id=message.message_id,
        language=language,
        fingerprint=rendered.fingerprint,
        now=now,
    )
    await db.commit()
    if old_message is not None and old_message != message.message_id:
        with contextlib.suppress(TelegramBadRequest, TelegramForbiddenError):
            await bot.delete_message(chat_id=chat_id, message_id=old_message)
    return message


async def refresh(
    bot: Bot,
    i18n: I18n,
    sessionmaker: async_sessionmaker[AsyncSession],
    context: CheckoutContext,
    session_id: int,
    *,
    now: datetime,
) -> tuple[int, int] | None:
    """Edit every card of the session to show its state now (nothing for an unchanged card).
    Returns the confirmations the card shows while a payment is confirming (the caller looks
    again soon), else None. A chat that blocked the bot is marked and the other cards still
    edited, then the 403 raised (the outbox sender gives the row up); short 429s are waited
    out; Telegram's other errors than "not modified" and a lost message propagate to the
    caller."""
    async with transaction(sessionmaker) as db:
        checkout = await db.get(CheckoutSession, session_id)
        if checkout is None:
            return None
        card = await payer.card(db, context, checkout, now=now)
        shown = [
            (c.id, c.chat_id, c.message_id, c.language, c.fingerprint)
            for c in await cards.of_session(db, session_id)
        ]
        blocked = {chat for _, chat, *_ in shown if await cards.is_blocked(db, chat)}
    forbidden: TelegramForbiddenError | None = None
    for card_id, chat_id, message_id, language, fingerprint in shown:
        if chat_id in blocked:
            continue
        with in_language(i18n, language):
            rendered = render(card, now)
        if rendered.fingerprint == fingerprint:
            continue
        try:
            new_message_id = await _edit(
                bot,
                chat_id,
                message_id,
                rendered,
                media=fingerprint is None or fingerprint[:32] != rendered.fingerprint[:32],
            )
        except TelegramForbiddenError as exc:  # this chat blocked the bot: the others still
            forbidden = forbidden or exc
            async with transaction(sessionmaker) as db:
                if chat_id > 0:
                    await cards.mark_blocked(db, chat_id, now=now)
            continue
        async with transaction(sessionmaker) as db:
            await cards.rendered(
                db, card_id, fingerprint=rendered.fingerprint, message_id=new_message_id, now=now
            )
    if forbidden is not None:
        raise forbidden
    return card.progress.confirmations


async def _patiently(call: Callable[[], Awaitable[T]]) -> T:
    """`call()`, again after each short 429 until PATIENCE_SECONDS are spent waiting."""
    waited = 0
    while True:
        try:
            return await call()
        except TelegramRetryAfter as exc:
            if waited + exc.retry_after > PATIENCE_SECONDS:
                raise
            log.info("telegram_retry_after", seconds=exc.retry_after)
            await asyncio.sleep(exc.retry_after)
            waited += exc.retry_after


async def _send(bot: Bot, chat_id: int, rendered: RenderedCard) -> Message:
    return await _patiently(
        lambda: bot.send_photo(
            chat_id=chat_id,
            photo=BufferedInputFile(rendered.qr_png(), filename="pay.png"),
            caption=rendered.caption,
            reply_markup=rendered.keyboard,
        )
    )


async def _edit(
    bot: Bot, chat_id: int, message_id: int, rendered: RenderedCard, *, media: bool
) -> int:
    """Edit the card's message; a message Telegram no longer has is sent anew. Returns the id of
    the message that shows the card now."""
    try:
        if media:
            await _patiently(
                lambda: bot.edit_message_media(
                    chat_id=chat_id,
                    message_id=message_id,
                    media=InputMediaPhoto(
                        media=BufferedInputFile(rendered.qr_png(), filename="pay.png"),
                        caption=rendered.caption,
                    ),
                    reply_markup=rendered.keyboard,
                )
            )
        else:
            await _patiently(
                lambda: bot.edit_message_caption(
                    chat_id=chat_id,
                    message_id=message_id,
                    caption=rendered.caption,
                    reply_markup=rendered.keyboard,
                )
            )
    except TelegramBadRequest as exc:
        text = str(exc).lower()
        if NOT_MODIFIED in text:
            return message_id
        if any(gone in text for gone in GONE):
            log.info("telegram_card_resent", chat_id=chat_id, reason=exc.message)
            return (await _send(bot, chat_id, rendered)).message_id
        raise
    return message_id
