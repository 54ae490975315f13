"""The offset a `DatabaseClock` (core/clock.py) adds to the machine's time: tests that span
processes move it in one place and every process follows."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, UTCDateTime, utcnow


class ClockOffset(Base):
    __tablename__ = "clock_offsets"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    offset_ms: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
