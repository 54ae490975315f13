"""An organization's receiving wallet (an account xpub) and the deposit addresses derived from it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, UTCDateTime, utcnow
from core.models.orgs import IdType


class OrganizationWallet(Base):
    __tablename__ = "organization_wallets"
    __table_args__ = (UniqueConstraint("xpub"),)

    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    xpub: Mapped[str] = mapped_column(String(200))
    # The next unused address index; bumped with UPDATE ... RETURNING so it is never handed out twice.
    next_index: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class DepositAddress(Base):
    __tablename__ = "deposit_addresses"
    __table_args__ = (
        UniqueConstraint("address"),
        UniqueConstraint("organization_id", "xpub_fingerprint", "derivation_index"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    # Checksummed; the same address on every EVM chain.
    address: Mapped[str] = mapped_column(String(42))
    xpub_fingerprint: Mapped[str] = mapped_column(String(16))
    derivation_index: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
