"""Checkout sessions (QBitFlow sessions, Papaya invoices) and their per-token quotes."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, ExactDecimal, TokenAmount, UTCDateTime, utcnow
from core.models.catalog import new_uuid
from core.models.orgs import IdType


class Currency(Base):
    """A stable integer id per (chain, token contract): the SDK's `Currency.id`."""

    __tablename__ = "currencies"
    __table_args__ = (UniqueConstraint("chain_id", "contract"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract: Mapped[str] = mapped_column(String(42))
    symbol: Mapped[str] = mapped_column(String(20))
    decimals: Mapped[int] = mapped_column(Integer)
    test: Mapped[bool] = mapped_column(Boolean, default=False)


class CheckoutSession(Base):
    __tablename__ = "checkout_sessions"
    __table_args__ = (
        UniqueConstraint("uuid"),
        UniqueConstraint("bot_token"),
        UniqueConstraint("deposit_address_id"),
        # The expiry job: open sessions past their deadline, without reading every session.
        Index("ix_checkout_sessions_status_expires_at", "status", "expires_at"),
    )

    # Also the Papaya invoice id (int64).
    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    uuid: Mapped[str] = mapped_column(String(36), default=new_uuid)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    created_by_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    # "payment" (one-time) or "subscription"
    kind: Mapped[str] = mapped_column(String(20))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"), index=True)
    product_name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text)
    price_usd: Mapped[Decimal] = mapped_column(ExactDecimal)
    success_url: Mapped[str | None] = mapped_column(String(2000))
    cancel_url: Mapped[str | None] = mapped_column(String(2000))
    webhook_url: Mapped[str | None] = mapped_column(String(2000))
    customer_id: Mapped[int | None] = mapped_column(ForeignKey("customers.id"), index=True)
    telegram_user_id: Mapped[int | None] = mapped_column(BigInteger)
    frequency_seconds: Mapped[int | None] = mapped_column(BigInteger)
    trial_seconds: Mapped[int | None] = mapped_column(BigInteger)
    min_periods: Mapped[int | None] = mapped_column(Integer)
    # A pay-as-you-go subscription session (`price_usd` is then the price per unit), and the
    # free credits (USD) its subscriber starts with.
    payg: Mapped[bool] = mapped_column(Boolean, default=False)
    free_credits_usd: Mapped[Decimal | None] = mapped_column(ExactDecimal)
    # "api" (QBitFlow /v1), "invoice" (Papaya /api/invoice), "bot"
    source: Mapped[str] = mapped_column(String(20), default="api")
    title: Mapped[str | None] = mapped_column(String(200))
    message: Mapped[str | None] = mapped_column(Text)
    metadata_json: Mapped[str | None] = mapped_column(Text)
    deposit_address_id: Mapped[int] = mapped_column(ForeignKey("deposit_addresses.id"))
    deposit_address: Mapped[str] = mapped_column(String(42), index=True)
    bot_token: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(30), default="created")
    underpaid: Mapped[bool] = mapped_column(Boolean, default=False)
    overpaid: Mapped[bool] = mapped_column(Boolean, default=False)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    other_token: Mapped[bool] = mapped_column(Boolean, default=False)
    paid_usd: Mapped[Decimal] = mapped_column(ExactDecimal, default=Decimal(0))
    chosen_chain_id: Mapped[int | None] = mapped_column(BigInteger)
    chosen_token_contract: Mapped[str | None] = mapped_column(String(42))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class SessionQuote(Base):
    """What the session asks for in one accepted token, fixed when the session is created."""

    __tablename__ = "session_quotes"
    __table_args__ = (UniqueConstraint("session_id", "currency_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("checkout_sessions.id", ondelete="CASCADE"), index=True
    )
    currency_id: Mapped[int] = mapped_column(ForeignKey("currencies.id"))
    chain_id: Mapped[int] = mapped_column(BigInteger)
    token_contract: Mapped[str] = mapped_column(String(42))
    token_symbol: Mapped[str] = mapped_column(String(20))
    decimals: Mapped[int] = mapped_column(Integer)
    usd_peg: Mapped[Decimal] = mapped_column(ExactDecimal)
    amount_base_units: Mapped[int] = mapped_column(TokenAmount)
