"""What the watcher persists per chain (cursor, unfinal block ledger, head), and named leases."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import ChainCursor, ChainHead, CheckoutSession, JobRun, Lease, LedgerBlock
from core.models.base import utcnow


def watcher_lease(chain_id: int) -> str:
    """The lease that keeps one watcher active per chain."""
    return f"watcher:{chain_id}"


def job_lease(job: str) -> str:
    """The lease that keeps one run of a periodic job (`checkout.expire`) at a time."""
    return f"job:{job}"


async def hold_lease(
    session: AsyncSession, name: str, owner: str, ttl: timedelta, *, now: datetime
) -> bool:
    """Take or renew the named lease inside the caller's transaction (which fences the step).

    On PostgreSQL a competing holder's UPDATE waits on the row and then sees the new owner,
    so two processes never both commit a step under the same lease.
    """
    result = await session.execute(
        update(Lease)
        .where(Lease.name == name, (Lease.owner == owner) | (Lease.expires_at < now))
        .values(owner=owner, expires_at=now + ttl)
    )
    if int(getattr(result, "rowcount", 0) or 0) == 1:
        return True
    if await session.get(Lease, name) is not None:
        return False
    try:
        async with session.begin_nested():
            await session.execute(
                insert(Lease).values(name=name, owner=owner, expires_at=now + ttl)
            )
    except IntegrityError:
        return False
    return True


async def release_lease(session: AsyncSession, name: str, owner: str) -> None:
    """Give the lease up (a successor takes over at once), if `owner` still holds it."""
    await session.execute(delete(Lease).where(Lease.name == name, Lease.owner == owner))


async def job_runs(session: AsyncSession) -> Sequence[JobRun]:
    """Every periodic job's last outcome, by name (what GET /health shows)."""
    return (await session.scalars(select(JobRun).order_by(JobRun.name))).all()


async def cursor(session: AsyncSession, chain_id: int) -> int | None:
    row = await session.get(ChainCursor, chain_id)
    return row.scanned_through if row is not None else None


async def set_cursor(session: AsyncSession, chain_id: int, scanned_through: int) -> None:
    row = await session.get(ChainCursor, chain_id)
    if row is None:
        session.add(ChainCursor(chain_id=chain_id, scanned_through=scanned_through))
        await session.flush()
    else:
        row.scanned_through = scanned_through
        row.updated_at = utcnow()  # written with the rest of the step


async def set_head(session: AsyncSession, chain_id: int, number: int, block_hash: str) -> None:
    row = await session.get(ChainHead, chain_id)
    if row is None:
        # Flushed now, so that session.get() finds it for the payment events of this step.
        session.add(ChainHead(chain_id=chain_id, block_number=number, block_hash=block_hash))
        await session.flush()
    elif number >= row.block_number or block_hash != row.block_hash:
        row.block_number = number
        row.block_hash = block_hash
        row.updated_at = utcnow()  # written with the rest of the step


async def ledger_desc(session: AsyncSession, chain_id: int) -> Sequence[LedgerBlock]:
    rows = await session.scalars(
        select(LedgerBlock)
        .where(LedgerBlock.chain_id == chain_id)
        .order_by(LedgerBlock.number.desc())
    )
    return rows.all()


async def ledger_tip(session: AsyncSession, chain_id: int) -> LedgerBlock | None:
    return await session.scalar(
        select(LedgerBlock)
        .where(LedgerBlock.chain_id == chain_id)
        .order_by(LedgerBlock.number.desc())
        .limit(1)
    )


async def record_blocks(
    session: AsyncSession, chain_id: int, blocks: Iterable[tuple[int, str, str]]
) -> None:
    """Remember (number, hash, parent hash) of scanned unfinal blocks (replacing same heights)."""
    for number, block_hash, parent_hash in blocks:
        existing = await session.get(LedgerBlock, (chain_id, number))
        if existing is None:
            session.add(
                LedgerBlock(
                    chain_id=chain_id, number=number, hash=block_hash, parent_hash=parent_hash
                )
            )
        else:
            existing.hash = block_hash
            existing.parent_hash = parent_hash
    await session.flush()


async def forget_blocks(
    session: AsyncSession, chain_id: int, *, above: int | None = None, through: int | None = None
) -> None:
    """Drop ledger rows above a fork point, or at/below the final block (no longer needed)."""
    stmt = delete(LedgerBlock).where(LedgerBlock.chain_id == chain_id)
    if above is not None:
        stmt = stmt.where(LedgerBlock.number > above)
    if through is not None:
        stmt = stmt.where(LedgerBlock.number <= through)
    await session.execute(stmt)


async def deposit_addresses_since(
    session: AsyncSession, after_id: int, *, limit: int = 50_000
) -> Sequence[tuple[int, str]]:
    """(session id, deposit address) of sessions made after `after_id`, oldest first.

    Deposit addresses are never changed or removed, so a watcher keeps them all in memory and
    only asks for the new ones each step: matching a log is then a set lookup.
    """
    rows = await session.execute(
        select(CheckoutSession.id, CheckoutSession.deposit_address)
        .where(CheckoutSession.id > after_id)
        .order_by(CheckoutSession.id)
        .limit(limit)
    )
    return [(int(r[0]), str(r[1])) for r in rows]


async def deposit_addresses_by_id(
    session: AsyncSession, ids: Sequence[int]
) -> Sequence[tuple[int, str]]:
    """(session id, deposit address) of those of these sessions that exist."""
    found: list[tuple[int, str]] = []
    for start in range(0, len(ids), 500):
        rows = await session.execute(
            select(CheckoutSession.id, CheckoutSession.deposit_address).where(
                CheckoutSession.id.in_(ids[start : start + 500])
            )
        )
        found.extend((int(r[0]), str(r[1])) for r in rows)
    return found
