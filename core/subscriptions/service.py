"""Subscriptions: born from a completed subscription session, extended by later payments."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core import tenancy
from core.catalog import service as catalog_service
from core.catalog.exceptions import CustomerNotFound
from core.checkout import repository as checkout_repository
from core.checkout import service as checkout_service
from core.checkout.context import CheckoutContext
from core.checkout.schemas import CurrencyOut, TransactionStatusOut
from core.checkout.state import OPEN_STATUSES, SessionStatus
from core.errors import AppError, Conflict, InvalidInput, NotFound
from core.events import service as events_service
from core.models import CheckoutSession, Currency, Customer, Payment, Product, Subscription
from core.models.base import utcnow
from core.orgs.schemas import Principal
from core.payments import service as payments_service
from core.subscriptions import history, lifecycle, payg
from core.subscriptions import repository as subscriptions_repository
from core.subscriptions.policy import Policy
from core.subscriptions.schemas import (
    LIVE_STATUSES,
    PapayaSubscriptionOut,
    PaygSubscriptionOut,
    SubscriptionHistoryOut,
    SubscriptionOut,
    SubscriptionStatus,
)
from core.telegram import reminders

SESSION_TYPES = {"payment", "createSubscription"}
SUBSCRIPTION_TYPES = {"cancelSubscription", "executeSubscription"}


class SubscriptionNotFound(NotFound):
    def __init__(self, param: str = "uuid") -> None:
        super().__init__("Subscription not found", param=param)


async def settle(
    session: AsyncSession, checkout: CheckoutSession, *, now: datetime, policy: Policy | None = None
) -> Subscription | None:
    """Bring a subscription session's subscription in line with its confirmed payments.

    The first completed payment creates it (active; payer, chain, token and tx of that payment).
    Every further price's worth of confirmed payments to the same address adds one period.
    Derived from the payments each time, so replays and reorgs never double-count a period.
    """
    # The caller holds the session's lock already (then this costs no query).
    checkout = (await checkout_repository.lock_sessions(session, [checkout.id]))[checkout.id]
    payments = (
        await session.scalars(
            select(Payment)
            .where(Payment.session_id == checkout.id, Payment.status == "confirmed")
            .order_by(Payment.block_number, Payment.log_index, Payment.id)
        )
    ).all()
    # Under the session's lock no one else creates this subscription meanwhile; its own lock
    # keeps a concurrent cancel from being written over.
    subscription_id = await session.scalar(
        select(Subscription.id).where(Subscription.session_id == checkout.id)
    )
    subscription = (
        (await subscriptions_repository.lock_subscriptions(session, [subscription_id])).get(
            subscription_id
        )
        if subscription_id is not None
        else None
    )
    if checkout.payg:
        return await _settle_payg(
            session, checkout, subscription, payments, now=now, policy=policy or Policy()
        )
    if subscription is None:
        if checkout.status != SessionStatus.COMPLETED.value or not payments:
            return None
        assert checkout.frequency_seconds is not None
        assert checkout.product_id is not None
        first = payments[0]
        subscription = lifecycle.subscription_for(
            checkout,
            status=SubscriptionStatus.ACTIVE.value,
            periods_paid=1,
            payer_address=first.from_address,
            chain_id=first.chain_id,
            currency_id=first.currency_id,
            token_symbol=first.token_symbol,
            first_tx_hash=first.tx_hash,
            current_period_end=now + timedelta(seconds=checkout.frequency_seconds),
            last_billing_at=now,
            anchor_at=now,
            created_at=now,
        )
        session.add(subscription)
        await session.flush()
        await emit(session, "subscription.created", subscription, checkout, previous=None, now=now)
    for payment in payments:
        payment.subscription_id = subscription.id
    product = await session.get(Product, subscription.product_id)
    policy = policy or Policy()
    if subscription.status == SubscriptionStatus.EXPIRED.value:
        # Money confirmed since it expired, not reported yet.
        expired_at = subscription.expired_at or subscription.updated_at
        fresh = [
            p
            for p in payments
            if not p.late and p.confirmed_at is not None and p.confirmed_at >= expired_at
        ]
        await _after_expiry(session, subscription, checkout, product, fresh, payments, now=now)
        subscription.next_action_at = lifecycle.next_action(subscription, product, policy)
        await session.flush()
        return subscription
    previous = subscription.status
    if subscription.status == SubscriptionStatus.TRIAL.value and payments:
        # The first payment after (or during) a trial: the payer, chain and token become known.
        first = payments[0]
        subscription.status = SubscriptionStatus.ACTIVE.value
        subscription.payer_address = first.from_address
        subscription.chain_id = first.chain_id
        subscription.currency_id = first.currency_id
        subscription.token_symbol = first.token_symbol
        subscription.first_tx_hash = first.tx_hash
        subscription.periods_paid = 0
    total = sum((p.amount_usd for p in payments), Decimal(0)) - subscription.anchor_paid_usd
    periods = int(total // subscription.price_usd) if subscription.price_usd > 0 else 0
    if subscription.trial_ends_at is None or subscription.anchor_paid_usd > 0:
        periods = max(1, periods)
    if periods > subscription.periods_paid:
        subscription.periods_paid = periods
        # From the period's anchor (the start, the trial's end): a renewal extends from the
        # previous period end, never from the payment's time, so paying in grace loses nothing.
        start = subscription.anchor_at or subscription.trial_ends_at or subscription.created_at
        subscription.current_period_end = start + timedelta(
            seconds=subscription.frequency_seconds * periods
        )
        subscription.last_billing_at = now
        subscription.updated_at = now
        if subscription.status == SubscriptionStatus.PAST_DUE.value:
            subscription.status = SubscriptionStatus.ACTIVE.value
            subscription.past_due_at = None
        await emit(
            session, "subscription.renewed", subscription, checkout, previous=previous, now=now
        )
    subscription.next_action_at = lifecycle.next_action(subscription, product, policy)
    await session.flush()
    return subscription


async def _settle_payg(
    session: AsyncSession,
    checkout: CheckoutSession,
    subscription: Subscription | None,
    payments: Sequence[Payment],
    *,
    now: datetime,
    policy: Policy,
) -> Subscription | None:
    """A PAYG session's payments (core/subscriptions/payg.py): set against its bills. Paid
    before anyone started it, the completed session starts it (the money is then credit)."""
    if subscription is None:
        if checkout.status != SessionStatus.COMPLETED.value or not payments:
            return None
        subscription = payg.new_subscription(
            checkout, now=now, telegram_user_id=checkout.telegram_user_id, email=None
        )
        session.add(subscription)
        await session.flush()
        await emit(session, "subscription.created", subscription, checkout, previous=None, now=now)
    for payment in payments:
        payment.subscription_id = subscription.id
    if payments and subscription.payer_address is None:
        first = payments[0]
        subscription.payer_address = first.from_address
        subscription.chain_id = first.chain_id
        subscription.currency_id = first.currency_id
        subscription.token_symbol = first.token_symbol
        subscription.first_tx_hash = first.tx_hash
    product = await session.get(Product, subscription.product_id)
    if subscription.status == SubscriptionStatus.EXPIRED.value:
        # Money after expiry is recorded and reported late; a PAYG subscription does not restart.
        expired_at = subscription.expired_at or subscription.updated_at
        fresh = [
            p
            for p in payments
            if not p.late and p.confirmed_at is not None and p.confirmed_at >= expired_at
        ]
        await _after_expiry(session, subscription, checkout, None, fresh, payments, now=now)
    else:
        paid = await payg.paid_usd(session, subscription)
        for kind, previous in payg.apply_payments(subscription, paid, now=now):
            await emit(session, kind, subscription, checkout, previous=previous, now=now)
    subscription.next_action_at = payg.next_action(subscription, product, policy)
    await session.flush()
    return subscription


async def _after_expiry(
    session: AsyncSession,
    subscription: Subscription,
    checkout: CheckoutSession,
    product: Product | None,
    fresh: Sequence[Payment],
    payments: Sequence[Payment],
    *,
    now: datetime,
) -> None:
    """Money to an expired subscription's address: recorded and reported as late; it starts
    the subscription again (from now) only where the product says so."""
    if not fresh:
        return
    if product is None or not product.reactivate_on_late_payment:
        for payment in fresh:
            payment.late = True
            await events_service.emit(
                session,
                organization_id=subscription.organization_id,
                test=subscription.test,
                type="payment.late",
                data={
                    "paymentUUID": payment.uuid,
                    "subscriptionUUID": subscription.uuid,
                    "sessionUUID": checkout.uuid,
                    "chainId": payment.chain_id,
                    "txHash": payment.tx_hash,
                    "amountBaseUnits": str(payment.amount_base_units),
                    "amountUsd": str(payment.amount_usd),
                    "token": payment.token_symbol,
                },
                session_id=checkout.id,
                subscription_id=subscription.id,
                payment_id=payment.id,
                session_webhook_url=checkout.webhook_url,
            )
        return
    new_money = sum((p.amount_usd for p in fresh), Decimal(0))
    periods = int(new_money // subscription.price_usd) if subscription.price_usd > 0 else 0
    if periods < 1:
        return  # not a whole period yet: it waits for more, still expired
    previous = subscription.status
    subscription.anchor_at = now
    subscription.anchor_paid_usd = sum((p.amount_usd for p in payments), Decimal(0)) - new_money
    subscription.periods_paid = periods
    subscription.current_period_end = now + timedelta(
        seconds=subscription.frequency_seconds * periods
    )
    subscription.status = SubscriptionStatus.ACTIVE.value
    subscription.stopped = False
    subscription.expired_at = None
    subscription.past_due_at = None
    subscription.renewal_due_for = None
    subscription.reminders_sent = 0
    subscription.last_billing_at = now
    subscription.updated_at = now
    await emit(session, "subscription.renewed", subscription, checkout, previous=previous, now=now)


async def start_trial(
    session: AsyncSession,
    checkout: CheckoutSession,
    *,
    now: datetime,
    telegram_user_id: int | None = None,
    email: str | None = None,
    policy: Policy | None = None,
) -> Subscription:
    """Start a session's free trial for a payer (the bot and the checkout page call this).

    The subscription begins in `trial` without a payment; its payer address, chain, token and
    tx stay empty until the first payment. One trial per Telegram user or email per product.
    A pay-as-you-go session starts its subscription here too: active at once, billed in
    arrears (core/subscriptions/payg.py); one start per payer per product.
    """
    # Decided on the locked session: a payment settling it at the same time creates the
    # subscription first (then this is refused) or finds the trial and converts it.
    checkout = (await checkout_repository.lock_sessions(session, [checkout.id]))[checkout.id]
    if checkout.kind != "subscription" or not (checkout.trial_seconds or checkout.payg):
        raise Conflict("This session offers no trial", param="uuid", code="no_trial")
    if telegram_user_id is None and not email:
        raise InvalidInput("A trial needs the payer's Telegram id or email", param="telegramUserId")
    if (
        await session.scalar(select(Subscription.id).where(Subscription.session_id == checkout.id))
        is not None
    ):
        raise Conflict(
            "This session already has its subscription", param="uuid", code="subscription_exists"
        )
    if SessionStatus(checkout.status) not in OPEN_STATUSES or checkout.expires_at <= now:
        raise Conflict("This session is no longer open", param="uuid", code="session_not_open")
    assert checkout.product_id is not None
    assert checkout.frequency_seconds is not None
    same_person = []
    if telegram_user_id is not None:
        same_person.append(Subscription.telegram_user_id == telegram_user_id)
    if email:
        same_person.append(Subscription.trial_email == email.lower())
    earlier = await session.scalar(
        select(Subscription.id).where(
            Subscription.organization_id == checkout.organization_id,
            Subscription.product_id == checkout.product_id,
            Subscription.payg.is_(True)
            if checkout.payg
            else Subscription.trial_ends_at.is_not(None),
            or_(*same_person),
        )
    )
    if earlier is not None:
        if checkout.payg:
            raise Conflict(
                "This payer already started pay-as-you-go on this product",
                param="telegramUserId",
                code="payg_started",
            )
        raise Conflict(
            "This payer already had a trial of this product",
            param="telegramUserId",
            code="trial_used",
        )
    if checkout.payg:
        # Pay-as-you-go starts without paying, billed in arrears (core/subscriptions/payg.py).
        subscription = payg.new_subscription(
            checkout, now=now, telegram_user_id=telegram_user_id, email=email
        )
        subscription.next_action_at = payg.next_action(
            subscription, await session.get(Product, checkout.product_id), policy or Policy()
        )
    else:
        subscription = _new_trial(checkout, now=now, telegram_user_id=telegram_user_id, email=email)
        subscription.next_action_at = lifecycle.next_action(
            subscription, await session.get(Product, checkout.product_id), policy or Policy()
        )
    session.add(subscription)
    if telegram_user_id is not None and checkout.telegram_user_id is None:
        checkout.telegram_user_id = telegram_user_id
    await session.flush()
    await emit(session, "subscription.created", subscription, checkout, previous=None, now=now)
    return subscription


def _new_trial(
    checkout: CheckoutSession, *, now: datetime, telegram_user_id: int | None, email: str | None
) -> Subscription:
    assert checkout.trial_seconds is not None
    trial_end = now + timedelta(seconds=checkout.trial_seconds)
    return lifecycle.subscription_for(
        checkout,
        telegram_user_id=telegram_user_id,
        trial_email=email.lower() if email else None,
        status=SubscriptionStatus.TRIAL.value,
        trial_ends_at=trial_end,
        current_period_end=trial_end,
        anchor_at=trial_end,
        created_at=now,
    )


async def start_for_payer(
    session: AsyncSession,
    principal: Principal,
    session_uuid: str,
    *,
    telegram_user_id: int | None,
    customer_uuid: str | None,
    now: datetime,
    policy: Policy,
) -> Subscription:
    """A merchant's own front end starts a session's trial for a payer: a Telegram user, a
    customer of the organization (known by its email and Telegram id), or both."""
    checkout = await checkout_service.get_session(session, principal, session_uuid)
    customer: Customer | None = None
    if customer_uuid:
        try:
            customer = await catalog_service.get_customer(session, principal, customer_uuid)
        except CustomerNotFound as exc:
            raise CustomerNotFound(param="customerUUID") from exc
        if checkout.customer_id is not None and checkout.customer_id != customer.id:
            raise Conflict(
                "This session is for another customer",
                param="customerUUID",
                code="customer_mismatch",
            )
    if telegram_user_id is None and customer is None:
        raise InvalidInput("Name the payer: telegramUserId or customerUUID", param="telegramUserId")
    subscription = await start_trial(
        session,
        checkout,
        now=now,
        telegram_user_id=telegram_user_id
        if telegram_user_id is not None or customer is None
        else customer.telegram_user_id,
        email=customer.email if customer is not None else None,
        policy=policy,
    )
    if customer is not None:
        subscription.customer_id = customer.id
        checkout.customer_id = customer.id
        await session.flush()
    return subscription


async def emit(
    session: AsyncSession,
    type: str,
    subscription: Subscription,
    checkout: CheckoutSession,
    *,
    previous: str | None,
    now: datetime,
) -> None:
    """Emit a subscription event; its bills are brought in line first (every transition writes
    history: core/subscriptions/history.py)."""
    bills = await history.sync(session, subscription, now=now)
    data = event_data(subscription, checkout, previous=previous)
    # The bill this transition is about (the newest period's) and what is owed, exact.
    data["amountDue"] = str(await amount_due(session, subscription))
    data["bill"] = history.bill_data(bills[-1]) if bills else None
    await events_service.emit(
        session,
        organization_id=subscription.organization_id,
        test=subscription.test,
        type=type,
        data=data,
        session_id=checkout.id,
        subscription_id=subscription.id,
        session_webhook_url=checkout.webhook_url,
    )


def event_data(
    subscription: Subscription, checkout: CheckoutSession, *, previous: str | None
) -> dict[str, object]:
    """`data` of subscription events: QBitFlow's status-transition fields plus the billing state."""
    return {
        "subscriptionUUID": subscription.uuid,
        "previousStatus": previous,
        "currentStatus": subscription.status,
        "updatedAt": events_service.timestamp_text(subscription.updated_at or utcnow()),
        "priceUsd": str(subscription.price_usd),
        "frequency": subscription.frequency_seconds,
        "uuid": subscription.uuid,
        "sessionUUID": checkout.uuid,
        "status": subscription.status,
        "productId": subscription.product_id,
        "periodsPaid": subscription.periods_paid,
        "nextBillingDate": subscription.current_period_end.isoformat(),
        "payer": subscription.payer_address,
        "chainId": subscription.chain_id,
        "token": subscription.token_symbol,
        "tx": subscription.first_tx_hash,
        "telegramUserId": subscription.telegram_user_id,
        "test": subscription.test,
    }


