"""The outbox: events written in the same transaction as the state change that caused them."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, UTCDateTime, utcnow
from core.models.catalog import new_uuid
from core.models.orgs import IdType


class Event(Base):
    __tablename__ = "events"

    id: Mapped[int] = mapped_column(IdType, primary_key=True)
    # Client-generated and unique: lets the ORM batch many INSERTs into one (a "sentinel").
    uuid: Mapped[str] = mapped_column(
        String(36), default=new_uuid, unique=True, insert_sentinel=True
    )
    organization_id: Mapped[int] = mapped_column(
        ForeignKey("organizations.id", ondelete="CASCADE"), index=True
    )
    test: Mapped[bool] = mapped_column(Boolean, default=False)
    type: Mapped[str] = mapped_column(String(60), index=True)
    session_id: Mapped[int | None] = mapped_column(ForeignKey("checkout_sessions.id"), index=True)
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id"), index=True)
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id"), index=True)
    # Canonical JSON of the event's data (camelCase), decided when the event happens.
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class EventConsumer(Base):
    """One reader of the outbox besides webhooks (the bot, ...): every event up to `after_id`
    was handled, except the ids in `holes` (skipped while their transaction was in flight)."""

    __tablename__ = "event_consumers"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    after_id: Mapped[int] = mapped_column(BigInteger, default=0)
    # JSON object: skipped event id -> Unix time it was first missed (see core/cursor.py).
    holes: Mapped[str] = mapped_column(Text, default="{}")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
