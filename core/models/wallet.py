"""An organization's receiving wallet (an account xpub) and the deposit addresses derived from it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, UTCDateTime, utcnow
from core.models.orgs import IdType


class WalletAccount(Base):
    """An account an organization has ever received at, and the next unused index of its addresses.

    The account is its public key and chain code (`account_key`), not the xpub string: the same
    account re-encoded (another parent fingerprint or child number) derives the same addresses.
    A row is never handed to another organization, and switching away keeps it, so coming back
    to an account continues after the addresses it handed out.
    """

    __tablename__ = "wallet_accounts"

    # sha256 hex of the compressed public key followed by the chain code.
    account_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    xpub: Mapped[str] = mapped_column(String(200))  # as last registered, for display
    # Bumped with UPDATE ... RETURNING so an index is never handed out twice.
    next_index: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the account was last registered (allocations do not touch it).
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class OrganizationWallet(Base):
    """The account an organization receives at now."""

    __tablename__ = "organization_wallets"

    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True
    )
    account_key: Mapped[str] = mapped_column(
        ForeignKey("wallet_accounts.account_key", ondelete="CASCADE")
    )
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
    # The account's `WalletAccount.account_key` (named before accounts were keyed by their key).
    xpub_fingerprint: Mapped[str] = mapped_column(String(64))
    derivation_index: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
