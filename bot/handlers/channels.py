"""Paid chats: approve a join request only from a subscriber with access, decline others (in
chats bound to a product; elsewhere the chat's admins decide); tell a linked merchant who makes
the bot an admin how to bind the chat and which rights it lacks."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Final

from aiogram import Bot, Router
from aiogram.types import ChatJoinRequest, ChatMemberUpdated
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.handlers.merchant import NEEDED_RIGHTS
from core.telegram import access, links

router: Final = Router(name=__name__)


@router.chat_join_request()
async def join_request(request: ChatJoinRequest, bot: Bot, db: AsyncSession, now: datetime) -> None:
    admitted = await access.admit(db, request.chat.id, request.from_user.id, now=now)
    paid = admitted or await access.is_paid_chat(db, request.chat.id)
    await db.commit()
    if not paid:
        return  # a chat of the merchant's own that sells nothing: its admins decide
    if admitted:
        await bot.approve_chat_join_request(chat_id=request.chat.id, user_id=request.from_user.id)
    else:
        await bot.decline_chat_join_request(chat_id=request.chat.id, user_id=request.from_user.id)


@router.my_chat_member()
async def bot_promoted(update: ChatMemberUpdated, bot: Bot, db: AsyncSession) -> None:
    """The bot was added to (or promoted in) a chat: the linked merchant who did it learns the
    chat's id for `/bind` and which rights are missing."""
    if update.chat.type == "private" or update.new_chat_member.status not in (
        "administrator",
        "member",
    ):
        return
    linked = await links.merchant_of(db, update.from_user.id)
    await db.commit()
    if linked is None:
        return
    member = update.new_chat_member
    missing = [r for r in NEEDED_RIGHTS if not getattr(member, r, False)]
    title = html.escape(update.chat.title or "")  # the chat owner's text, in an HTML message
    text = _("merchant.chat_added").format(chat=update.chat.id, title=title)
    if missing:
        text += "\n" + _("merchant.bind_missing_rights").format(
            rights=", ".join(_("right." + r) for r in missing)
        )
    await bot.send_message(chat_id=update.from_user.id, text=text)
