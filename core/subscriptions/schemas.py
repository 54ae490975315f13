"""Wire shapes of subscriptions: QBitFlow SDK 1.1.0 `Subscription` and Papaya's."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import AfterValidator, Field

from core.catalog.schemas import TelegramUserId
from core.checkout.schemas import CurrencyOut
from core.payments.schemas import PaymentOut, SdkPaymentFields
from core.schemas import CamelModel, ExactDecimal, UsdAmount


class SubscriptionStatus(StrEnum):
    TRIAL = "trial"
    ACTIVE = "active"
    PAST_DUE = "past_due"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


LIVE_STATUSES = frozenset(
    {SubscriptionStatus.TRIAL, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE}
)


class CancelIn(CamelModel):
    when: Literal["end-of-period", "now"] = Field(
        default="end-of-period",
        description="end-of-period: access until the paid period ends; now: access ends at once",
    )


class TrialStartIn(CamelModel):
    """Who starts the trial: a Telegram user, a customer of the organization, or both."""

    telegram_user_id: TelegramUserId | None = None
    customer_uuid: Annotated[str, Field(min_length=1, max_length=36)] | None = None


class BillingCycleOut(CamelModel):
    """The SDK's StatusLinkResponse (message, statusLink) plus what the step did."""

    message: str
    status_link: str = Field(description="Where the subscription's status can be read")
    # chainpay extras
    subscription_uuid: str
    status: str = Field(description="The subscription's status after the step")
    events: list[str] = Field(description="Events the step emitted, in order")
    next_action_at: datetime | None = Field(
        description="When its next step is due on the clock (null: none is left)"
    )


class SubscriptionOut(CamelModel):
    uuid: str
    created_at: datetime
    updated_at: datetime
    from_: str = Field(alias="from")
    to: str
    product_id: int
    subscription_hash: str
    currency_id: int
    currency: CurrencyOut
    test: bool
    customer_uuid: str
    frequency: int
    allowance: ExactDecimal
    subscription_status: str
    stopped: bool
    last_billing_date: datetime | None
    next_billing_date: datetime
    minimum_cancellation_date: datetime | None
    # chainpay extras
    status: str = Field(
        description="trial, active, past_due, cancelled or expired (v1 shows expired as cancelled)"
    )
    telegram_user_id: int | None
    chain_id: int | None
    token_name: str | None
    tx: str | None
    session_uuid: str
    amount_due: ExactDecimal = Field(
        description="USD still to pay for the open renewal (exact; 0 when no bill is open): "
        "the price less what was paid toward the next period so far"
    )


class PaygSubscriptionOut(SubscriptionOut):
    """The SDK's PayAsYouGoSubscription (`allowance` is what one period may bill)."""

    units_current_period: ExactDecimal = Field(description="Usage units in the current period")
    max_spending_per_period: ExactDecimal = Field(
        description="USD one period may bill (the product's maxSpendingPerPeriod, 1000 if unset)"
    )
    free_credits: ExactDecimal = Field(description="USD of free credits left")
    # chainpay extras
    unit_price: ExactDecimal = Field(description="USD per unit")
    bill_due_at: datetime | None = Field(
        description="When the open bill (amountDue) is due; null when no bill is open"
    )


def _positive(value: Decimal) -> Decimal:
    if value <= 0:
        raise ValueError("must be greater than 0")
    return value


class IncreaseUnitsIn(CamelModel):
    subscription_uuid: Annotated[str, Field(min_length=1, max_length=36)]
    increase_by_amount: Annotated[UsdAmount, AfterValidator(_positive)] = Field(
        description="Units to add to the current period (exact decimal, greater than 0)"
    )


class PapayaSubscriptionOut(CamelModel):
    id: int
    chain_id: int | None
    token_name: str | None
    tx: str | None
    tg_user_id: int | None
    user_address: str | None
    created_at: datetime
    is_active: bool


class PapayaSubscriptionPage(CamelModel):
    items: list[PapayaSubscriptionOut]
    total_count: int
    page: int
    limit: int
    total_pages: int


class SubscriptionHistoryOut(SdkPaymentFields):
    """One billing period (core/subscriptions/history.py) in the SDK's `SubscriptionHistory`
    shape: `amount` is what the period bills (USD, exact); `from`, `transactionHash` and the
    currency are those of its latest payment ("" and the empty currency before one), then the
    period, its status and every payment set against it."""

    subscription_uuid: str
    # chainpay: the billing period
    period_start: datetime
    period_end: datetime
    due_at: datetime
    status: Literal["trial", "open", "past_due", "paid", "unpaid", "void"]
    paid_usd: ExactDecimal = Field(description="USD set against this bill so far")
    amount_due: ExactDecimal = Field(description="USD still owed on an open or past-due bill")
    closed_at: datetime | None
    payments: list[PaymentOut]
