"""`/subscriptions`: the payer's subscriptions with status and period end, "renew now" (the
payment card of the subscription's own address), cancel (at the period's end), and renewal
reminders on or off."""

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
from core.models import CheckoutSession, Product, TelegramUser
from core.subscriptions.schemas import LIVE_STATUSES, SubscriptionStatus
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
        if subscription.status == SubscriptionStatus.CANCELLED.value and subscription.ends_at:
            lines.append(
                _("subscriptions.line_cancelled").format(
                    product=html.escape(product), until=when(subscription.ends_at)
                )
            )
        else:
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
        if SubscriptionStatus(subscription.status) in LIVE_STATUSES:
            rows.append(
                [
                    InlineKeyboardButton(
                        text=_("button.cancel_subscription").format(product=product[:30]),
                        callback_data=SubscriptionAction(
                            subscription_id=subscription.id, action="cancel"
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


@router.callback_query(SubscriptionAction.filter(F.action == "cancel"))
async def cancel(
    query: CallbackQuery,
    callback_data: SubscriptionAction,
    bot: Bot,
    db: AsyncSession,
    now: datetime,
) -> None:
    """The subscriber cancels at the period's end: access stays until then."""
    subscription = await payer.cancel_subscription(
        db, callback_data.subscription_id, telegram_user_id=query.from_user.id, now=now
    )
    product = await db.get(Product, subscription.product_id)
    name = product.name if product is not None else ""
    until = subscription.ends_at or now
    await db.commit()
    await query.answer(_("answer.subscription_cancelled"))
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    await bot.send_message(
        chat_id=chat_id,
        text=_("subscriptions.cancelled").format(product=html.escape(name), until=when(until)),
    )
