"""The merchant's commands: /link, /unlink, /invoice, /sublink, /invoices, /bind."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Final

from aiogram import Bot, Router
from aiogram.exceptions import TelegramBadRequest, TelegramForbiddenError
from aiogram.filters import Command, CommandObject
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _
from sqlalchemy.ext.asyncio import AsyncSession

from bot.callbacks import InvoicesPage, SubLinkPeriod, SubLinkProduct
from bot.cards import usd
from core.checkout.context import CheckoutContext
from core.models import CheckoutSession
from core.telegram import links, merchant

router: Final = Router(name=__name__)

SUBSCRIPTION_PERIODS_DAYS = (7, 30, 90, 365)
# What the bot needs in a paid chat: invite (links, join requests) and remove members.
NEEDED_RIGHTS = ("can_invite_users", "can_restrict_members")


@router.message(Command("link"))
async def link(message: Message, command: CommandObject, db: AsyncSession, now: datetime) -> None:
    assert message.from_user is not None
    linked = await links.redeem_link_code(
        db, (command.args or "").strip(), telegram_user_id=message.from_user.id, now=now
    )
    await db.commit()
    key = "merchant.linked_test" if linked.test else "merchant.linked"
    await message.answer(_(key))


@router.message(Command("unlink"))
async def unlink(message: Message, db: AsyncSession) -> None:
    assert message.from_user is not None
    was = await links.unlink(db, message.from_user.id)
    await db.commit()
    await message.answer(_("merchant.unlinked" if was else "merchant.not_linked"))


def _links_text(checkout: CheckoutSession, context: CheckoutContext) -> str:
    lines = [
        _("merchant.invoice_created").format(
            product=html.escape(checkout.product_name), price=usd(checkout.price_usd)
        )
    ]
    bot_url = context.bot_url(checkout.bot_token)
    if bot_url:
        lines.append(_("merchant.bot_link").format(url=bot_url))
    lines.append(_("merchant.web_link").format(url=context.link(checkout.uuid)))
    if checkout.test:
        lines.append(_("card.test_mode"))
    return "\n".join(lines)


@router.message(Command("invoice"))
async def invoice(
    message: Message,
    command: CommandObject,
    db: AsyncSession,
    context: CheckoutContext,
) -> None:
    assert message.from_user is not None
    principal = await merchant.principal_of(db, message.from_user.id)
    amount_text, _sep, description = (command.args or "").strip().partition(" ")
    if not amount_text:
        await db.commit()
        await message.answer(_("merchant.invoice_usage"))
        return
    checkout = await merchant.create_invoice(
        db, context, principal, amount=merchant.parse_amount(amount_text), description=description
    )
    text = _links_text(checkout, context)
    await db.commit()
    await message.answer(text, disable_web_page_preview=True)


@router.message(Command("sublink"))
async def sublink(message: Message, db: AsyncSession) -> None:
    assert message.from_user is not None
    principal = await merchant.principal_of(db, message.from_user.id)
    found = await merchant.products(db, principal)
    rows = [
        [
            InlineKeyboardButton(
                text=f"{p.name[:40]} · {usd(p.price_usd)}",
                callback_data=SubLinkProduct(product_id=p.id).pack(),
            )
        ]
        for p in found[:20]
    ]
    await db.commit()
    if not rows:
        await message.answer(_("merchant.no_products"))
        return
    await message.answer(
        _("merchant.pick_product"), reply_markup=InlineKeyboardMarkup(inline_keyboard=rows)
    )


@router.callback_query(SubLinkProduct.filter())
async def sublink_product(
    query: CallbackQuery, callback_data: SubLinkProduct, bot: Bot, db: AsyncSession
) -> None:
    await merchant.principal_of(db, query.from_user.id)
    await db.commit()
    rows = [
        [
            InlineKeyboardButton(
                text=_("merchant.every_days").format(n=days),
                callback_data=SubLinkPeriod(product_id=callback_data.product_id, days=days).pack(),
            )
            for days in SUBSCRIPTION_PERIODS_DAYS
        ]
    ]
    if query.message is not None:
        await bot.edit_message_text(
            chat_id=query.message.chat.id,
            message_id=query.message.message_id,
            text=_("merchant.pick_period"),
            reply_markup=InlineKeyboardMarkup(inline_keyboard=rows),
        )
    await query.answer()


@router.callback_query(SubLinkPeriod.filter())
async def sublink_period(
    query: CallbackQuery,
    callback_data: SubLinkPeriod,
    bot: Bot,
    db: AsyncSession,
    context: CheckoutContext,
) -> None:
    principal = await merchant.principal_of(db, query.from_user.id)
    checkout = await merchant.create_subscription_link(
        db, context, principal, product_id=callback_data.product_id, days=callback_data.days
    )
    text = _links_text(checkout, context)
    await db.commit()
    if query.message is not None:
        await bot.edit_message_text(
            chat_id=query.message.chat.id,
            message_id=query.message.message_id,
            text=text,
            disable_web_page_preview=True,
        )
    await query.answer()


def _invoices_page(
    rows: list[CheckoutSession], total: int, page: int
) -> tuple[str, InlineKeyboardMarkup]:
    lines = [_("merchant.invoices_title").format(total=total)]
    for checkout in rows:
        lines.append(
            _("merchant.invoice_line").format(
                id=checkout.id,
                product=html.escape(checkout.product_name),
                price=usd(checkout.price_usd),
                status=_("status." + checkout.status),
            )
        )
    buttons = []
    if page > 0:
        buttons.append(
            InlineKeyboardButton(text="‹", callback_data=InvoicesPage(page=page - 1).pack())
        )
    if (page + 1) * merchant.INVOICES_PAGE < total:
        buttons.append(
            InlineKeyboardButton(text="›", callback_data=InvoicesPage(page=page + 1).pack())
        )
    return "\n".join(lines), InlineKeyboardMarkup(inline_keyboard=[buttons] if buttons else [])


@router.message(Command("invoices"))
async def invoices(message: Message, db: AsyncSession) -> None:
    assert message.from_user is not None
    principal = await merchant.principal_of(db, message.from_user.id)
    rows, total = await merchant.recent_invoices(db, principal, page=0)
    await db.commit()
    if total == 0:
        await message.answer(_("merchant.no_invoices"))
        return
    text, keyboard = _invoices_page(list(rows), total, 0)
    await message.answer(text, reply_markup=keyboard)


@router.callback_query(InvoicesPage.filter())
async def invoices_page(
    query: CallbackQuery, callback_data: InvoicesPage, bot: Bot, db: AsyncSession
) -> None:
    principal = await merchant.principal_of(db, query.from_user.id)
    rows, total = await merchant.recent_invoices(db, principal, page=callback_data.page)
    await db.commit()
    text, keyboard = _invoices_page(list(rows), total, callback_data.page)
    if query.message is not None:
        await bot.edit_message_text(
            chat_id=query.message.chat.id,
            message_id=query.message.message_id,
            text=text,
            reply_markup=keyboard,
        )
    await query.answer()


@router.message(Command("bind"))
async def bind(message: Message, command: CommandObject, bot: Bot, db: AsyncSession) -> None:
    """`/bind <chat id> <product id>`: subscribers of the product get into that chat."""
    assert message.from_user is not None
    principal = await merchant.principal_of(db, message.from_user.id)
    await db.commit()
    parts = (command.args or "").split()
    if len(parts) != 2 or not all(p.lstrip("-").isdigit() for p in parts):
        await message.answer(_("merchant.bind_usage"))
        return
    chat_id, product_id = int(parts[0]), int(parts[1])
    if not (0 < product_id < 2**63 and chat_id != 0 and abs(chat_id) < 2**63):
        await message.answer(_("merchant.bind_usage"))  # not ids a database or Telegram holds
        return
    me = await bot.get_me()
    try:
        member = await bot.get_chat_member(chat_id=chat_id, user_id=me.id)
    except (TelegramBadRequest, TelegramForbiddenError):
        # "chat not found", "bot is not a member": not an admin there, so every right is missing.
        names = ", ".join(_("right." + r) for r in NEEDED_RIGHTS)
        await message.answer(_("merchant.bind_missing_rights").format(rights=names))
        return
    missing = [
        right
        for right in NEEDED_RIGHTS
        if member.status != "creator" and not getattr(member, right, False)
    ]
    if member.status not in ("administrator", "creator") or missing:
        names = ", ".join(_("right." + r) for r in (missing or NEEDED_RIGHTS))
        await message.answer(_("merchant.bind_missing_rights").format(rights=names))
        return
    product = await merchant.bind_chat(db, principal, product_id=product_id, chat_id=chat_id)
    name = product.name
    await db.commit()
    await message.answer(_("merchant.bound").format(product=html.escape(name), chat=chat_id))
