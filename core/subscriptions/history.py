"""A subscription's billing history: one bill per billing period (SubscriptionBill rows).

`sync` brings the bills in line with the subscription's state. It runs on every event a
subscription emits (`service.emit`), so every transition writes history:

- a trial: a bill of 0 for the trial's span (`trial`);
- every period paid, by the first payment, a renewal or several periods at once (`paid`);
- a renewal request opened a lead time before the period end: the next period's bill at the
  locked price (`open`), `past_due` after the period end, `unpaid` at expiry, `void` when the
  subscription is cancelled (the period it asked for will not come);
- pay-as-you-go: each closed period's bill (units x unit price less free credits; `paid` at
  once when nothing is owed), `open` until the money at the address covers every bill, then
  `paid`; a cancelled subscription's last period is billed at its access end. Usage already
  consumed stays owed when the subscription is cancelled or expires.

Which payments paid a bill is worked out when the history is read (`entries`): the confirmed
payments to the subscription's address, oldest first, are set against the bills in period order
(a payment may be split across two bills, and what exceeds every bill stays with the last one);
a bill closed unpaid takes no money confirmed after it closed, and money reported late (after
expiry) only pays what is still owed (a pay-as-you-go bill: consumed usage stays owed). Nothing
about a payment is stored twice, so a replayed or reorged payment can never sit on two bills.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal, localcontext
from enum import StrEnum
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.checkout.state import PaymentStatus
from core.models import Payment, Subscription, SubscriptionBill
from core.money import normalize
from core.subscriptions.schemas import SubscriptionStatus

EXACT_PRECISION = 200


class BillStatus(StrEnum):
    TRIAL = "trial"
    OPEN = "open"
    PAST_DUE = "past_due"
    PAID = "paid"
    UNPAID = "unpaid"
    VOID = "void"


OWED = frozenset({BillStatus.OPEN, BillStatus.PAST_DUE})
CLOSED_UNPAID = frozenset({BillStatus.UNPAID, BillStatus.VOID})


async def bills_of(session: AsyncSession, subscription: Subscription) -> list[SubscriptionBill]:
    """Its bills, oldest period first."""
    rows = await session.scalars(
        select(SubscriptionBill)
        .where(SubscriptionBill.subscription_id == subscription.id)
        .order_by(SubscriptionBill.period_start, SubscriptionBill.id)
    )
    return list(rows.all())


async def sync(
    session: AsyncSession, subscription: Subscription, *, now: datetime
) -> list[SubscriptionBill]:
    """Write what the (locked) subscription's state says about its bills (idempotent); its
    bills, oldest period first."""
    bills = {bill.period_start: bill for bill in await bills_of(session, subscription)}
    period = timedelta(seconds=subscription.frequency_seconds)
    status = SubscriptionStatus(subscription.status)

    def put(
        start: datetime, end: datetime, amount: Decimal, state: BillStatus, due_at: datetime
    ) -> SubscriptionBill:
        bill = bills.get(start)
        if bill is None:
            bill = SubscriptionBill(
                subscription_id=subscription.id,
                period_start=start,
                period_end=end,
                amount_usd=amount,
                status=state.value,
                opened_at=now,
                due_at=due_at,
                closed_at=now if state in (BillStatus.PAID, *CLOSED_UNPAID) else None,
            )
            session.add(bill)
            bills[start] = bill
        return bill

    def close_owed(state: BillStatus) -> None:
        for bill in bills.values():
            if bill.status in OWED:
                bill.status = state.value
                bill.closed_at = now

    if subscription.trial_ends_at is not None and subscription.created_at is not None:
        put(
            subscription.created_at,
            subscription.trial_ends_at,
            Decimal(0),
            BillStatus.TRIAL,
            subscription.trial_ends_at,
        )
    if subscription.payg:
        _sync_payg(subscription, bills, put, period=period, status=status)
    else:
        start = subscription.anchor_at or subscription.trial_ends_at or subscription.created_at
        for number in range(subscription.periods_paid):
            begins = start + period * number
            bill = put(begins, begins + period, subscription.price_usd, BillStatus.PAID, begins)
            if bill.status != BillStatus.PAID:
                bill.status = BillStatus.PAID.value
                bill.closed_at = now
        end = subscription.current_period_end
        if status != SubscriptionStatus.CANCELLED and subscription.renewal_due_for == end:
            # Opened by a renewal request (one pass of the job may also take it past due and
            # to expiry: the bill is written all the same, then closed below).
            put(end, end + period, subscription.price_usd, BillStatus.OPEN, end)
        if status == SubscriptionStatus.CANCELLED:
            close_owed(BillStatus.VOID)  # the renewal it asked for will not be needed
    if status == SubscriptionStatus.PAST_DUE:
        for bill in bills.values():
            if bill.status == BillStatus.OPEN and bill.due_at <= now:
                bill.status = BillStatus.PAST_DUE.value
    elif status == SubscriptionStatus.EXPIRED and not subscription.payg:
        close_owed(BillStatus.UNPAID)  # pay-as-you-go usage, consumed, stays owed
    elif status == SubscriptionStatus.ACTIVE and subscription.payg and not subscription.bill_due_at:
        close_owed(BillStatus.PAID)  # the money at the address covers every bill
    await session.flush()
    return sorted(bills.values(), key=lambda bill: bill.period_start)


def bill_data(bill: SubscriptionBill) -> dict[str, object]:
    """A bill in event payloads: its period, what it bills (USD, exact text) and its status."""
    return {
        "uuid": bill.uuid,
        "periodStart": bill.period_start.isoformat(),
        "periodEnd": bill.period_end.isoformat(),
        "dueAt": bill.due_at.isoformat(),
        "amountUsd": str(bill.amount_usd),
        "status": bill.status,
    }


def _sync_payg(
    subscription: Subscription,
    bills: dict[datetime, SubscriptionBill],
    put: _Put,
    *,
    period: timedelta,
    status: SubscriptionStatus,
) -> None:
    """Pay-as-you-go bills: one per closed period. Periods close at once, in order, and only the
    last of a run can bill above zero (a bill above zero stops the run until it is paid), so
    what `billed_usd` holds beyond the bills written is the newest closed period's bill."""
    anchor = subscription.anchor_at or subscription.created_at
    with localcontext() as ctx:
        ctx.prec = EXACT_PRECISION
        written = sum(
            (b.amount_usd for b in bills.values() if b.status != BillStatus.TRIAL), Decimal(0)
        )
        unbilled = normalize(subscription.billed_usd - written)
    closed = (subscription.current_period_end - anchor) // period - 1
    fresh = [anchor + period * n for n in range(closed) if anchor + period * n not in bills]
    for index, begins in enumerate(fresh):
        amount = unbilled if index == len(fresh) - 1 else Decimal(0)
        if amount > 0:
            due_at = subscription.bill_due_at or begins + period
            put(begins, begins + period, amount, BillStatus.OPEN, due_at)
            unbilled = Decimal(0)
        else:
            put(begins, begins + period, Decimal(0), BillStatus.PAID, begins + period)
    if status == SubscriptionStatus.EXPIRED and subscription.ends_at is not None:
        # A cancelled subscription's last period, billed at its access end.
        begins = subscription.current_period_end - period
        if begins not in bills:
            state = BillStatus.OPEN if unbilled > 0 else BillStatus.PAID
            put(begins, subscription.ends_at, unbilled, state, subscription.ends_at)


