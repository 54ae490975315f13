"""`/start <token>`: a session's `botUrl` opens its payment card; `/start claim-<token>` binds a
subscription paid on the web page to this Telegram account; a bare `/start` says hello."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from aiogram import Bot, Router
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot import card_messages
from core.checkout.context import CheckoutContext
from core.telegram import claims, payer

router: Final = Router(name=__name__)

CLAIM_PREFIX = "claim-"


@router.message(CommandStart(deep_link=True))
async def start_with_token(
    message: Message,
    command: CommandObject,
    bot: Bot,
    db: AsyncSession,
    i18n: I18n,
    context: CheckoutContext,
    now: datetime,
) -> None:
    assert message.from_user is not None
    token = command.args or ""
    if token.startswith(CLAIM_PREFIX):
        subscription = await claims.redeem(
            db, token.removeprefix(CLAIM_PREFIX), telegram_user_id=message.from_user.id, now=now
        )
        await db.commit()
        await message.answer(_("claim.done").format(uuid=subscription.uuid))
        return
    checkout = await payer.open_by_token(db, token, telegram_user_id=message.from_user.id)
    await card_messages.show(
        bot,
        i18n,
        db,
        context,
        checkout,
        chat_id=message.chat.id,
        language=i18n.current_locale,
        now=now,
    )


@router.message(CommandStart())
async def start_plain(message: Message) -> None:
    await message.answer(_("start.welcome"))
