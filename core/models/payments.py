"""Payments: one ERC-20 Transfer to one of our deposit addresses."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, ExactDecimal, TokenAmount, UTCDateTime, utcnow
from core.models.catalog import new_uuid
from core.models.orgs import IdType


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("chain_id", "tx_hash", "log_index"),
        UniqueConstraint("uuid"),
        # Each watcher step: this chain's seen payments that became final.
        Index("ix_payments_chain_status_block", "chain_id", "status", "block_number"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # Client-generated and unique: lets the ORM batch many INSERTs into one (a "sentinel").
    uuid: Mapped[str] = mapped_column(String(36), default=new_uuid, insert_sentinel=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("checkout_sessions.id"), index=True)
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    currency_id: Mapped[int] = mapped_column(ForeignKey("currencies.id"))
    chain_id: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66))
    log_index: Mapped[int] = mapped_column(Integer)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    block_timestamp: Mapped[datetime] = mapped_column(UTCDateTime)
    from_address: Mapped[str] = mapped_column(String(42))
    to_address: Mapped[str] = mapped_column(String(42), index=True)
    token_contract: Mapped[str] = mapped_column(String(42))
    token_symbol: Mapped[str] = mapped_column(String(20))
    decimals: Mapped[int] = mapped_column(Integer)
    amount_base_units: Mapped[int] = mapped_column(TokenAmount)
    amount_usd: Mapped[Decimal] = mapped_column(ExactDecimal)
    # seen (in an unfinal block), confirmed (final), orphaned (reorged away)
    status: Mapped[str] = mapped_column(String(20), default="seen")
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
