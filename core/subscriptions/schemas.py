"""Wire shapes of subscriptions: QBitFlow SDK 1.1.0 `Subscription` and Papaya's."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import Field

from core.checkout.schemas import CurrencyOut
from core.schemas import CamelModel, ExactDecimal


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
