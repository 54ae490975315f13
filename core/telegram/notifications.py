"""What the bot does about each event: the bot's event consumer (`CONSUMER`) hands its batches here.

The bot learns of payments the way a merchant's webhook does: from the outbox, with its own
cursor (`core.events.consumers`). For each batch this decides, in the consumer's transaction,
what must happen in Telegram and queues it (`core.telegram.outbox`); nothing here calls
Telegram. Per event:
- a session's or payment's event: re-render that session's cards (the payer's live status);
- an invoice made in the bot paid, a subscription started, renewed, cancelled or ended, a
  webhook endpoint disabled: a message to each Telegram account linked to the organization in
  the event's mode (`/link`);
- a subscription started or renewed for a product bound to a paid chat: the subscriber's
  access (an invite link); a subscription ended: access removed.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import (
    CheckoutSession,
    Event,
    Product,
    Subscription,
    TelegramCard,
    TelegramMerchant,
)
from core.telegram import access, outbox

CONSUMER = "telegram-bot"

_MERCHANT_EVENTS = frozenset(
    {
        "session.completed",
        "subscription.created",
        "subscription.renewed",
        "subscription.cancelled",
        "subscription.expired",
        "webhook.endpoint_disabled",
    }
)
# Sessions made in the bot (`/invoice`, `/sublink`) or as Papaya invoices: their payment is news.
_INVOICE_SOURCES = frozenset({"bot", "invoice"})


async def handle(session: AsyncSession, events: Sequence[Event], *, now: datetime) -> None:
    session_ids = {e.session_id for e in events if e.session_id is not None}
    with_cards = (
        set(
            await session.scalars(
                select(TelegramCard.session_id).where(TelegramCard.session_id.in_(session_ids))
            )
        )
        if session_ids
        else set()
    )
    merchants = await _merchants(session, {(e.organization_id, e.test) for e in events})
    for event in events:
        if event.session_id in with_cards:
            await outbox.enqueue(
                session,
                key=f"card:{event.session_id}:event:{event.id}",
                kind=outbox.CARD,
                session_id=event.session_id,
                now=now,
            )
        if event.type in _MERCHANT_EVENTS:
            await _notify_merchants(session, event, merchants, now=now)
        if event.type in ("subscription.created", "subscription.renewed"):
            await _grant(session, event, now=now)
        elif event.type == "subscription.expired":
            await _revoke(session, event, now=now)


async def _merchants(
    session: AsyncSession, keys: set[tuple[int, bool]]
) -> dict[tuple[int, bool], list[int]]:
    """Linked Telegram accounts per (organization, test mode)."""
    found: dict[tuple[int, bool], list[int]] = {}
    organizations = {organization for organization, _ in keys}
    if not organizations:
        return found
    for merchant in await session.scalars(
        select(TelegramMerchant).where(TelegramMerchant.organization_id.in_(organizations))
    ):
        key = (merchant.organization_id, merchant.test)
        if key in keys:
            found.setdefault(key, []).append(merchant.telegram_user_id)
    return found


async def _notify_merchants(
    session: AsyncSession,
    event: Event,
    merchants: dict[tuple[int, bool], list[int]],
    *,
    now: datetime,
) -> None:
    chats = merchants.get((event.organization_id, event.test), [])
    if not chats:
        return
    data = json.loads(event.payload)
    params: dict[str, Any] = {"type": event.type}
    if event.type == "session.completed":
        checkout = (
            await session.get(CheckoutSession, event.session_id) if event.session_id else None
        )
        if checkout is None or checkout.source not in _INVOICE_SOURCES:
            return
        params |= {
            "product": checkout.product_name,
            "price": str(checkout.price_usd),
            "paid": str(checkout.paid_usd),
            "uuid": checkout.uuid,
        }
    elif event.type.startswith("subscription."):
        subscription = (
            await session.get(Subscription, event.subscription_id)
            if event.subscription_id
            else None
        )
        if subscription is None:
            return
        product = await session.get(Product, subscription.product_id)
        params |= {
            "product": product.name if product is not None else "",
            "uuid": subscription.uuid,
            "status": subscription.status,
            "until": subscription.current_period_end.isoformat()
            if subscription.current_period_end
            else None,
            "subscriber": subscription.telegram_user_id,
        }
    else:  # webhook.endpoint_disabled
        endpoint = data.get("data", data) if isinstance(data, dict) else {}
        params |= {"url": str(endpoint.get("url", "")), "reason": str(endpoint.get("reason", ""))}
    for chat_id in chats:
        await outbox.enqueue(
            session,
            key=f"notify:{event.id}:{chat_id}",
            kind=outbox.NOTIFY,
            chat_id=chat_id,
            session_id=event.session_id,
            subscription_id=event.subscription_id,
            payload={"message": "merchant." + event.type, **params},
            now=now,
        )


async def _paid_chat(session: AsyncSession, event: Event) -> tuple[Subscription, int] | None:
    if event.subscription_id is None:
        return None
    subscription = await session.get(Subscription, event.subscription_id)
    if subscription is None or subscription.telegram_user_id is None:
        return None
    product = await session.get(Product, subscription.product_id)
    if product is None or product.telegram_chat_id is None:
        return None
    return subscription, product.telegram_chat_id


async def _grant(session: AsyncSession, event: Event, *, now: datetime) -> None:
    found = await _paid_chat(session, event)
    if found is None:
        return
    subscription, chat_id = found
    await outbox.enqueue(
        session,
        key=f"grant:{event.id}",
        kind=outbox.ACCESS_GRANT,
        chat_id=chat_id,
        subscription_id=subscription.id,
        now=now,
    )


async def _revoke(session: AsyncSession, event: Event, *, now: datetime) -> None:
    if event.subscription_id is None:
        return
    subscription = await session.get(Subscription, event.subscription_id)
    if subscription is not None:
        await access.request_removal(session, subscription, now=now, reason=f"event:{event.id}")
