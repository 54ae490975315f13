"""`/subscriptions`: the payer's subscriptions with status and period end, "renew now" (the
payment card of the subscription's own address), and renewal reminders on or off."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Final

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot import card_messages
from bot.callbacks import SubscriptionAction
from bot.cards import when
from core.checkout.context import CheckoutContext
from core.models import CheckoutSession, TelegramUser
from core.telegram import payer

router: Final = Router(name=__name__)


@router.message(Command("subscriptions"))
async def list_subscriptions(message: Message, db: AsyncSession) -> None:
    assert message.from_user is not None
    found = await payer.subscriptions_of(db, message.from_user.id)
    person = await db.get(TelegramUser, message.from_user.id)
    reminders = person.reminders if person is not None else True
    await db.commit()
    if not found:
        await message.answer(_("subscriptions.none"))
        return
    lines = [_("subscriptions.title")]
    rows: list[list[InlineKeyboardButton]] = []
    for subscription, product in found:
        lines.append(
            _("subscriptions.line").format(
                product=html.escape(product),
                status=_("subscription_status." + subscription.status),
                until=when(subscription.current_period_end)
                if subscription.current_period_end
                else "—",
            )
        )
        if subscription.status != "expired":
            rows.append(
                [
                    InlineKeyboardButton(
                        text=_("button.renew").format(product=product[:30]),
                        callback_data=SubscriptionAction(
                            subscription_id=subscription.id, action="renew"
                        ).pack(),
                    )
                ]
            )
    first = found[0][0].id
    toggle = "reminders_off" if reminders else "reminders_on"
    rows.append(
        [
            InlineKeyboardButton(
                text=_("button." + toggle),
                callback_data=SubscriptionAction(subscription_id=first, action=toggle).pack(),
            )
        ]
    )
    lines.append(_("subscriptions.reminders_" + ("on" if reminders else "off")))
    await message.answer("\n".join(lines), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows))


@router.callback_query(SubscriptionAction.filter(F.action == "renew"))
async def renew(
    query: CallbackQuery,
    callback_data: SubscriptionAction,
    bot: Bot,
    db: AsyncSession,
    i18n: I18n,
    context: CheckoutContext,
    now: datetime,
) -> None:
    subscription = await payer.owned_subscription(
        db, callback_data.subscription_id, telegram_user_id=query.from_user.id
    )
    checkout = await db.get(CheckoutSession, subscription.session_id)
    assert checkout is not None
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    await card_messages.show(
        bot, i18n, db, context, checkout, chat_id=chat_id, language=i18n.current_locale, now=now
    )
    await query.answer()


@router.callback_query(SubscriptionAction.filter(F.action.in_({"reminders_on", "reminders_off"})))
async def toggle_reminders(
    query: CallbackQuery, callback_data: SubscriptionAction, db: AsyncSession, now: datetime
) -> None:
    await payer.owned_subscription(
        db, callback_data.subscription_id, telegram_user_id=query.from_user.id
    )
    enabled = callback_data.action == "reminders_on"
    await payer.set_reminders(db, query.from_user.id, enabled, now=now)
    await db.commit()
    await query.answer(_("answer.reminders_" + ("on" if enabled else "off")))
