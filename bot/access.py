"""Paid chats in Telegram: invite a subscriber, approve only them, remove them when access ends.

The invite link asks to join (`creates_join_request`), so a forwarded link lets nobody else
in: the join-request handler (`bot/handlers/channels.py`) approves only the subscriber. Where a
chat cannot take join requests, the link admits one member and expires in a day. A subscriber
already in the chat (a renewal) gets no new link. Removal is ban + unban: the person is out,
not banned (they can come back after paying again); an `until_date` is never set (Telegram
treats under 30 s as forever). The access row says `removing` before the ban, so a retry after
a failed unban lifts the bot's own ban, while a ban the chat's admins set stays.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramBadRequest
from aiogram.types import (
    ChatInviteLink,
    ChatMemberBanned,
    ChatMemberLeft,
    ChatMemberRestricted,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    ResultChatMemberUnion,
)
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.i18n import DEFAULT_LANGUAGE, in_language
from core.db import transaction
from core.models import Product, Subscription
from core.subscriptions.lifecycle import grants_access
from core.telegram import access, cards

log = structlog.get_logger(__name__)

SINGLE_USE_LINK_LIFETIME = timedelta(days=1)


async def grant(
    bot: Bot,
    i18n: I18n,
    sessionmaker: async_sessionmaker[AsyncSession],
    chat_id: int,
    subscription_id: int,
    *,
    now: datetime,
) -> None:
    """Send the subscriber an invite link to the product's chat (once per grant)."""
    async with transaction(sessionmaker) as db:
        subscription = await db.get(Subscription, subscription_id)
        if subscription is None or subscription.telegram_user_id is None:
            return
        if not grants_access(subscription, now):
            return
        product = await db.get(Product, subscription.product_id)
        user_id = subscription.telegram_user_id
        name = product.name if product is not None else ""
        language = await cards.language_of(db, user_id) or DEFAULT_LANGUAGE
        if await cards.is_blocked(db, user_id):
            return
    if _in_chat(await _member(bot, chat_id, user_id)):  # renewed while in: nothing to send
        async with transaction(sessionmaker) as db:
            subscription = await db.get(Subscription, subscription_id)
            assert subscription is not None
            await access.record_invite(db, subscription, chat_id, None, now=now, member=True)
        return
    link = await _invite_link(bot, chat_id, subscription_id, now=now)
    async with transaction(sessionmaker) as db:
        subscription = await db.get(Subscription, subscription_id)
        assert subscription is not None
        await access.record_invite(db, subscription, chat_id, link.invite_link, now=now)
    with in_language(i18n, language):
        text = _("access.invite").format(product=name)
        button = InlineKeyboardButton(text=_("button.join"), url=link.invite_link)
    await bot.send_message(
        chat_id=user_id, text=text, reply_markup=InlineKeyboardMarkup(inline_keyboard=[[button]])
    )


async def _invite_link(
    bot: Bot, chat_id: int, subscription_id: int, *, now: datetime
) -> ChatInviteLink:
    name = f"sub {subscription_id}"
    try:
        return await bot.create_chat_invite_link(
            chat_id=chat_id, name=name, creates_join_request=True
        )
    except TelegramBadRequest as exc:
        log.info("telegram_join_requests_unavailable", chat_id=chat_id, reason=exc.message)
        return await bot.create_chat_invite_link(
            chat_id=chat_id,
            name=name,
            member_limit=1,
            expire_date=now + SINGLE_USE_LINK_LIFETIME,
        )


async def revoke(
    bot: Bot,
    sessionmaker: async_sessionmaker[AsyncSession],
    chat_id: int,
    subscription_id: int,
    *,
    now: datetime,
) -> None:
    """Remove the subscriber from the chat (ban + unban), unless access came back meanwhile.
    Someone who already left is only marked; a failure is the caller's to retry."""
    async with transaction(sessionmaker) as db:
        row = await access.removal_of(db, subscription_id, chat_id, now=now)
        if row is None:
            return
        access_id, user_id = row.id, row.telegram_user_id
        ours = row.status == access.REMOVING  # an earlier try banned and did not unban
    member = await _member(bot, chat_id, user_id)
    if isinstance(member, ChatMemberBanned):
        if ours:
            await bot.unban_chat_member(chat_id=chat_id, user_id=user_id, only_if_banned=True)
    elif _in_chat(member) or member is None:  # unknown: the ban itself says what is wrong
        if member is not None and member.status in ("creator", "administrator"):
            log.warning("telegram_admin_not_removed", chat_id=chat_id, user_id=user_id)
        else:
            async with transaction(sessionmaker) as db:
                await access.start_removal(db, access_id, now=now)
            await bot.ban_chat_member(chat_id=chat_id, user_id=user_id)
            await bot.unban_chat_member(chat_id=chat_id, user_id=user_id, only_if_banned=True)
            log.info("telegram_member_removed", chat_id=chat_id, subscription_id=subscription_id)
    async with transaction(sessionmaker) as db:
        await access.mark_removed(db, access_id, now=now)


async def _member(bot: Bot, chat_id: int, user_id: int) -> ResultChatMemberUnion | None:
    """The person's membership now; None when Telegram would not say."""
    try:
        return await bot.get_chat_member(chat_id=chat_id, user_id=user_id)
    except TelegramBadRequest as exc:
        log.info("telegram_member_unknown", chat_id=chat_id, reason=exc.message)
        return None


def _in_chat(member: ResultChatMemberUnion | None) -> bool:
    if member is None or isinstance(member, (ChatMemberLeft, ChatMemberBanned)):
        return False
    if isinstance(member, ChatMemberRestricted):
        return member.is_member
    return True