async def take_due_steps(
    session: AsyncSession,
    subscription: Subscription,
    *,
    policy: Policy,
    now: datetime,
    recorded_at: datetime | None = None,
) -> lifecycle.Step:
    """Every lifecycle step of this (locked) subscription due by `now`: its state moved on, each
    event emitted and each reminder queued once (the `subscriptions.lifecycle` job and the
    test billing cycle both come here). `recorded_at`: when it happened, if not `now` (a test
    billing cycle decides at the deadline but happens, and reminds, at once)."""
    product = await session.get(Product, subscription.product_id)
    decide = payg.decide if subscription.payg else lifecycle.decide
    step = decide(subscription, product, policy, now)
    if subscription.payg and subscription.bill_due_at is not None:
        # Money already at the address (paid ahead) pays a bill as it opens: no reminders then.
        paid = await payg.paid_usd(session, subscription)
        settled = payg.apply_payments(subscription, paid, now=recorded_at or now)
        if settled:
            step.events.extend(settled)
            step.reminders.clear()
            subscription.next_action_at = payg.next_action(subscription, product, policy)
    if recorded_at is not None:
        if subscription.updated_at == now:
            subscription.updated_at = recorded_at
        if subscription.expired_at == now:
            subscription.expired_at = recorded_at
    checkout = await session.get(CheckoutSession, subscription.session_id)
    assert checkout is not None
    await session.flush()
    for kind, previous in step.events:
        await emit(session, kind, subscription, checkout, previous=previous, now=now)
    owed = await amount_due(session, subscription) if step.reminders else Decimal(0)
    for number in step.reminders:
        await reminders.queue(
            session, subscription, product, number, amount_due=owed, now=recorded_at or now
        )
    return step


