"""The payment card's buttons: network, token, status, change network, cancel, trial, a fresh
session for an expired one. Each first checks the session belongs to the person pressing."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, Final

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import card_messages
from bot.callbacks import CardAction, PickChain, PickToken
from bot.cards import token_picker
from core.checkout.context import CheckoutContext
from core.models import CheckoutSession
from core.telegram import payer

router: Final = Router(name=__name__)


@router.callback_query(PickChain.filter())
async def pick_chain(
    query: CallbackQuery,
    callback_data: PickChain,
    bot: Bot,
    db: AsyncSession,
    i18n: I18n,
    context: CheckoutContext,
    sessionmaker: async_sessionmaker[AsyncSession],
    now: datetime,
) -> None:
    checkout = await payer.owned_session(
        db, callback_data.session_id, telegram_user_id=query.from_user.id
    )
    card = await payer.card(db, context, checkout, now=now)
    symbols = [q.symbol for q in card.quotes if q.chain_id == callback_data.chain_id]
    if len(symbols) == 1:  # one token on this network: nothing to choose
        await payer.choose_pair(
            db,
            checkout,
            callback_data.chain_id,
            _contract(card, callback_data.chain_id, symbols[0]),
        )
        await db.commit()
        await card_messages.refresh(bot, i18n, sessionmaker, context, checkout.id, now=now)
        await query.answer()
        return
    await db.commit()
    if query.message is not None:
        await bot.edit_message_reply_markup(
            chat_id=query.message.chat.id,
            message_id=query.message.message_id,
            reply_markup=token_picker(card, callback_data.chain_id),
        )
    await query.answer(_("answer.choose_token"))


@router.callback_query(PickToken.filter())
async def pick_token(
    query: CallbackQuery,
    callback_data: PickToken,
    bot: Bot,
    db: AsyncSession,
    i18n: I18n,
    context: CheckoutContext,
    sessionmaker: async_sessionmaker[AsyncSession],
    now: datetime,
) -> None:
    checkout = await payer.owned_session(
        db, callback_data.session_id, telegram_user_id=query.from_user.id
    )
    card = await payer.card(db, context, checkout, now=now)
    await payer.choose_pair(
        db,
        checkout,
        callback_data.chain_id,
        _contract(card, callback_data.chain_id, callback_data.symbol),
    )
    await db.commit()
    await card_messages.refresh(bot, i18n, sessionmaker, context, checkout.id, now=now)
    await query.answer()


async def _status(db: AsyncSession, checkout: CheckoutSession, **unused: Any) -> str:
    return _("status." + checkout.status)


async def _change(db: AsyncSession, checkout: CheckoutSession, **unused: Any) -> str | None:
    await payer.clear_pair(db, checkout)
    return None


async def _cancel(
    db: AsyncSession, checkout: CheckoutSession, *, now: datetime, **unused: Any
) -> str:
    await payer.cancel(db, checkout, now=now)
    return _("answer.cancelled")


async def _trial(
    db: AsyncSession,
    checkout: CheckoutSession,
    *,
    now: datetime,
    context: CheckoutContext,
    telegram_user_id: int,
) -> str:
    await payer.start_trial(db, context, checkout, telegram_user_id=telegram_user_id, now=now)
    return _("answer.payg_started" if checkout.payg else "answer.trial_started")


# What each card button does to its (owned) session before the card is brought up to date;
# each returns the short answer Telegram shows (None: none).
_CARD_ACTIONS: Final[dict[str, Callable[..., Awaitable[str | None]]]] = {
    "status": _status,
    "change": _change,
    "cancel": _cancel,
    "trial": _trial,
}


@router.callback_query(CardAction.filter(F.action.in_(set(_CARD_ACTIONS))))
async def card_action(
    query: CallbackQuery,
    callback_data: CardAction,
    bot: Bot,
    db: AsyncSession,
    i18n: I18n,
    context: CheckoutContext,
    sessionmaker: async_sessionmaker[AsyncSession],
    now: datetime,
) -> None:
    checkout = await payer.owned_session(
        db, callback_data.session_id, telegram_user_id=query.from_user.id
    )
    answer = await _CARD_ACTIONS[callback_data.action](
        db, checkout, now=now, context=context, telegram_user_id=query.from_user.id
    )
    await db.commit()
    await card_messages.refresh(bot, i18n, sessionmaker, context, checkout.id, now=now)
    await query.answer(answer)


@router.callback_query(CardAction.filter(F.action == "fresh"))
async def fresh_session(
    query: CallbackQuery,
    callback_data: CardAction,
    bot: Bot,
    db: AsyncSession,
    i18n: I18n,
    context: CheckoutContext,
    now: datetime,
) -> None:
    checkout = await payer.owned_session(
        db, callback_data.session_id, telegram_user_id=query.from_user.id
    )
    fresh = await payer.fresh_session(db, context, checkout)
    chat_id = query.message.chat.id if query.message is not None else query.from_user.id
    await card_messages.show(
        bot, i18n, db, context, fresh, chat_id=chat_id, language=i18n.current_locale, now=now
    )
    await query.answer()


def _contract(card: payer.PaymentCard, chain_id: int, symbol: str) -> str:
    for quote in card.quotes:
        if quote.chain_id == chain_id and quote.symbol == symbol:
            return quote.contract
    raise payer.PairNotAccepted()
