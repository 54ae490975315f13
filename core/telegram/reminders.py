"""Renewal reminders to a subscriber in Telegram, queued by the subscriptions' lifecycle job.

One outbox row per subscription, period end and reminder number (its dedupe key), so however
often the job passes, each reminder is queued once; the bot sends it unless the subscriber
turned reminders off (`/subscriptions`) or blocked the bot.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Product, Subscription
from core.telegram import outbox


async def queue(
    session: AsyncSession,
    subscription: Subscription,
    product: Product | None,
    number: int,
    *,
    amount_due: Decimal,
    now: datetime,
) -> bool:
    """Queue reminder `number` (0 = at the lead time) of the current period; False when the
    subscriber has no Telegram account to remind. A renewal reminder names the period end and
    what is still due for it; a pay-as-you-go one, the open bill and its deadline."""
    if subscription.telegram_user_id is None:
        return False
    end = subscription.current_period_end
    payload: dict[str, object] = {
        "message": "reminder.renewal",
        "product": product.name if product is not None else "",
        "price": str(subscription.price_usd),
        "amount": str(amount_due),
        "until": end.strftime("%Y-%m-%d %H:%M UTC"),
        "number": number,
    }
    if subscription.payg and subscription.bill_due_at is not None:
        end = subscription.bill_due_at
        payload["message"] = "reminder.payg_bill"
        payload["until"] = end.strftime("%Y-%m-%d %H:%M UTC")
    await outbox.enqueue(
        session,
        key=f"remind:{subscription.id}:{end.isoformat()}:{number}",
        kind=outbox.REMINDER,
        chat_id=subscription.telegram_user_id,
        subscription_id=subscription.id,
        payload=payload,
        now=now,
    )
    return True