# A billing step (renewal opened, past due, expired) is at most this many deadlines away: the
# reminders between them (three a period) are taken on the way.
_MAX_DEADLINES = 8


async def execute_test_billing(
    session: AsyncSession, principal: Principal, uuid: str, *, policy: Policy, now: datetime
) -> tuple[Subscription, list[str]]:
    """The SDK's `execute_test_billing_cycle`: a test subscription takes its next billing step
    at once, as if the clock had reached that deadline (renewal opened, past due, expired, or
    the end of a cancelled one), each reminder on the way queued as the job would. Payments
    alone move its period end. Returns it and the events emitted."""
    subscription = await get_subscription(session, principal, uuid)
    if not subscription.test:
        raise AppError(
            "Billing cycles run on demand only for test subscriptions",
            param="uuid",
            status_code=400,
            code="live_subscription",
        )
    subscription = (await subscriptions_repository.lock_subscriptions(session, [subscription.id]))[
        subscription.id
    ]
    if subscription.next_action_at is None:
        raise Conflict(
            f"This subscription is {subscription.status}: no billing step is left",
            param="uuid",
            code="nothing_to_bill",
        )
    events: list[str] = []
    for _ in range(_MAX_DEADLINES):
        deadline = subscription.next_action_at
        if deadline is None or events:
            break
        step = await take_due_steps(
            session, subscription, policy=policy, now=deadline, recorded_at=now
        )
        events.extend(kind for kind, _ in step.events)
    return subscription, events


