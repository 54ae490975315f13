"""Wire shapes for checkout sessions (QBitFlow SDK 1.1.0 field names, plus our extras)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, Field, StrictInt

from core.schemas import CamelModel, ExactDecimal, LongText, ShortText, UsdAmount

SECONDS_PER_UNIT = {
    "seconds": 1,
    "minutes": 60,
    "hours": 3600,
    "days": 86_400,
    "weeks": 604_800,
    # QBitFlow counts frequencies in seconds; a month is 30 days here.
    "months": 2_592_000,
}
MIN_FREQUENCY_SECONDS = 86_400
MAX_FREQUENCY_SECONDS = 5 * 365 * 86_400
MAX_TRIAL_SECONDS = 365 * 86_400


def _check_url(value: str) -> str:
    # {{UUID}} and {{TRANSACTION_TYPE}} are filled in when the payer is sent there.
    probe = value.replace("{{UUID}}", "x").replace("{{TRANSACTION_TYPE}}", "x")
    if not (probe.startswith("https://") or probe.startswith("http://")):
        raise ValueError("must be an absolute http(s) URL")
    rest = probe.split("://", 1)[1]
    host = rest.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    if not host or any(c.isspace() for c in probe) or "@" in host:
        raise ValueError("must be an absolute http(s) URL with a host")
    return value


# What _check_url accepts, for the OpenAPI document: http(s)://host, no spaces, no user@.
URL_PATTERN = r"^https?://[^\s/?#@\x1c-\x1f\x85]+(?:[/?#][^\s\x1c-\x1f\x85]*)?$"
Url = Annotated[
    str, Field(min_length=10, max_length=2000, pattern=URL_PATTERN), AfterValidator(_check_url)
]


class Duration(CamelModel):
    value: StrictInt = Field(gt=0, le=10**9)
    unit: Literal["seconds", "minutes", "hours", "days", "weeks", "months"]

    @property
    def seconds(self) -> int:
        return self.value * SECONDS_PER_UNIT[self.unit]


class SubscriptionOptionsIn(CamelModel):
    subscription_type: Literal["subscription", "payAsYouGo"]
    frequency: Duration
    trial_period: Duration | None = None
    free_credits: UsdAmount | None = None
    min_periods: StrictInt | None = Field(default=None, gt=0, le=1000)


class SessionCreate(CamelModel):
    """Either productId, or productName + description + price."""

    product_id: StrictInt | None = Field(default=None, gt=0, le=2**63 - 1)
    product_name: ShortText | None = None
    description: LongText | None = None
    price: UsdAmount | None = None
    success_url: Url | None = None
    cancel_url: Url | None = None
    webhook_url: Url | None = None
    customer_uuid: Annotated[str, Field(max_length=36)] | None = None
    options: SubscriptionOptionsIn | None = None


class TokenAmountOut(CamelModel):
    currency_id: int
    chain_id: int
    chain_name: str
    symbol: str
    contract: str
    decimals: int
    amount_base_units: str = Field(description="Integer as a string: exact beyond 2**53")
    amount: ExactDecimal = Field(description="Token units, exact")


class LinkOut(CamelModel):
    uuid: str
    invoice_id: int = Field(description="The same session's id in the Papaya-style /api/invoice")
    link: str
    expires_at: int = Field(description="Unix seconds")
    bot_url: str | None
    deposit_address: str
    amounts: list[TokenAmountOut]
    test: bool


class CurrencyOut(CamelModel):
    id: int
    name: str
    symbol: str
    decimals: int
    address: str
    main_currency_id: int | None = None
    main_currency: None = None
    test: bool
    chain_id: int


class SubscriptionOptionsOut(CamelModel):
    frequency: int
    trial_period: int | None
    free_credits: ExactDecimal | None
    subscription_type: str
    min_periods: int | None


class SessionOut(CamelModel):
    uuid: str
    product_id: int | None
    product_name: str
    description: str
    price: ExactDecimal
    organization_name: str
    success_url: str | None
    cancel_url: str | None
    customer_uuid: str
    options: SubscriptionOptionsOut | None
    available_currencies: list[CurrencyOut]
    # chainpay extras (ignored by the SDK)
    invoice_id: int
    status: str
    underpaid: bool
    overpaid: bool
    late: bool
    other_token: bool
    paid_usd: ExactDecimal
    remaining_usd: ExactDecimal
    expires_at: int
    link: str
    bot_url: str | None
    deposit_address: str
    amounts: list[TokenAmountOut]
    telegram_user_id: int | None
    test: bool


class TransactionStatusOut(CamelModel):
    type: str
    status: str
    tx_hash: str | None
    message: str | None


class MetadataModel(CamelModel):
    metadata: dict[str, Any] | None = None


PAPAYA_PERIODS = {
    "PerDay": 86_400,
    "PerWeek": 604_800,
    "PerMonth": 2_592_000,
    "PerYear": 31_536_000,
}


def _small_metadata(value: dict[str, Any] | None) -> dict[str, Any] | None:
    if value is not None and len(json.dumps(value, default=str)) > 16_384:
        raise ValueError("must serialize to at most 16 KiB of JSON")
    return value


class InvoiceCreate(CamelModel):
    """Papaya's invoice: no period is a one-time invoice, a period is a subscription link."""

    title: ShortText | None = None
    message: Annotated[str, Field(max_length=4096)] | None = None
    rate: UsdAmount
    period: Literal["PerDay", "PerWeek", "PerMonth", "PerYear"] | None = None
    metadata: Annotated[dict[str, Any] | None, AfterValidator(_small_metadata)] = None


class InvoiceOut(CamelModel):
    id: int
    rate: ExactDecimal
    created_at: datetime
    bot_url: str | None


class InvoiceDetailOut(CamelModel):
    id: int
    recipient: str | None = Field(description="Telegram id of the payer, once known")
    rate: ExactDecimal
    created_at: datetime
    is_paid: bool
    metadata: dict[str, Any] | None
    bot_url: str | None
    # chainpay extras
    uuid: str
    status: str
    period: str | None
    link: str
