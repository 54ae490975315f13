"""The Telegram side's state: who talks to the bot, the cards it keeps up to date, merchants'
linked accounts, paid-channel access, the bot's outgoing queue and its conversation state.

Telegram ids are 64-bit; every chat and user id column is a BigInteger.
"""

from __future__ import annotations

from datetime import datetime

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

from core.models.base import Base, UTCDateTime, utcnow
from core.models.orgs import IdType


class TelegramUser(Base):
    """A person who has talked to the bot: their language and whether they blocked it."""

    __tablename__ = "telegram_users"

    telegram_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    # Chosen with /language; None: follow the language_code Telegram sends.
    language: Mapped[str | None] = mapped_column(String(8))
    # Set when a send answered 403 (the user blocked the bot); cleared when they write again.
    blocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reminders: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TelegramCard(Base):
    """The one message in a chat that shows a session's payment state (edited, never resent)."""

    __tablename__ = "telegram_cards"
    __table_args__ = (UniqueConstraint("session_id", "chat_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    session_id: Mapped[int] = mapped_column(
        ForeignKey("checkout_sessions.id", ondelete="CASCADE"), index=True
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)
    # A payment card is a photo (the QR code) with a caption; the pickers before it are text.
    is_photo: Mapped[bool] = mapped_column(Boolean, default=False)
    # The card's language (the payer's when it was opened).
    language: Mapped[str] = mapped_column(String(8), default="en")
    # SHA-256 of what the message shows: an unchanged card is not edited again.
    fingerprint: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TelegramLinkCode(Base):
    """A one-time code that links a Telegram account to a chainpay user (`/link <code>`)."""

    __tablename__ = "telegram_link_codes"
    __table_args__ = (UniqueConstraint("code_hash"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64))
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # The mode of the key (or `--test`) that made it: the linked account's invoices are test ones.
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TelegramMerchant(Base):
    """A Telegram account linked to a chainpay user: it issues invoices and gets notified."""

    __tablename__ = "telegram_merchants"

    telegram_user_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TelegramClaim(Base):
    """A one-time token that binds a Telegram account to a subscription paid on the web page."""

    __tablename__ = "telegram_claims"
    __table_args__ = (UniqueConstraint("token_hash"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True
    )
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    used_by_telegram_user_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TelegramAccess(Base):
    """A subscriber's access to a product's paid chat: invited, member, or removed."""

    __tablename__ = "telegram_access"
    __table_args__ = (UniqueConstraint("subscription_id", "chat_id"),)

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), index=True
    )
    chat_id: Mapped[int] = mapped_column(BigInteger, index=True)
    telegram_user_id: Mapped[int] = mapped_column(BigInteger, index=True)
    invite_link: Mapped[str | None] = mapped_column(String(200))
    # invited, member, removed
    status: Mapped[str] = mapped_column(String(20), default="invited")
    approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    removed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class TelegramOutbox(Base):
    """What the bot still has to do in Telegram, written in the transaction that decided it.

    The bot's event consumer writes these rows (cheap, in the consumer's transaction); the
    bot's sender does the network calls outside any transaction, claiming rows for a while so
    that several bot replicas never send one twice, and marks each done.
    kinds: `card` (re-render a session's cards), `notify` (a message to a merchant or payer),
    `access_grant` / `access_revoke` (a subscriber's paid chat).
    """

    __tablename__ = "telegram_outbox"
    __table_args__ = (
        # One row per (event, kind, target): an event handled twice queues nothing twice.
        UniqueConstraint("dedupe_key"),
        Index("ix_telegram_outbox_pending", "done_at", "available_at"),
    )

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    dedupe_key: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(30))
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("checkout_sessions.id", ondelete="CASCADE")
    )
    subscription_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE")
    )
    # JSON: the message key and its parameters, rendered in the recipient's language at send.
    payload: Mapped[str] = mapped_column(Text, default="{}")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    available_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    done_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Why it was given up (blocked by the user, chat gone), for the operator.
    error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class TelegramState(Base):
    """aiogram's FSM state and data per storage key, so that bot replicas share it."""

    __tablename__ = "telegram_states"

    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    state: Mapped[str | None] = mapped_column(String(200))
    data: Mapped[str] = mapped_column(Text, default="{}")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
