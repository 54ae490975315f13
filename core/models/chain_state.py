"""What the watcher knows of each chain (head, cursor, block ledger), and the named leases and
run records that keep one holder per chain and per periodic job."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, String
from sqlalchemy.orm import Mapped, mapped_column

from core.models.base import Base, UTCDateTime, utcnow


class ChainHead(Base):
    __tablename__ = "chain_heads"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class ChainCursor(Base):
    """The watcher's progress: every block up to `scanned_through` has been scanned."""

    __tablename__ = "chain_cursors"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    scanned_through: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class LedgerBlock(Base):
    """(number, hash, parent hash) of every scanned block that is not final yet: the reorg detector."""

    __tablename__ = "ledger_blocks"

    chain_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    number: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(66))
    parent_hash: Mapped[str] = mapped_column(String(66))


class Lease(Base):
    """Exactly one holder of a named piece of work across processes: whoever holds an unexpired
    lease. Names: `watcher:<chain id>` (one active watcher per chain), `job:<domain.action>`
    (one run of a periodic job at a time)."""

    __tablename__ = "leases"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    owner: Mapped[str] = mapped_column(String(100))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class JobRun(Base):
    """The last outcome of each periodic job, shared by every worker (shown by GET /health)."""

    __tablename__ = "job_runs"

    name: Mapped[str] = mapped_column(String(100), primary_key=True)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # How many rows the last successful run handled (expired, purged, deleted).
    last_count: Mapped[int | None] = mapped_column(BigInteger)
    last_failure_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(500))
