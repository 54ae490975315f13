"""Wire shapes of payments (QBitFlow SDK 1.1.0 Payment/CombinedPayment) and the watcher's input."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import Field

from core.checkout.schemas import CurrencyOut
from core.schemas import CamelModel, ExactDecimal


@dataclass(frozen=True, slots=True)
class Transfer:
    """One decoded ERC-20 Transfer log to a deposit address, as the watcher sees it."""

    chain_id: int
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str
    block_timestamp: datetime
    from_address: str
    to_address: str
    token_contract: str
    amount_base_units: int
    final: bool


class SdkPaymentFields(CamelModel):
    """The fields QBitFlow SDK 1.1.0's Payment and SubscriptionHistory share."""

    uuid: str
    created_at: datetime
    from_: str = Field(alias="from")
    to: str
    name: str
    description: str
    amount: ExactDecimal = Field(description="USD, exact")
    currency_id: int
    currency: CurrencyOut
    test: bool
    product_id: int | None
    transaction_hash: str
    customer_uuid: str


class PaymentOut(SdkPaymentFields):
    # chainpay extras
    chain_id: int
    log_index: int
    block_number: int
    amount_base_units: str
    status: str
    late: bool
    session_uuid: str | None


class CombinedPaymentOut(PaymentOut):
    source: str
    subscription_uuid: str | None


class PaymentPage(CamelModel):
    items: list[PaymentOut]
    next_cursor: str | None


class CombinedPaymentPage(CamelModel):
    items: list[CombinedPaymentOut]
    next_cursor: str | None


class TransactionInfoOut(CamelModel):
    uuid: str
    chain_id: int
    chain_name: str
    token_symbol: str
    token_contract: str
    decimals: int
    tx_hash: str
    log_index: int
    block_number: int
    block_hash: str
    block_timestamp: datetime
    confirmations: int | None
    required_confirmations: int | None
    finality: str | None
    status: str
    late: bool
    from_: str = Field(alias="from")
    to: str
    amount_base_units: str
    amount: ExactDecimal = Field(description="Token units, exact")
    amount_usd: ExactDecimal
    organization_fee_bps: int
    organization_fee_usd: ExactDecimal
    merchant_amount_usd: ExactDecimal
    session_uuid: str | None
    subscription_uuid: str | None
    test: bool
    created_at: datetime
    confirmed_at: datetime | None