async def increase_units(
    session: AsyncSession,
    principal: Principal,
    uuid: str,
    amount: Decimal,
    *,
    policy: Policy,
    now: datetime,
) -> Subscription:
    """Add usage to a PAYG subscription's current period (refused beyond the product's cap).

    Decided on the locked row after the steps due by now, so usage after a period end the job
    has not reached yet counts toward the new period, not the billed one."""
    try:
        subscription = await get_subscription(session, principal, uuid)
    except SubscriptionNotFound as exc:
        raise SubscriptionNotFound(param="subscriptionUUID") from exc
    subscription = (await subscriptions_repository.lock_subscriptions(session, [subscription.id]))[
        subscription.id
    ]
    if (
        subscription.payg
        and subscription.next_action_at is not None
        and subscription.next_action_at <= now
    ):
        await take_due_steps(session, subscription, policy=policy, now=now)
    payg.increase_units(
        subscription, await session.get(Product, subscription.product_id), amount, now=now
    )
    await session.flush()
    return subscription


async def get_subscription(session: AsyncSession, principal: Principal, uuid: str) -> Subscription:
    subscription = await session.scalar(
        tenancy.visible(Subscription, principal).where(Subscription.uuid == uuid)
    )
    if subscription is None:
        raise SubscriptionNotFound()
    return subscription