class _Put(Protocol):
    def __call__(
        self, start: datetime, end: datetime, amount: Decimal, state: BillStatus, due_at: datetime
    ) -> SubscriptionBill: ...


@dataclass(slots=True)
class Entry:
    """A bill as read: the money set against it and the payments that brought it."""

    bill: SubscriptionBill
    paid_usd: Decimal = Decimal(0)
    payments: list[Payment] = field(default_factory=list)

    @property
    def status(self) -> BillStatus:
        """The bill's status; an owed bill the money covers reads as paid (pay-as-you-go money
        that arrives after expiry pays what was consumed without a transition)."""
        if self.bill.status in OWED and self.paid_usd >= self.bill.amount_usd:
            return BillStatus.PAID
        return BillStatus(self.bill.status)

    @property
    def amount_due(self) -> Decimal:
        if self.status not in OWED:
            return Decimal(0)
        return normalize(max(Decimal(0), self.bill.amount_usd - self.paid_usd))


async def entries(session: AsyncSession, subscription: Subscription) -> list[Entry]:
    """Its bills, oldest first, each with the confirmed payments set against it."""
    bills = await bills_of(session, subscription)
    payments = (
        await session.scalars(
            select(Payment)
            .where(
                Payment.session_id == subscription.session_id,
                Payment.status == PaymentStatus.CONFIRMED.value,
            )
            .order_by(Payment.block_number, Payment.log_index, Payment.id)
        )
    ).all()
    return allocate(bills, payments)


def allocate(bills: Sequence[SubscriptionBill], payments: Sequence[Payment]) -> list[Entry]:
    """Set the payments, oldest first, against the bills in period order (see the module)."""
    result = [Entry(bill) for bill in bills]
    with localcontext() as ctx:
        ctx.prec = EXACT_PRECISION
        for payment in payments:
            left = payment.amount_usd
            last: Entry | None = None
            for entry in result:
                bill = entry.bill
                if bill.amount_usd <= 0 or (payment.late and bill.status not in OWED):
                    continue
                if (
                    bill.status in CLOSED_UNPAID
                    and bill.closed_at is not None
                    and (payment.confirmed_at is None or payment.confirmed_at >= bill.closed_at)
                ):
                    continue
                last = entry
                room = bill.amount_usd - entry.paid_usd
                if room <= 0 or left <= 0:
                    continue
                taken = min(room, left)
                entry.paid_usd = normalize(entry.paid_usd + taken)
                entry.payments.append(payment)
                left -= taken
            if left > 0 and last is not None and not payment.late:
                # More than every bill asks: it stays with the newest bill it could pay.
                last.paid_usd = normalize(last.paid_usd + left)
                if payment not in last.payments:
                    last.payments.append(payment)
    return result
