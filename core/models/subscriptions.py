"""Subscriptions: a locked price per period, paid by pushes to the subscription's own address."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, ExactDecimal, UTCDateTime, utcnow
from core.models.catalog import new_uuid
from core.models.orgs import IdType


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (UniqueConstraint("uuid"), UniqueConstraint("session_id"))

    # Also the Papaya subscription id (int64).
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), default=new_uuid)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    created_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    session_id: Mapped[int] = mapped_column(ForeignKey("checkout_sessions.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger, index=True)
    # Who started a trial when there is no Telegram id (one trial per person and product).
    trial_email: Mapped[str | None] = mapped_column(String(320))
    trial_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # trial, active, past_due, cancelled, expired
    status: Mapped[str] = mapped_column(String(20))
    price_usd: Mapped[Decimal] = mapped_column(ExactDecimal)
    frequency_seconds: Mapped[int] = mapped_column(BigInteger)
    min_periods: Mapped[int | None] = mapped_column(Integer)
    periods_paid: Mapped[int] = mapped_column(Integer, default=0)
    deposit_address: Mapped[str] = mapped_column(String(42), index=True)
    payer_address: Mapped[str | None] = mapped_column(String(42))
    chain_id: Mapped[int | None] = mapped_column(BigInteger)
    currency_id: Mapped[int | None] = mapped_column(ForeignKey("currencies.id"))
    token_symbol: Mapped[str | None] = mapped_column(String(20))
    first_tx_hash: Mapped[str | None] = mapped_column(String(66))
    stopped: Mapped[bool] = mapped_column(Boolean, default=False)
    current_period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    # The lifecycle (core/subscriptions/lifecycle.py): when the next step on the clock is due
    # (renewal request, a reminder, past due, expiry); None when nothing is left to do.
    next_action_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    # The period end whose renewal request is open (`subscription.renewal_due` emitted for it),
    # and how many of its reminders have been queued.
    renewal_due_for: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminders_sent: Mapped[int] = mapped_column(Integer, default=0)
    past_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    expired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A cancelled subscription's access ends here (its period end, or the cancel's time).
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Periods count from here, over the USD paid beyond `anchor_paid_usd` (a subscription that
    # expired and was reactivated by a late payment starts again at that payment).
    anchor_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    anchor_paid_usd: Mapped[Decimal] = mapped_column(ExactDecimal, default=Decimal(0))
    last_billing_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Pay-as-you-go (core/subscriptions/payg.py): billed in arrears at each period end for the
    # period's units at `price_usd` each, less the free credits left; `billed_usd` sums every
    # bill issued (payments since the anchor are set against it), `bill_due_at` is the open
    # bill's deadline (None: no bill open).
    payg: Mapped[bool] = mapped_column(Boolean, default=False)
    units_current_period: Mapped[Decimal] = mapped_column(ExactDecimal, default=Decimal(0))
    free_credits_usd: Mapped[Decimal] = mapped_column(ExactDecimal, default=Decimal(0))
    billed_usd: Mapped[Decimal] = mapped_column(ExactDecimal, default=Decimal(0))
    bill_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SubscriptionBill(Base):
    """One billing period of a subscription: what it asks (USD), for when, and how it ended.

    Written at every transition (core/subscriptions/history.py): a trial, a period paid, a
    renewal request opened, past due, unpaid at expiry, void at cancellation, a pay-as-you-go
    period closed. Which payments paid it is worked out when it is read (payments set against
    the bills in order), so a replayed or reorged payment never sits on two bills.
    """

    __tablename__ = "subscription_bills"
    __table_args__ = (
        UniqueConstraint("uuid"),
        UniqueConstraint("subscription_id", "period_start"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), default=new_uuid)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id"))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime)
    period_end: Mapped[datetime] = mapped_column(UTCDateTime)
    amount_usd: Mapped[Decimal] = mapped_column(ExactDecimal)
    # trial | open | past_due | paid | unpaid | void (core/subscriptions/history.py BillStatus)
    status: Mapped[str] = mapped_column(String(20))
    opened_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