async def get_subscription_by_id(
    session: AsyncSession, principal: Principal, subscription_id: int
) -> Subscription:
    subscription = await session.scalar(
        tenancy.visible(Subscription, principal).where(Subscription.id == subscription_id)
    )
    if subscription is None:
        raise SubscriptionNotFound(param="id")
    return subscription


def minimum_cancellation_date(subscription: Subscription) -> datetime | None:
    if not subscription.min_periods:
        return None
    return subscription.created_at + timedelta(
        seconds=subscription.frequency_seconds * subscription.min_periods
    )


async def cancel(
    session: AsyncSession,
    principal: Principal,
    uuid: str,
    *,
    force: bool,
    now: datetime,
    at_period_end: bool = False,
) -> Subscription:
    """Stop a subscription: no more renewals; access ends at the period's end
    (`at_period_end`) or now. Before `minPeriods` periods have passed only a forced cancel
    works (and it ends access now)."""
    subscription = await get_subscription(session, principal, uuid)
    # Decided on the locked row: a payment settling at the same time waits, then sees it stopped.
    subscription = (await subscriptions_repository.lock_subscriptions(session, [subscription.id]))[
        subscription.id
    ]
    if SubscriptionStatus(subscription.status) not in LIVE_STATUSES:
        raise Conflict(
            f"This subscription is already {subscription.status}",
            param="uuid",
            code="subscription_not_live",
        )
    earliest = minimum_cancellation_date(subscription)
    if not force and earliest is not None and now < earliest:
        raise Conflict(
            f"This subscription has a minimum of {subscription.min_periods} periods; it can be cancelled "
            f"from {earliest.isoformat()}",
            param="uuid",
            code="minimum_periods",
        )
    previous = subscription.status
    subscription.status = SubscriptionStatus.CANCELLED.value
    subscription.stopped = True
    subscription.cancelled_at = now
    subscription.updated_at = now
    # A trial or a past-due subscription has no paid time left to keep.
    keeps_period = at_period_end and not force and previous == SubscriptionStatus.ACTIVE.value
    subscription.ends_at = max(now, subscription.current_period_end) if keeps_period else now
    subscription.next_action_at = subscription.ends_at
    await session.flush()
    checkout = await session.get(CheckoutSession, subscription.session_id)
    assert checkout is not None
    await emit(
        session, "subscription.cancelled", subscription, checkout, previous=previous, now=now
    )
    return subscription


