"""/help, /language, and the catch-all (included last)."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from aiogram import Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import SetLanguage
from bot.i18n import LANGUAGES, in_language
from core.telegram import payer

router: Final = Router(name=__name__)
fallback: Final = Router(name=__name__ + ".fallback")


@router.message(Command("help"))
async def help_(message: Message) -> None:
    await message.answer(_("help.text"))


@router.message(Command("language"))
async def language(message: Message) -> None:
    rows = [
        [
            InlineKeyboardButton(
                text=_("language.name." + code), callback_data=SetLanguage(code=code).pack()
            )
            for code in LANGUAGES
        ]
    ]
    await message.answer(
        _("language.choose"), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows)
    )


@router.callback_query(SetLanguage.filter())
async def set_language(
    query: CallbackQuery, callback_data: SetLanguage, db: AsyncSession, i18n: I18n, now: datetime
) -> None:
    if callback_data.code not in LANGUAGES:
        await query.answer()
        return
    await payer.set_language(db, query.from_user.id, callback_data.code, now=now)
    await db.commit()
    with in_language(i18n, callback_data.code):
        text = _("language.set")
    if query.message is not None:
        await query.message.answer(text)
    await query.answer()


@fallback.message()
async def anything_else(message: Message) -> None:
    if message.chat.type == "private":
        await message.answer(_("help.unknown"))


@fallback.callback_query()
async def stale_button(query: CallbackQuery) -> None:
    await query.answer(_("answer.stale_button"))
