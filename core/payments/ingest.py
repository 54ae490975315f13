"""Payments in: record transfers to deposit addresses, confirm or orphan them as their chain
moves on, and hand their sessions to settlement (`core.checkout.settlement`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import lru_cache
from typing import Any

from eth_hash.auto import keccak
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.checkout import repository as checkout_repository
from core.checkout import service as checkout_service
from core.checkout import settlement
from core.checkout.context import CheckoutContext
from core.checkout.state import PaymentStatus
from core.db import LOCK_CHUNK, chunks, insert_many, lock_where
from core.models import ChainHead, CheckoutSession, Payment, Subscription
from core.models.catalog import new_uuid
from core.money import base_units_to_usd
from core.payments.schemas import Transfer


async def apply_transfer(
    session: AsyncSession, context: CheckoutContext, transfer: Transfer
) -> Payment | None:
    """One transfer; see `apply_transfers`."""
    applied = await apply_transfers(session, context, [transfer])
    return applied[0] if applied else None


async def apply_transfers(
    session: AsyncSession,
    context: CheckoutContext,
    transfers: Sequence[Transfer],
    *,
    sessions_by_address: dict[str, CheckoutSession] | None = None,
) -> list[Payment]:
    """Record (or update) the payments for a batch of transfers and bring their sessions up to date.

    Idempotent: a payment's identity is (chain id, tx hash, log index), so seeing the same
    transfer again only moves it from seen to confirmed (or revives it after a reorg put it back).
    Transfers to addresses we do not know, of unconfigured tokens, or of zero value are ignored.
    The whole batch costs a handful of queries, not a handful per transfer: the watcher's step
    hands over everything it found in its range at once. `sessions_by_address`: what
    `lock_step_sessions` found for these transfers (then they are not looked up again).
    """
    usable = []
    for transfer in transfers:
        chain = context.registry.get(transfer.chain_id)
        token = chain.token(transfer.token_contract) if chain else None
        if transfer.amount_base_units > 0 and chain is not None and token is not None:
            usable.append((transfer, chain, token, checksum_address(transfer.to_address)))
    if not usable:
        return []
    if sessions_by_address is None:
        sessions_by_address = {}
        for chunk in chunks(sorted({u[3] for u in usable})):
            for checkout in await session.scalars(
                select(CheckoutSession).where(CheckoutSession.deposit_address.in_(chunk))
            ):
                sessions_by_address[checkout.deposit_address] = checkout
    usable = [
        u
        for u in usable
        if u[3] in sessions_by_address and sessions_by_address[u[3]].test == u[1].test
    ]
    if not usable:
        return []  # not ours, or a live address paid on a test network (or back): not money
    # Every batch transfer belongs to one of these sessions: each is recomputed once, from all
    # of its payments. One query finds those payments and any with a batch transfer's identity
    # (the same log always pays the same address, so in practice these are the same rows).
    touched = {sessions_by_address[u[3]].id: sessions_by_address[u[3]] for u in usable}
    # Locked before their payments are read: another chain's step crediting the same session
    # waits here, then reads the payments the first one committed (one query per 500 sessions).
    touched = await checkout_repository.lock_sessions(session, touched)
    hashes_by_chain: dict[int, set[str]] = {}
    for u in usable:
        hashes_by_chain.setdefault(u[0].chain_id, set()).add(u[0].tx_hash.lower())
    existing: dict[tuple[int, str, int], Payment] = {}
    payments_of: dict[int, list[Payment]] = {}
    for known in await _payments_of_sessions_or_txs(session, list(touched), hashes_by_chain):
        existing[(known.chain_id, known.tx_hash, known.log_index)] = known
        if known.session_id in touched:
            payments_of.setdefault(known.session_id, []).append(known)
    subscription_of: dict[int, int] = {}
    # Only subscription sessions ever have a subscription (one-time payments skip the query).
    for chunk in chunks(sorted(i for i, c in touched.items() if c.kind == "subscription")):
        for sub_id, session_id in await session.execute(
            select(Subscription.id, Subscription.session_id).where(
                Subscription.session_id.in_(chunk)
            )
        ):
            subscription_of[int(session_id)] = int(sub_id)

    now = context.clock.now()
    changed: list[tuple[CheckoutSession, Payment, bool]] = []
    # New payments are inserted in one statement; a key seen twice in the batch is one payment
    # (the later sighting's block wins, final if either was).
    new_rows: dict[tuple[int, str, int], dict[str, Any]] = {}
    for transfer, chain, token, to_address in usable:
        checkout = sessions_by_address[to_address]
        key = (transfer.chain_id, transfer.tx_hash.lower(), transfer.log_index)
        status = PaymentStatus.CONFIRMED if transfer.final else PaymentStatus.SEEN
        payment = existing.get(key)
        if payment is None:
            row = new_rows.get(key)
            final = transfer.final or (row is not None and row["confirmed_at"] is not None)
            new_rows[key] = {
                "uuid": row["uuid"] if row is not None else new_uuid(),
                "organization_id": checkout.organization_id,
                "test": checkout.test,
                "session_id": checkout.id,
                "subscription_id": subscription_of.get(checkout.id),
                "currency_id": await checkout_service.currency_id(
                    session, context, chain.id, token.contract
                ),
                "chain_id": transfer.chain_id,
                "tx_hash": key[1],
                "log_index": transfer.log_index,
                "block_number": transfer.block_number,
                "block_hash": transfer.block_hash.lower(),
                "block_timestamp": transfer.block_timestamp,
                "from_address": checksum_address(transfer.from_address),
                "to_address": to_address,
                "token_contract": token.contract,
                "token_symbol": token.symbol,
                "decimals": token.decimals,
                "amount_base_units": transfer.amount_base_units,
                "amount_usd": base_units_to_usd(
                    transfer.amount_base_units, decimals=token.decimals, usd_per_token=token.usd_peg
                ),
                "status": (PaymentStatus.CONFIRMED if final else PaymentStatus.SEEN).value,
                "late": False,
                "confirmed_at": now if final else None,
                "created_at": now,
                "updated_at": now,
            }
        else:
            previous = payment.status
            payment.block_number = transfer.block_number
            payment.block_hash = transfer.block_hash.lower()
            payment.block_timestamp = transfer.block_timestamp
            if transfer.final and payment.status != PaymentStatus.CONFIRMED.value:
                payment.status = PaymentStatus.CONFIRMED.value
                payment.confirmed_at = now
            elif payment.status == PaymentStatus.ORPHANED.value:
                payment.status = status.value
            payment.updated_at = now
            if previous != payment.status:
                changed.append((checkout, payment, True))
    if new_rows:
        # One INSERT ... RETURNING for the batch: the rows come back as persistent objects with
        # their ids, which the events below need (no unit-of-work round per payment). They are
        # matched to their sessions by content, so the order they come back in does not matter.
        statement, parameters = insert_many(session, Payment, list(new_rows.values()))
        inserted = await session.scalars(statement.returning(Payment), parameters)
        for payment in inserted:
            assert payment.session_id is not None
            existing[(payment.chain_id, payment.tx_hash, payment.log_index)] = payment
            payments_of.setdefault(payment.session_id, []).append(payment)
            changed.append((touched[payment.session_id], payment, False))
    applied = [existing[(t.chain_id, t.tx_hash.lower(), t.log_index)] for t, _, _, _ in usable]
    heads = {
        chain_id: await session.get(ChainHead, chain_id)
        for chain_id in {u[0].chain_id for u in usable}
    }
    described = await settlement.load_described(session, touched.values())
    await settlement.settle_many(
        session, context, touched, payments_of, changed, now=now, heads=heads
    )
    await session.flush()
    del described
    return applied


@dataclass(slots=True)
class StepLocks:
    """What `lock_step_sessions` found: the sessions of the transfers' addresses by address
    (for `apply_transfers`) and the chain's seen payments that are final now (for
    `confirm_through`, which then does not look them up again)."""

    sessions_by_address: dict[str, CheckoutSession] = field(default_factory=dict)
    now_final: list[Payment] | None = None


async def lock_step_sessions(
    session: AsyncSession, chain_id: int, transfers: Sequence[Transfer], final_block: int
) -> StepLocks:
    """Lock, in one pass in id order, every session a watcher step will settle: those its
    transfers pay (`apply_transfers`) and those with seen payments now final (`confirm_through`).

    Each of those two locks its own sessions too; a step that let them lock one set after the
    other could hold one session while waiting for another that a concurrent path (the other
    chain's step, the expiry job) holds while it waits for the first. Locked here first, they
    find theirs held already. A step without transfers locks nothing here: `confirm_through`
    is then the only one to lock, one set in id order, and does so itself.

    Two statements per step: the seen payments now final (the rows `confirm_through` confirms,
    read once), then `SELECT ... WHERE deposit_address IN (...) OR id IN (...) ORDER BY id FOR
    NO KEY UPDATE`, with both lists as values so that PostgreSQL finds the rows through their
    indexes (with the payments as a subquery it walked every session in id order to filter
    them). A step paying more than 500 addresses looks their ids up first, so that one ordered
    pass still locks them all. The payments are read before their sessions are locked: only
    this chain's watcher (holding its lease) changes their status, and what others change on
    them (`late`) is read again as of the lock by `apply_transfers` and `confirm_through`.
    """
    addresses = sorted(
        {checksum_address(t.to_address) for t in transfers if t.amount_base_units > 0}
    )
    if not addresses:
        return StepLocks()
    now_final = list(await _seen_through(session, chain_id, final_block))
    final_ids = sorted({p.session_id for p in now_final if p.session_id is not None})
    if len(addresses) + len(final_ids) <= LOCK_CHUNK:
        by_address = CheckoutSession.deposit_address.in_(addresses)
        locked = await lock_where(
            session,
            CheckoutSession,
            or_(by_address, CheckoutSession.id.in_(final_ids)) if final_ids else by_address,
        )
    else:
        ids: set[int] = set(final_ids)
        for chunk in chunks(addresses):
            ids.update(
                await session.scalars(
                    select(CheckoutSession.id).where(CheckoutSession.deposit_address.in_(chunk))
                )
            )
        locked = await checkout_repository.lock_sessions(session, ids)
    wanted = set(addresses)
    return StepLocks(
        {c.deposit_address: c for c in locked.values() if c.deposit_address in wanted},
        now_final,
    )


async def _seen_through(
    session: AsyncSession, chain_id: int, final_block: int
) -> Sequence[Payment]:
    """The chain's seen payments at or below `final_block`: final now, to be confirmed."""
    return (
        await session.scalars(
            select(Payment).where(
                Payment.chain_id == chain_id,
                Payment.status == PaymentStatus.SEEN.value,
                Payment.block_number <= final_block,
            )
        )
    ).all()


async def _payments_of_sessions_or_txs(
    session: AsyncSession, session_ids: list[int], hashes_by_chain: dict[int, set[str]]
) -> list[Payment]:
    """Payments of these sessions, and payments in these (chain, transaction hash) pairs, as
    of now (the caller has locked the sessions): a payment this transaction read before the
    lock (`lock_step_sessions`) may have been changed since by a path holding its session."""
    await session.flush()  # what this transaction changed is written before rows are reloaded
    found: dict[int, Payment] = {}
    pairs = [(c, h) for c, hashes in hashes_by_chain.items() for h in sorted(hashes)]
    for start in range(0, max(len(session_ids), len(pairs)), 500):
        ids = session_ids[start : start + 500]
        by_tx = [
            (Payment.chain_id == chain_id) & Payment.tx_hash.in_([h for c, h in chunk])
            for chain_id in hashes_by_chain
            if (chunk := [p for p in pairs[start : start + 500] if p[0] == chain_id])
        ]
        for payment in await session.scalars(
            select(Payment)
            .where(or_(Payment.session_id.in_(ids), *by_tx))
            .execution_options(populate_existing=True)
        ):
            found[payment.id] = payment
    return list(found.values())


@lru_cache(maxsize=65_536)
def checksum_address(address: str) -> str:
    """EIP-55 form of a 20-byte hex address (`0x` + 40 hex digits, any case).

    eth_utils' to_checksum_address validates its arguments on every call (about 0.1 ms each);
    the watcher's addresses are already well-formed, so this hashes and cases directly.
    """
    digits = address[2:].lower() if address[:2] in ("0x", "0X") else address.lower()
    if len(digits) != 40 or digits.strip(_HEX_DIGITS):
        raise ValueError(f"not a 20-byte hex address: {address!r}")
    hashed = keccak(digits.encode("ascii")).hex()
    return "0x" + "".join(
        char.upper() if nibble in "89abcdef" else char
        for char, nibble in zip(digits, hashed, strict=False)
    )


_HEX_DIGITS = "0123456789abcdef"


async def confirm_through(
    session: AsyncSession,
    context: CheckoutContext,
    chain_id: int,
    final_block: int,
    *,
    now_final: Sequence[Payment] | None = None,
) -> list[Payment]:
    """Seen payments at or below `final_block` are final now: confirm them and settle sessions.

    `now_final`: those payments as `lock_step_sessions` read them earlier in this transaction
    (then they are not looked up again; the ones this transaction has confirmed or moved since,
    as `apply_transfers` does with a transfer seen again, are left out here as the query would).
    """
    if now_final is None:
        rows = await _seen_through(session, chain_id, final_block)
    else:
        rows = [
            p
            for p in now_final
            if p.chain_id == chain_id
            and p.status == PaymentStatus.SEEN.value
            and p.block_number <= final_block
        ]
    now = context.clock.now()

    def confirm(payment: Payment) -> None:
        payment.status = PaymentStatus.CONFIRMED.value
        payment.confirmed_at = now
        payment.updated_at = now

    await _change_status(session, context, rows, confirm, now=now)
    return list(rows)


async def orphan_from(
    session: AsyncSession, context: CheckoutContext, chain_id: int, first_block: int
) -> list[Payment]:
    """A reorg replaced every block from `first_block` on: their payments are orphaned."""
    rows = (
        await session.scalars(
            select(Payment).where(
                Payment.chain_id == chain_id,
                Payment.status != PaymentStatus.ORPHANED.value,
                Payment.block_number >= first_block,
            )
        )
    ).all()
    now = context.clock.now()

    def orphan(payment: Payment) -> None:
        payment.status = PaymentStatus.ORPHANED.value
        payment.updated_at = now

    await _change_status(session, context, rows, orphan, now=now)
    return list(rows)


async def _change_status(
    session: AsyncSession,
    context: CheckoutContext,
    payments: Sequence[Payment],
    change: Callable[[Payment], None],
    *,
    now: datetime,
) -> None:
    """Lock the payments' sessions, `change` each payment, then settle the sessions and emit.

    The payments are changed only once their sessions are locked (so this step never holds a
    payment row while it waits for a session that another path holds while it writes that
    payment), and every payment of those sessions is read again as of the lock.
    """
    await session.flush()
    checkouts = await checkout_repository.lock_sessions(
        session, {p.session_id for p in payments if p.session_id is not None}
    )
    payments_of: dict[int, list[Payment]] = {}
    for chunk in chunks(sorted(checkouts)):
        for payment in await session.scalars(
            select(Payment)
            .where(Payment.session_id.in_(chunk))
            .execution_options(populate_existing=True)
        ):
            assert payment.session_id is not None
            payments_of.setdefault(payment.session_id, []).append(payment)
    described = await settlement.load_described(session, checkouts.values())
    for payment in payments:
        change(payment)
    changed = [
        (checkouts[p.session_id], p, True)
        for p in payments
        if p.session_id is not None and p.session_id in checkouts
    ]
    await settlement.settle_many(session, context, checkouts, payments_of, changed, now=now)
    await session.flush()
    del described