async def transaction_status(
    session: AsyncSession, principal: Principal, uuid: str, transaction_type: str
) -> TransactionStatusOut:
    """QBitFlow's status lookup: sessions by their uuid, subscription actions by the subscription."""
    if transaction_type in SESSION_TYPES:
        checkout = await checkout_service.get_session(session, principal, uuid)
        expected_kind = "payment" if transaction_type == "payment" else "subscription"
        if checkout.kind != expected_kind:
            raise InvalidInput(
                f"{uuid} is a {checkout.kind} session, not {transaction_type}",
                param="transactionStatusType",
            )
        tx = await session.scalar(
            select(Payment.tx_hash)
            .where(Payment.session_id == checkout.id)
            .order_by(Payment.id.desc())
            .limit(1)
        )
        return TransactionStatusOut(
            type=transaction_type,
            status=checkout.status,
            tx_hash=tx,
            message=checkout_service.status_message(checkout),
        )
    if transaction_type in SUBSCRIPTION_TYPES:
        subscription = await get_subscription(session, principal, uuid)
        done = transaction_type == "cancelSubscription" and subscription.stopped
        status = (
            SessionStatus.COMPLETED.value
            if done or transaction_type == "executeSubscription"
            else "pending"
        )
        return TransactionStatusOut(
            type=transaction_type, status=status, tx_hash=subscription.first_tx_hash, message=None
        )
    raise InvalidInput(
        "transactionStatusType must be payment, createSubscription, cancelSubscription or executeSubscription",
        param="transactionStatusType",
    )


