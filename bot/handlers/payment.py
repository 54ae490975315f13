"""The payment card's buttons: network, token, status, change network, cancel, trial, a fresh
session for an expired one. Each first checks the session belongs to the person pressing."""

from __future__ import annotations

from datetime import datetime
from typing import Final

from aiogram import Bot, F, Router
from aiogram.types import CallbackQuery
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import card_messages
from bot.callbacks import CardAction, PickChain, PickToken
from bot.cards import token_picker
from core.checkout.context import CheckoutContext
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


@router.callback_query(CardAction.filter(F.action == "status"))
async def check_status(
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
    status = checkout.status
    await db.commit()
    await card_messages.refresh(bot, i18n, sessionmaker, context, checkout.id, now=now)
    await query.answer(_("status." + status))


@router.callback_query(CardAction.filter(F.action == "change"))
async def change_network(
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
    await payer.clear_pair(db, checkout)
    await db.commit()
    await card_messages.refresh(bot, i18n, sessionmaker, context, checkout.id, now=now)
    await query.answer()


@router.callback_query(CardAction.filter(F.action == "cancel"))
async def cancel(
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
    await payer.cancel(db, checkout, now=now)
    await db.commit()
    await card_messages.refresh(bot, i18n, sessionmaker, context, checkout.id, now=now)
    await query.answer(_("answer.cancelled"))


@router.callback_query(CardAction.filter(F.action == "trial"))
async def start_trial(
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
    await payer.start_trial(db, context, checkout, telegram_user_id=query.from_user.id, now=now)
    await db.commit()
    await card_messages.refresh(bot, i18n, sessionmaker, context, checkout.id, now=now)
    await query.answer(_("answer.trial_started"))


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
