"""Reorganisations: find where the chain we scanned forked from the node's, and rewind to it.

The watcher keeps a ledger of the unfinal blocks it scanned (number, hash, parent hash). A
hash that no longer matches the node's means those blocks were replaced: the last height
whose hash still matches is the fork, everything above it is orphaned and scanned again.
The decisions are pure (given block hashes) so they are unit-tested without a chain; the
node is reached only through the `hash_at` callable the watcher passes in.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from core.chainstate import service as chainstate
from core.checkout.context import CheckoutContext
from core.models import Payment
from core.payments import ingest


class LedgerEntry(Protocol):
    """A ledger row as far as fork finding is concerned (`core.models.LedgerBlock`)."""

    @property
    def number(self) -> int: ...

    @property
    def hash(self) -> str: ...


HashAt = Callable[[int], Awaitable[str | None]]


async def find_fork(ledger: Sequence[LedgerEntry], hash_at: HashAt) -> int | None:
    """None when the ledger's tip (`ledger` is newest first) is still canonical, else the last
    common height. `hash_at(n)` is the node's hash of block n, lowercase, or None if it has none."""
    tip = ledger[0]
    if await hash_at(tip.number) == tip.hash:
        return None
    for entry in ledger[1:]:
        if await hash_at(entry.number) == entry.hash:
            return int(entry.number)
    return int(ledger[-1].number) - 1  # everything we kept is gone: fork below the ledger


def breaks_ledger(ledger: Sequence[LedgerEntry], blocks: Sequence[tuple[int, str, str]]) -> bool:
    """The first of the freshly read unfinal `blocks` (number, hash, parent hash) does not
    follow the ledger's tip: the chain moved under us, and the next step's fork check sorts it out."""
    return bool(
        blocks
        and ledger
        and ledger[0].number == blocks[0][0] - 1
        and ledger[0].hash != blocks[0][2]
    )


def replaced_while_reading(
    found: Iterable[tuple[int, str]], blocks: Sequence[tuple[int, str, str]]
) -> bool:
    """Some log (block number, block hash) in `found` comes from a block that `blocks` (read
    after the logs) show was replaced meanwhile."""
    by_number: Mapping[int, str] = {number: block_hash for number, block_hash, _ in blocks}
    return any(
        number in by_number and by_number[number] != block_hash for number, block_hash in found
    )


async def rewind(
    session: AsyncSession, context: CheckoutContext, chain_id: int, fork: int
) -> list[Payment]:
    """Orphan the payments above `fork` (settling their sessions), forget the ledger above it,
    and move the cursor back to it so the blocks are scanned again. Returns the orphaned."""
    orphaned = await ingest.orphan_from(session, context, chain_id, fork + 1)
    await chainstate.forget_blocks(session, chain_id, above=fork)
    await chainstate.set_cursor(session, chain_id, fork)
    return orphaned