EMPTY_CURRENCY = CurrencyOut(
    id=0, name="", symbol="", decimals=0, address="", test=False, chain_id=0
)


async def subscription_view(
    session: AsyncSession, subscription: Subscription, currency_out: Any
) -> SubscriptionOut:
    """The SDK's Subscription; before a first payment `from` is "" and the currency is empty (id 0)."""
    checkout = await session.get(CheckoutSession, subscription.session_id)
    assert checkout is not None
    customer = (
        await session.get(Customer, subscription.customer_id) if subscription.customer_id else None
    )
    currency = (
        await session.get(Currency, subscription.currency_id) if subscription.currency_id else None
    )
    v1_status = subscription.status
    if subscription.status == SubscriptionStatus.EXPIRED.value:
        v1_status = SubscriptionStatus.CANCELLED.value  # QBitFlow v1 has no "expired"
    view = SubscriptionOut(
        uuid=subscription.uuid,
        created_at=subscription.created_at,
        updated_at=subscription.updated_at,
        from_=subscription.payer_address or "",
        to=subscription.deposit_address,
        product_id=subscription.product_id,
        subscription_hash=subscription_hash(subscription),
        currency_id=currency.id if currency else 0,
        currency=currency_out(currency)
        if currency
        else EMPTY_CURRENCY.model_copy(update={"test": subscription.test}),
        test=subscription.test,
        customer_uuid=customer.uuid if customer else "",
        frequency=subscription.frequency_seconds,
        allowance=subscription.price_usd,
        subscription_status=v1_status,
        stopped=subscription.stopped or subscription.status in ("cancelled", "expired"),
        last_billing_date=subscription.last_billing_at,
        next_billing_date=subscription.current_period_end,
        minimum_cancellation_date=minimum_cancellation_date(subscription),
        status=subscription.status,
        telegram_user_id=subscription.telegram_user_id,
        chain_id=subscription.chain_id,
        token_name=subscription.token_symbol,
        tx=subscription.first_tx_hash,
        session_uuid=checkout.uuid,
        amount_due=await amount_due(session, subscription),
    )
    if not subscription.payg:
        return view
    # The SDK's PayAsYouGoSubscription: its allowance is what one period may bill.
    cap = payg.max_spending(await session.get(Product, subscription.product_id))
    return PaygSubscriptionOut(
        **{**view.model_dump(), "allowance": cap},
        units_current_period=subscription.units_current_period,
        max_spending_per_period=cap,
        free_credits=subscription.free_credits_usd,
        unit_price=subscription.price_usd,
        bill_due_at=subscription.bill_due_at,
    )


