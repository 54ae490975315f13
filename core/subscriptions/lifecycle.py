"""A subscription on the clock: renewal request, reminders, past due, expiry.

Payments are pushed by the payer, so chainpay asks for each renewal: a lead time before the
period ends (3 days by default, never more than a third of the period) it opens a renewal
request (`subscription.renewal_due`, once per period) and queues the subscriber's reminders
(at the lead time, a day before, on the last hours; each once, a missed one sent late rather
than never). A period end without payment makes it `past_due` for a grace period (3 days by
default or the product's, the same one-third rule), then `expired` (access removed,
`subscription.expired`). A cancelled subscription keeps access until its `ends_at`, then
expires. Payments (`core.subscriptions.service.settle`) extend it from the previous period end.

Each subscription carries `next_action_at`, the moment its next step is due; the
`subscriptions.lifecycle` job takes the due ones (locked, in id order), does every step that
is due by `now` (a worker back from a downtime catches up in one go) and sets the next one.
Every step is decided on the locked row and recorded on it, so two workers never emit an event
or queue a reminder twice. The pure rules are here, separate from the I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from core.models import CheckoutSession, Product, Subscription
from core.subscriptions.policy import Policy
from core.subscriptions.schemas import SubscriptionStatus

# Reminders before the period end: at the lead time, a day before, and in the last hours.
REMINDER_OFFSETS = (None, timedelta(days=1), timedelta(hours=3))


_ACCESS = frozenset(
    {SubscriptionStatus.TRIAL, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE}
)


def grants_access(subscription: Subscription, now: datetime) -> bool:
    """Access right now (Papaya's `isActive`, the paid chat): trial, active, past due (within
    grace: after it the subscription is expired), or cancelled until its access ends."""
    status = SubscriptionStatus(subscription.status)
    if status in _ACCESS:
        return True
    end = subscription.ends_at
    return status == SubscriptionStatus.CANCELLED and end is not None and end > now


def subscription_for(checkout: CheckoutSession, **fields: Any) -> Subscription:
    """A new subscription of a subscription session: its owner, product, payer, locked price,
    period and address from the session; `fields` the rest (status, period end, anchor, ...)."""
    assert checkout.product_id is not None
    assert checkout.frequency_seconds is not None
    base: dict[str, Any] = {
        "organization_id": checkout.organization_id,
        "created_by_user_id": checkout.created_by_user_id,
        "test": checkout.test,
        "session_id": checkout.id,
        "product_id": checkout.product_id,
        "customer_id": checkout.customer_id,
        "telegram_user_id": checkout.telegram_user_id,
        "price_usd": checkout.price_usd,
        "frequency_seconds": checkout.frequency_seconds,
        "min_periods": checkout.min_periods,
        "periods_paid": 0,
        "deposit_address": checkout.deposit_address,
        "anchor_paid_usd": Decimal(0),
    }
    return Subscription(**(base | fields))


def third(frequency_seconds: int) -> timedelta:
    return timedelta(seconds=frequency_seconds / 3)


def lead_for(subscription: Subscription, policy: Policy) -> timedelta:
    return min(policy.lead, third(subscription.frequency_seconds))


def grace_for(subscription: Subscription, product: Product | None, policy: Policy) -> timedelta:
    chosen = (
        timedelta(seconds=product.grace_seconds)
        if product is not None and product.grace_seconds is not None
        else policy.grace
    )
    return min(chosen, third(subscription.frequency_seconds))


def reminder_times(period_end: datetime, lead: timedelta) -> list[datetime]:
    """When the reminders of one period are due, earliest first (never before the lead time;
    offsets longer than the lead are scaled into it, so a daily subscription gets three too)."""
    offsets: list[timedelta] = []
    for offset in REMINDER_OFFSETS:
        chosen = lead if offset is None else min(offset, lead * (1 - len(offsets) / 3))
        if chosen not in offsets and chosen > timedelta(0):
            offsets.append(chosen)
    return [period_end - offset for offset in offsets]


@dataclass(frozen=True, slots=True)
class Step:
    """What one pass decided: events to emit (type, previous status) and reminders to queue."""

    events: list[tuple[str, str]]
    reminders: list[int]  # reminder numbers (0-based) of the current period, to queue now


def decide(
    subscription: Subscription, product: Product | None, policy: Policy, now: datetime
) -> Step:
    """Apply every step due by `now` to the (locked) subscription; set its next step."""
    events: list[tuple[str, str]] = []
    reminders: list[int] = []
    status = SubscriptionStatus(subscription.status)
    end = subscription.current_period_end
    if status in (SubscriptionStatus.TRIAL, SubscriptionStatus.ACTIVE):
        times = reminder_times(end, lead_for(subscription, policy))
        if subscription.renewal_due_for != end:
            subscription.renewal_due_for = None
            subscription.reminders_sent = 0
        due = sum(1 for at in times if at <= now)
        if due > 0 and subscription.renewal_due_for is None:
            subscription.renewal_due_for = end
            events.append(("subscription.renewal_due", status.value))
        if due > subscription.reminders_sent:
            reminders.extend(range(subscription.reminders_sent, due))
            subscription.reminders_sent = due
        if end <= now:
            subscription.status = SubscriptionStatus.PAST_DUE.value
            subscription.past_due_at = end
            subscription.updated_at = now
            events.append(("subscription.past_due", status.value))
            status = SubscriptionStatus.PAST_DUE
    if (
        status == SubscriptionStatus.PAST_DUE
        and end + grace_for(subscription, product, policy) <= now
    ):
        expire(subscription, now)
        events.append(("subscription.expired", status.value))
        status = SubscriptionStatus.EXPIRED
    if (
        status == SubscriptionStatus.CANCELLED
        and subscription.ends_at is not None
        and subscription.ends_at <= now
    ):
        expire(subscription, now)
        events.append(("subscription.expired", status.value))
        status = SubscriptionStatus.EXPIRED
    subscription.next_action_at = next_action(subscription, product, policy)
    return Step(events=events, reminders=reminders)


def expire(subscription: Subscription, now: datetime) -> None:
    """Access over: expired and stopped, at `now`."""
    subscription.status = SubscriptionStatus.EXPIRED.value
    subscription.stopped = True
    subscription.expired_at = now
    subscription.updated_at = now


def next_action(
    subscription: Subscription, product: Product | None, policy: Policy
) -> datetime | None:
    """The next moment anything happens to this subscription on the clock (None: never)."""
    status = SubscriptionStatus(subscription.status)
    end = subscription.current_period_end
    if status in (SubscriptionStatus.TRIAL, SubscriptionStatus.ACTIVE):
        times = reminder_times(end, lead_for(subscription, policy))
        sent = subscription.reminders_sent if subscription.renewal_due_for == end else 0
        return times[sent] if sent < len(times) else end
    if status == SubscriptionStatus.PAST_DUE:
        return end + grace_for(subscription, product, policy)
    if status == SubscriptionStatus.CANCELLED:
        return subscription.ends_at
    return None
