"""Claim tokens: a subscription paid on the web page, bound to a Telegram account afterwards.

The page's success state links to the bot (`/start claim-<token>`); the token works once, for
one day, and binds the subscription (and its session) to the account that opens it, which
then gets what a subscriber from Telegram gets (the paid chat's invite, `/subscriptions`).
Only the token's SHA-256 is stored.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import CheckoutSession, Product, Subscription, TelegramClaim
from core.telegram import outbox
from core.telegram.exceptions import ClaimInvalid

CLAIM_TTL = timedelta(days=1)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create(session: AsyncSession, subscription: Subscription, *, now: datetime) -> str:
    """A new one-time token for this subscription (fits Telegram's 64-character start
    parameter with its `claim-` prefix)."""
    token = secrets.token_urlsafe(24)
    session.add(
        TelegramClaim(
            token_hash=_hash(token),
            subscription_id=subscription.id,
            expires_at=now + CLAIM_TTL,
            created_at=now,
        )
    )
    await session.flush()
    return token


async def redeem(
    session: AsyncSession, token: str, *, telegram_user_id: int, now: datetime
) -> Subscription:
    """Bind the token's subscription to this account, once."""
    claim = await session.scalar(
        select(TelegramClaim).where(TelegramClaim.token_hash == _hash(token))
    )
    if claim is None or claim.used_at is not None or claim.expires_at <= now:
        raise ClaimInvalid()
    used = await session.execute(
        update(TelegramClaim)
        .where(TelegramClaim.id == claim.id, TelegramClaim.used_at.is_(None))
        .values(used_at=now, used_by_telegram_user_id=telegram_user_id)
    )
    if getattr(used, "rowcount", 0) != 1:
        raise ClaimInvalid()  # a concurrent redeem won
    subscription = await session.get(Subscription, claim.subscription_id)
    if subscription is None:
        raise ClaimInvalid()
    if subscription.telegram_user_id not in (None, telegram_user_id):
        raise ClaimInvalid()
    subscription.telegram_user_id = telegram_user_id
    checkout = await session.get(CheckoutSession, subscription.session_id)
    if checkout is not None and checkout.telegram_user_id is None:
        checkout.telegram_user_id = telegram_user_id
    product = await session.get(Product, subscription.product_id)
    if product is not None and product.telegram_chat_id is not None:
        await outbox.enqueue(
            session,
            key=f"grant:claim:{claim.id}",
            kind=outbox.ACCESS_GRANT,
            chat_id=product.telegram_chat_id,
            subscription_id=subscription.id,
            now=now,
        )
    await session.flush()
    return subscription
