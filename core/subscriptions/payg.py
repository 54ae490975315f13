"""Pay-as-you-go subscriptions (QBitFlow's `pay_as_you_go`): usage billed in arrears.

The session's price is the price per unit. The subscriber starts without paying (the trial
path: `start_trial`), active at once, the first period running from that moment. The merchant
adds usage to the current period (`increase_units`, exact decimals); usage that would make the
period's bill exceed the product's `max_spending_per_period_usd` (1,000 USD when unset) is
refused.

At each period end (the lifecycle's period end step) the period is closed: its charge is
units × unit price; the free credits left pay for it first (what they do not use carries over);
the rest is the bill. The next period starts at that period end at zero units, whatever the
bill. A bill of zero needs nothing (`subscription.renewed`). A bill above zero opens a renewal
request for exactly that amount (`subscription.renewal_due`, `amountDue`), due a lead time after
the period end (the lead a normal renewal request gets before its due date: 3 days by default,
at most a third of the period), with the same reminders before that deadline, `past_due` at it
and `expired` a grace after it; a grace and a lead are each at most a third of the period, so a
bill is settled or expired before the next period ends. Money at the deposit address since the
anchor is set against the sum of all bills: once it covers them the open bill is paid
(`subscription.renewed`, active again). A cancelled subscription's last period is billed at its
access end (recorded in `amountDue`, without reminders).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal, localcontext

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import AppError, Conflict
from core.models import CheckoutSession, Payment, Product, Subscription
from core.money import normalize
from core.subscriptions import lifecycle
from core.subscriptions.policy import Policy
from core.subscriptions.schemas import SubscriptionStatus

DEFAULT_MAX_SPENDING_USD = Decimal(1000)
EXACT_PRECISION = 200

Events = list[tuple[str, str]]  # (event type, previous status)


def max_spending(product: Product | None) -> Decimal:
    """The most one period may bill, USD (the product's, else the default)."""
    if product is None or product.max_spending_per_period_usd is None:
        return DEFAULT_MAX_SPENDING_USD
    return product.max_spending_per_period_usd


def bill_for(subscription: Subscription, units: Decimal) -> tuple[Decimal, Decimal]:
    """(bill, free credits it uses) for `units` at the subscription's unit price."""
    with localcontext() as ctx:
        ctx.prec = EXACT_PRECISION  # exact: the default 28 digits would round a long product
        charge = units * subscription.price_usd
        credits_used = min(subscription.free_credits_usd, charge)
        return normalize(charge - credits_used), normalize(credits_used)


def new_subscription(
    checkout: CheckoutSession,
    *,
    now: datetime,
    telegram_user_id: int | None,
    email: str | None,
) -> Subscription:
    """A PAYG subscription of this session, active from `now` with its free credits."""
    assert checkout.frequency_seconds is not None
    return lifecycle.subscription_for(
        checkout,
        telegram_user_id=telegram_user_id,
        trial_email=email.lower() if email else None,
        status=SubscriptionStatus.ACTIVE.value,
        current_period_end=now + timedelta(seconds=checkout.frequency_seconds),
        anchor_at=now,
        payg=True,
        units_current_period=Decimal(0),
        free_credits_usd=checkout.free_credits_usd or Decimal(0),
        billed_usd=Decimal(0),
        created_at=now,
        updated_at=now,
    )


def _close_period(subscription: Subscription) -> Decimal:
    """Bill the current period and start the next one at its end, at zero units; the bill."""
    bill, credits_used = bill_for(subscription, subscription.units_current_period)
    _record_bill(subscription, bill, credits_used)
    subscription.current_period_end += timedelta(seconds=subscription.frequency_seconds)
    return bill


def _record_bill(subscription: Subscription, bill: Decimal, credits_used: Decimal) -> None:
    with localcontext() as ctx:
        ctx.prec = EXACT_PRECISION
        subscription.free_credits_usd = normalize(subscription.free_credits_usd - credits_used)
        subscription.billed_usd = normalize(subscription.billed_usd + bill)
    subscription.units_current_period = Decimal(0)


def decide(
    subscription: Subscription, product: Product | None, policy: Policy, now: datetime
) -> lifecycle.Step:
    """Every PAYG step due by `now` on the (locked) subscription, in time order; its next step."""
    events: list[tuple[str, str]] = []
    reminders: list[int] = []
    lead = lifecycle.lead_for(subscription, policy)
    status = SubscriptionStatus(subscription.status)
    while (
        status == SubscriptionStatus.ACTIVE
        and subscription.bill_due_at is None
        and subscription.current_period_end <= now
    ):
        end = subscription.current_period_end
        bill = _close_period(subscription)
        subscription.updated_at = now
        if bill > 0:
            subscription.bill_due_at = end + lead
            subscription.renewal_due_for = subscription.bill_due_at
            subscription.reminders_sent = 0
            events.append(("subscription.renewal_due", status.value))
        else:
            subscription.periods_paid += 1
            subscription.last_billing_at = end
            events.append(("subscription.renewed", status.value))
    due_at = subscription.bill_due_at
    if status == SubscriptionStatus.ACTIVE and due_at is not None:
        due = sum(1 for at in lifecycle.reminder_times(due_at, lead) if at <= now)
        if due > subscription.reminders_sent:
            reminders.extend(range(subscription.reminders_sent, due))
            subscription.reminders_sent = due
        if due_at <= now:
            subscription.status = SubscriptionStatus.PAST_DUE.value
            subscription.past_due_at = due_at
            subscription.updated_at = now
            events.append(("subscription.past_due", status.value))
            status = SubscriptionStatus.PAST_DUE
    if (
        status == SubscriptionStatus.PAST_DUE
        and due_at is not None
        and due_at + lifecycle.grace_for(subscription, product, policy) <= now
    ):
        lifecycle.expire(subscription, now)
        events.append(("subscription.expired", status.value))
        status = SubscriptionStatus.EXPIRED
    if (
        status == SubscriptionStatus.CANCELLED
        and subscription.ends_at is not None
        and subscription.ends_at <= now
    ):
        # The last period's usage is billed (shown as amountDue); nothing follows on the clock.
        _record_bill(subscription, *bill_for(subscription, subscription.units_current_period))
        lifecycle.expire(subscription, now)
        events.append(("subscription.expired", status.value))
    subscription.next_action_at = next_action(subscription, product, policy)
    return lifecycle.Step(events=events, reminders=reminders)


def next_action(
    subscription: Subscription, product: Product | None, policy: Policy
) -> datetime | None:
    """The next moment anything happens to this PAYG subscription on the clock (None: never)."""
    status = SubscriptionStatus(subscription.status)
    due_at = subscription.bill_due_at
    if status == SubscriptionStatus.ACTIVE:
        if due_at is None:
            return subscription.current_period_end
        times = lifecycle.reminder_times(due_at, lifecycle.lead_for(subscription, policy))
        sent = subscription.reminders_sent
        return times[sent] if sent < len(times) else due_at
    if status == SubscriptionStatus.PAST_DUE and due_at is not None:
        return due_at + lifecycle.grace_for(subscription, product, policy)
    if status == SubscriptionStatus.CANCELLED:
        return subscription.ends_at
    return None


async def paid_usd(session: AsyncSession, subscription: Subscription) -> Decimal:
    """USD confirmed at the deposit address since the anchor (summed here: decimal text on SQLite)."""
    amounts = await session.scalars(
        select(Payment.amount_usd).where(
            Payment.session_id == subscription.session_id, Payment.status == "confirmed"
        )
    )
    with localcontext() as ctx:
        ctx.prec = EXACT_PRECISION
        return normalize(sum(amounts, Decimal(0)) - subscription.anchor_paid_usd)


def amount_due(subscription: Subscription, paid: Decimal) -> Decimal:
    """What is billed and not paid yet (0 when every bill is covered)."""
    with localcontext() as ctx:
        ctx.prec = EXACT_PRECISION
        return normalize(max(Decimal(0), subscription.billed_usd - paid))


def apply_payments(subscription: Subscription, paid: Decimal, *, now: datetime) -> Events:
    """The open bill paid once the money since the anchor covers every bill: active again."""
    if subscription.bill_due_at is None or paid < subscription.billed_usd:
        return []
    previous = subscription.status
    subscription.bill_due_at = None
    subscription.renewal_due_for = None
    subscription.reminders_sent = 0
    subscription.last_billing_at = now
    subscription.updated_at = now
    if previous not in (SubscriptionStatus.ACTIVE.value, SubscriptionStatus.PAST_DUE.value):
        return []  # cancelled: the bill is paid, the subscription stays as it is
    subscription.status = SubscriptionStatus.ACTIVE.value
    subscription.past_due_at = None
    subscription.periods_paid += 1
    return [("subscription.renewed", previous)]


class NotPayAsYouGo(Conflict):
    def __init__(self) -> None:
        super().__init__(
            "This subscription is not pay-as-you-go", param="subscriptionUUID", code="not_payg"
        )


class SpendingCapExceeded(AppError):
    def __init__(self, bill: Decimal, cap: Decimal) -> None:
        super().__init__(
            f"This usage would bill {bill} USD this period, beyond the product's "
            f"maxSpendingPerPeriod of {cap} USD",
            param="increaseByAmount",
            status_code=422,
            code="max_spending_exceeded",
        )


def increase_units(
    subscription: Subscription, product: Product | None, amount: Decimal, *, now: datetime
) -> None:
    """Add usage to the (locked, steps taken) subscription's current period, within the cap."""
    if not subscription.payg:
        raise NotPayAsYouGo()
    if SubscriptionStatus(subscription.status) not in (
        SubscriptionStatus.ACTIVE,
        SubscriptionStatus.PAST_DUE,
    ):
        raise Conflict(
            f"This subscription is {subscription.status}: it takes no more usage",
            param="subscriptionUUID",
            code="subscription_not_live",
        )
    with localcontext() as ctx:
        ctx.prec = EXACT_PRECISION
        units = normalize(subscription.units_current_period + amount)
    bill, _ = bill_for(subscription, units)
    cap = max_spending(product)
    if bill > cap:
        raise SpendingCapExceeded(bill, cap)
    subscription.units_current_period = units
    subscription.updated_at = now