async def amount_due(session: AsyncSession, subscription: Subscription) -> Decimal:
    """The open renewal's bill: the price less what was paid toward the next period (partial
    payments add up), once the renewal request is open or the period ended unpaid; else 0.
    Pay-as-you-go: every bill not covered yet."""
    if subscription.payg:
        return payg.amount_due(subscription, await payg.paid_usd(session, subscription))
    status = SubscriptionStatus(subscription.status)
    renewal_open = (
        status in (SubscriptionStatus.TRIAL, SubscriptionStatus.ACTIVE)
        and subscription.renewal_due_for == subscription.current_period_end
    )
    if not renewal_open and status != SubscriptionStatus.PAST_DUE:
        return Decimal(0)
    # Summed here, not in SQL: amounts are decimal text on SQLite (its SUM goes through float).
    paid = sum(
        await session.scalars(
            select(Payment.amount_usd).where(
                Payment.session_id == subscription.session_id, Payment.status == "confirmed"
            )
        ),
        Decimal(0),
    )
    toward_next = (
        paid - subscription.anchor_paid_usd - subscription.periods_paid * subscription.price_usd
    )
    return max(Decimal(0), subscription.price_usd - max(Decimal(0), toward_next))


def subscription_hash(subscription: Subscription) -> str:
    """A stable identifier: derived from the uuid, so it never changes."""
    return "0x" + hashlib.sha256(f"chainpay-subscription:{subscription.uuid}".encode()).hexdigest()


def papaya_view(subscription: Subscription, *, now: datetime) -> PapayaSubscriptionOut:
    return PapayaSubscriptionOut(
        id=subscription.id,
        chain_id=subscription.chain_id,
        token_name=subscription.token_symbol,
        tx=subscription.first_tx_hash,
        tg_user_id=subscription.telegram_user_id,
        user_address=subscription.payer_address,
        created_at=subscription.created_at,
        is_active=lifecycle.grants_access(subscription, now),
    )


async def page_papaya(
    session: AsyncSession, principal: Principal, *, page: int, limit: int
) -> tuple[Sequence[Subscription], int]:
    stmt = tenancy.visible(Subscription, principal)
    total = await session.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = await session.scalars(
        stmt.order_by(Subscription.id).offset((page - 1) * limit).limit(limit)
    )
    return rows.all(), int(total or 0)


async def history_view(
    session: AsyncSession, context: CheckoutContext, subscription: Subscription
) -> list[SubscriptionHistoryOut]:
    """Its billing periods, oldest first, each with the payments set against it."""
    entries = await history.entries(session, subscription)
    checkout = await session.get(CheckoutSession, subscription.session_id)
    assert checkout is not None
    customer = (
        await session.get(Customer, subscription.customer_id) if subscription.customer_id else None
    )
    paid = [payment for entry in entries for payment in entry.payments]
    views = {
        view.uuid: payments_service.plain_payment(view)
        for view in await payments_service.payment_views(session, context, paid)
    }
    own = (
        await session.get(Currency, subscription.currency_id) if subscription.currency_id else None
    )
    fallback = (
        checkout_service.currency_out(own, context)
        if own is not None
        else EMPTY_CURRENCY.model_copy(update={"test": subscription.test})
    )
    items = []
    for entry in entries:
        bill = entry.bill
        payments = [views[payment.uuid] for payment in entry.payments]
        latest = payments[-1] if payments else None
        items.append(
            SubscriptionHistoryOut(
                uuid=bill.uuid,
                created_at=bill.opened_at,
                from_=latest.from_ if latest else "",
                to=subscription.deposit_address,
                name=checkout.product_name,
                description=checkout.description,
                amount=bill.amount_usd,
                currency_id=latest.currency_id if latest else fallback.id,
                currency=latest.currency if latest else fallback,
                test=subscription.test,
                product_id=subscription.product_id,
                subscription_uuid=subscription.uuid,
                transaction_hash=latest.transaction_hash if latest else "",
                customer_uuid=customer.uuid if customer else "",
                period_start=bill.period_start,
                period_end=bill.period_end,
                due_at=bill.due_at,
                status=entry.status.value,
                paid_usd=entry.paid_usd,
                amount_due=entry.amount_due,
                closed_at=bill.closed_at,
                payments=payments,
            )
        )
    return items
