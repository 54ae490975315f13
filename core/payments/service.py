"""Payments: record transfers to deposit addresses, recompute their sessions, and read them back."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import lru_cache, partial
from typing import Any

import structlog
from eth_hash.auto import keccak
from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.checkout import repository as checkout_repository
from core.checkout import service as checkout_service
from core.checkout.context import CheckoutContext
from core.checkout.state import (
    OPEN_STATUSES,
    PaymentFact,
    PaymentStatus,
    SessionFacts,
    SessionStatus,
    decide,
)
from core.db import insert_many, on_commit
from core.errors import NotFound
from core.events import service as events_service
from core.logs import log_on_commit
from core.models import (
    ChainHead,
    CheckoutSession,
    Currency,
    Customer,
    Organization,
    Payment,
    Subscription,
    User,
)
from core.models.catalog import new_uuid
from core.money import base_units_to_tokens, base_units_to_usd, normalize
from core.orgs.schemas import Principal
from core.pagination import decode_cursor, encode_cursor
from core.payments.schemas import (
    CombinedPaymentOut,
    PaymentOut,
    TransactionInfoOut,
    Transfer,
)
from core.subscriptions import service as subscriptions_service

log = structlog.get_logger(__name__)

DEFAULT_PAGE = 50


class PaymentNotFound(NotFound):
    def __init__(self, param: str = "uuid") -> None:
        super().__init__("Payment not found", param=param)


async def apply_transfer(
    session: AsyncSession, context: CheckoutContext, transfer: Transfer
) -> Payment | None:
    """One transfer; see `apply_transfers`."""
    applied = await apply_transfers(session, context, [transfer])
    return applied[0] if applied else None


async def apply_transfers(
    session: AsyncSession, context: CheckoutContext, transfers: Sequence[Transfer]
) -> list[Payment]:
    """Record (or update) the payments for a batch of transfers and bring their sessions up to date.

    Idempotent: a payment's identity is (chain id, tx hash, log index), so seeing the same
    transfer again only moves it from seen to confirmed (or revives it after a reorg put it back).
    Transfers to addresses we do not know, of unconfigured tokens, or of zero value are ignored.
    The whole batch costs a handful of queries, not a handful per transfer: the watcher's step
    hands over everything it found in its range at once.
    """
    usable = []
    for transfer in transfers:
        chain = context.registry.get(transfer.chain_id)
        token = chain.token(transfer.token_contract) if chain else None
        if transfer.amount_base_units > 0 and chain is not None and token is not None:
            usable.append((transfer, chain, token, checksum_address(transfer.to_address)))
    if not usable:
        return []
    sessions_by_address: dict[str, CheckoutSession] = {}
    for chunk in _chunks(sorted({u[3] for u in usable})):
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
    for chunk in _chunks(sorted(i for i, c in touched.items() if c.kind == "subscription")):
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
                "currency_id": await _currency_id(session, context, chain.id, token.contract),
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
    described = await _load_described(session, touched.values())
    await _settle_all(session, context, touched, payments_of, changed, now=now, heads=heads)
    await session.flush()
    del described
    return applied


async def lock_step_sessions(
    session: AsyncSession, chain_id: int, transfers: Sequence[Transfer], final_block: int
) -> None:
    """Lock, in one pass in id order, every session a watcher step will settle: those its
    transfers pay (`apply_transfers`) and those with seen payments now final (`confirm_through`).

    Each of those two locks its own sessions too; a step that let them lock one set after the
    other could hold one session while waiting for another that a concurrent path (the other
    chain's step, the expiry job) holds while it waits for the first. Locked here first, they
    find theirs held already. Two queries and the lock per step, none per session.
    """
    addresses = sorted(
        {checksum_address(t.to_address) for t in transfers if t.amount_base_units > 0}
    )
    ids: set[int] = set()
    for chunk in _chunks(addresses):
        ids.update(
            await session.scalars(
                select(CheckoutSession.id).where(CheckoutSession.deposit_address.in_(chunk))
            )
        )
    ids.update(
        session_id
        for session_id in await session.scalars(
            select(Payment.session_id)
            .distinct()
            .where(
                Payment.chain_id == chain_id,
                Payment.status == PaymentStatus.SEEN.value,
                Payment.block_number <= final_block,
            )
        )
        if session_id is not None
    )
    await checkout_repository.lock_sessions(session, ids)


async def _load_described(
    session: AsyncSession, checkouts: Iterable[CheckoutSession]
) -> list[Organization | Customer]:
    """The organizations and customers that these sessions' events describe, in two queries.

    The caller keeps the list while it emits: the identity map holds objects weakly, so without
    a reference each event would load its session's organization again (one query per event).
    """
    checkouts = list(checkouts)
    loaded: list[Organization | Customer] = []
    org_ids = sorted({c.organization_id for c in checkouts})
    customer_ids = sorted({c.customer_id for c in checkouts if c.customer_id is not None})
    for chunk in _chunks(org_ids):
        loaded.extend(await session.scalars(select(Organization).where(Organization.id.in_(chunk))))
    for chunk in _chunks(customer_ids):
        loaded.extend(await session.scalars(select(Customer).where(Customer.id.in_(chunk))))
    return loaded


async def _payments_of_sessions_or_txs(
    session: AsyncSession, session_ids: list[int], hashes_by_chain: dict[int, set[str]]
) -> list[Payment]:
    """Payments of these sessions, and payments in these (chain, transaction hash) pairs."""
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
            select(Payment).where(or_(Payment.session_id.in_(ids), *by_tx))
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


def _chunks(values: Sequence[Any], size: int = 500) -> list[Sequence[Any]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


async def _currency_id(
    session: AsyncSession, context: CheckoutContext, chain_id: int, contract: str
) -> int:
    key = (chain_id, contract.lower())
    if key in context.currency_ids:
        return context.currency_ids[key]
    currencies = await checkout_service.currencies_by_token(session)
    if key not in currencies:
        await checkout_service.sync_currencies(session, context)
        currencies = await checkout_service.currencies_by_token(session)
    ids = {k: c.id for k, c in currencies.items()}
    # Cached for the process only once committed: rows this transaction inserted vanish if it
    # rolls back, and a cached id of such a row would break every later step's foreign key.
    on_commit(session, partial(context.currency_ids.update, ids))
    return ids[key]


async def confirm_through(
    session: AsyncSession, context: CheckoutContext, chain_id: int, final_block: int
) -> list[Payment]:
    """Seen payments at or below `final_block` are final now: confirm them and settle sessions."""
    rows = (
        await session.scalars(
            select(Payment).where(
                Payment.chain_id == chain_id,
                Payment.status == PaymentStatus.SEEN.value,
                Payment.block_number <= final_block,
            )
        )
    ).all()
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
    for chunk in _chunks(sorted(checkouts)):
        for payment in await session.scalars(
            select(Payment)
            .where(Payment.session_id.in_(chunk))
            .execution_options(populate_existing=True)
        ):
            assert payment.session_id is not None
            payments_of.setdefault(payment.session_id, []).append(payment)
    described = await _load_described(session, checkouts.values())
    for payment in payments:
        change(payment)
    changed = [
        (checkouts[p.session_id], p, True)
        for p in payments
        if p.session_id is not None and p.session_id in checkouts
    ]
    await _settle_all(session, context, checkouts, payments_of, changed, now=now)
    await session.flush()
    del described


async def _settle_all(
    session: AsyncSession,
    context: CheckoutContext,
    checkouts: dict[int, CheckoutSession],
    payments_of: dict[int, list[Payment]],
    changed: Sequence[tuple[CheckoutSession, Payment, bool]],
    *,
    now: datetime,
    heads: dict[int, ChainHead | None] | None = None,
) -> None:
    """Recompute these sessions, then emit the changed payments' events (`(session, payment,
    seen before)`), which so carry the state each payment brought its session to, then each
    session's own events and its subscription."""
    before = {id_: _Before.of(c, payments_of.get(id_, [])) for id_, c in checkouts.items()}
    for id_, checkout in checkouts.items():
        await recompute_session(
            session, context, checkout, now=now, payments=payments_of.get(id_, [])
        )
    fields = _Fields(session)
    for checkout, payment, seen_before in changed:
        await _payment_event(
            session, context, checkout, payment, seen_before=seen_before, heads=heads, fields=fields
        )
    for id_, checkout in checkouts.items():
        await _announce(
            session,
            context,
            checkout,
            before[id_],
            payments_of.get(id_, []),
            now=now,
            fields=fields,
        )


async def expire_due_sessions(
    session: AsyncSession, context: CheckoutContext, *, limit: int = 500
) -> int:
    """Open sessions past expiresAt become expired (job `checkout.expire`). Returns how many."""
    now = context.clock.now()
    due = (
        await session.scalars(
            select(CheckoutSession.id)
            .where(
                CheckoutSession.status.in_(
                    [SessionStatus.CREATED.value, SessionStatus.PENDING.value]
                ),
                CheckoutSession.expires_at < now,
            )
            # Longest overdue first, read along the (status, expires_at) index: ordering by id
            # lets PostgreSQL walk every session in id order when its statistics are stale.
            .order_by(CheckoutSession.expires_at, CheckoutSession.id)
            .limit(limit)
        )
    ).all()
    # Decided on the locked rows: a payment settled meanwhile may have completed one (then it is
    # left alone), or settles after this and sees it expired.
    locked = await checkout_repository.lock_sessions(session, due)
    expiring = [
        checkout
        for checkout in locked.values()
        if SessionStatus(checkout.status) in OPEN_STATUSES and checkout.expires_at < now
    ]
    for checkout in expiring:
        await settle(session, context, checkout, now=now)
    await session.flush()
    return len(expiring)


SESSION_STATUS_EVENTS = {
    SessionStatus.COMPLETED.value: "session.completed",
    SessionStatus.EXPIRED.value: "session.expired",
    SessionStatus.CANCELLED.value: "session.cancelled",
}


@dataclass(frozen=True)
class _Before:
    """What a session looked like before a recompute: its events are the differences."""

    status: str
    underpaid: bool
    overpaid: bool
    late: frozenset[int]  # id() of its payments already late

    @classmethod
    def of(cls, checkout: CheckoutSession, payments: Sequence[Payment]) -> _Before:
        return cls(
            checkout.status,
            checkout.underpaid,
            checkout.overpaid,
            frozenset(id(p) for p in payments if p.late),
        )


class _Fields:
    """The SDK's SessionWebhookResponse fields, built once per session and transaction hash
    while a step emits its events (a payment's events and its session's share them)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self._built: dict[tuple[int, str | None, str], dict[str, Any]] = {}

    async def of(self, checkout: CheckoutSession, tx_hash: str | None) -> dict[str, Any]:
        key = (checkout.id, tx_hash, checkout.status)
        if key not in self._built:
            self._built[key] = await checkout_service.webhook_fields(
                self.session, checkout, tx_hash=tx_hash
            )
        return self._built[key]


async def settle(
    session: AsyncSession,
    context: CheckoutContext,
    checkout: CheckoutSession,
    *,
    now: datetime,
    payments: Sequence[Payment] | None = None,
) -> None:
    """Recompute the session from its payments; start or extend its subscription; emit events."""
    # A no-op when the caller locked it already (as it should have, before deciding to settle).
    checkout = (await checkout_repository.lock_sessions(session, [checkout.id]))[checkout.id]
    if payments is None:
        payments = (
            await session.scalars(
                select(Payment)
                .where(Payment.session_id == checkout.id)
                .execution_options(populate_existing=True)
            )
        ).all()
    before = _Before.of(checkout, payments)
    await recompute_session(session, context, checkout, now=now, payments=payments)
    await _announce(session, context, checkout, before, payments, now=now, fields=_Fields(session))


async def _announce(
    session: AsyncSession,
    context: CheckoutContext,
    checkout: CheckoutSession,
    before: _Before,
    payments: Sequence[Payment],
    *,
    now: datetime,
    fields: _Fields,
) -> None:
    """After a recompute: the session's events, late payments' events, its subscription."""
    if checkout.status != before.status:
        latest = _latest(payments)
        checkout_service.log_status_change(
            session,
            checkout,
            before.status,
            chain_id=latest.chain_id if latest else None,
            tx_hash=latest.tx_hash if latest else None,
        )
    happened = []
    if checkout.status != before.status and checkout.status in SESSION_STATUS_EVENTS:
        happened.append(SESSION_STATUS_EVENTS[checkout.status])
    if checkout.underpaid and not before.underpaid:
        happened.append("session.underpaid")
    if checkout.overpaid and not before.overpaid:
        happened.append("session.overpaid")
    newly_late = [
        p
        for p in payments
        if p.late and id(p) not in before.late and p.status != PaymentStatus.ORPHANED.value
    ]
    if happened or newly_late:
        top_level = await fields.of(checkout, _latest_tx(payments))
        for kind in happened:
            await events_service.emit(
                session,
                organization_id=checkout.organization_id,
                test=checkout.test,
                type=kind,
                data=checkout_service.session_event_data(checkout),
                session_id=checkout.id,
                top_level=top_level,
                session_webhook_url=checkout.webhook_url,
            )
        for payment in newly_late:
            await events_service.emit(
                session,
                organization_id=payment.organization_id,
                test=payment.test,
                type="payment.late",
                data=_payment_data(context, checkout, payment, None),
                session_id=checkout.id,
                payment_id=payment.id,
                top_level=top_level,
                session_webhook_url=checkout.webhook_url,
            )
    if checkout.kind == "subscription":
        await subscriptions_service.settle(session, checkout, now=now)


def _latest(payments: Sequence[Payment]) -> Payment | None:
    live = [p for p in payments if p.status != PaymentStatus.ORPHANED.value]
    return max(live, key=lambda p: (p.block_number, p.log_index)) if live else None


def _latest_tx(payments: Sequence[Payment]) -> str | None:
    latest = _latest(payments)
    return latest.tx_hash if latest else None


def _payment_data(
    context: CheckoutContext,
    checkout: CheckoutSession,
    payment: Payment,
    head: ChainHead | None,
) -> dict[str, object]:
    """`data` of payment events: token amounts in base units, USD as exact decimal strings."""
    chain = context.registry.get(payment.chain_id)
    return {
        "uuid": payment.uuid,
        "sessionUUID": checkout.uuid,
        "chainId": payment.chain_id,
        "txHash": payment.tx_hash,
        "logIndex": payment.log_index,
        "blockNumber": payment.block_number,
        "from": payment.from_address,
        "to": payment.to_address,
        "token": payment.token_symbol,
        "tokenContract": payment.token_contract,
        "decimals": payment.decimals,
        "amountBaseUnits": str(payment.amount_base_units),
        "amountUsd": str(payment.amount_usd),
        "status": payment.status,
        "late": bool(payment.late),
        "confirmations": max(0, head.block_number - payment.block_number + 1) if head else None,
        "requiredConfirmations": chain.confirmations if chain else None,
        "test": payment.test,
    }


async def _payment_event(
    session: AsyncSession,
    context: CheckoutContext,
    checkout: CheckoutSession,
    payment: Payment,
    *,
    seen_before: bool,
    heads: dict[int, ChainHead | None] | None = None,
    fields: _Fields | None = None,
) -> None:
    kind = {
        PaymentStatus.SEEN.value: "payment.detected",
        PaymentStatus.CONFIRMED.value: "payment.confirmed",
        PaymentStatus.ORPHANED.value: "payment.orphaned",
    }[payment.status]
    head = (
        heads.get(payment.chain_id)
        if heads is not None
        else await session.get(ChainHead, payment.chain_id)
    )
    data = _payment_data(context, checkout, payment, head)
    top_level = await (fields or _Fields(session)).of(checkout, payment.tx_hash)
    if kind == "payment.confirmed" and not seen_before:
        # Found already final (a backfill): the payer still hears that it was detected.
        await events_service.emit(
            session,
            organization_id=payment.organization_id,
            test=payment.test,
            type="payment.detected",
            data={**data, "status": PaymentStatus.SEEN.value},
            session_id=checkout.id,
            payment_id=payment.id,
            top_level=top_level,
            session_webhook_url=checkout.webhook_url,
        )
        _log_payment(session, checkout, payment, "payment_seen")
    await events_service.emit(
        session,
        organization_id=payment.organization_id,
        test=payment.test,
        type=kind,
        data=data,
        session_id=checkout.id,
        payment_id=payment.id,
        top_level=top_level,
        session_webhook_url=checkout.webhook_url,
    )
    _log_payment(session, checkout, payment, _LOG_EVENTS[kind])


# One log line per payment event, named as the other log lines are.
_LOG_EVENTS = {
    "payment.detected": "payment_seen",
    "payment.confirmed": "payment_confirmed",
    "payment.orphaned": "payment_orphaned",
}


def _log_payment(
    session: AsyncSession, checkout: CheckoutSession, payment: Payment, event: str
) -> None:
    """The payment's log line, written when the transaction that decided it commits."""
    log_on_commit(
        session,
        log,
        "warning" if event == "payment_orphaned" else "info",
        event,
        session_uuid=checkout.uuid,
        payment_uuid=payment.uuid,
        organization_id=payment.organization_id,
        test=payment.test,
        chain_id=payment.chain_id,
        tx_hash=payment.tx_hash,
        log_index=payment.log_index,
        block_number=payment.block_number,
        token=payment.token_symbol,
        token_contract=payment.token_contract,
        amount_base_units=str(payment.amount_base_units),
        amount_usd=str(normalize(payment.amount_usd)),
        late=bool(payment.late),
    )


async def recompute_session(
    session: AsyncSession,
    context: CheckoutContext,
    checkout: CheckoutSession,
    *,
    now: datetime,
    payments: Sequence[Payment] | None = None,
) -> None:
    """Run the state machine over the session's payments and store what it decides."""
    if payments is None:
        payments = (
            await session.scalars(select(Payment).where(Payment.session_id == checkout.id))
        ).all()
    rows = payments
    facts = SessionFacts(
        price_usd=checkout.price_usd,
        expires_at=checkout.expires_at,
        cancelled_at=checkout.cancelled_at,
        chosen_chain_id=checkout.chosen_chain_id,
        chosen_token_contract=checkout.chosen_token_contract,
        tolerance_usd=context.tolerance_usd,
    )
    facts_of_payments = [
        PaymentFact(
            p.amount_usd, PaymentStatus(p.status), p.block_timestamp, p.chain_id, p.token_contract
        )
        for p in rows
    ]
    state = decide(facts, facts_of_payments, now)
    if (
        checkout.status == SessionStatus.COMPLETED.value
        and state.status is not SessionStatus.COMPLETED
    ):
        # Completion is final: only finalized payments complete a session, and those stay.
        state_status = SessionStatus.COMPLETED
    else:
        state_status = state.status
    if state_status is SessionStatus.COMPLETED and checkout.completed_at is None:
        checkout.completed_at = now
    # Only what changed is assigned: each ORM assignment has a cost, and the watcher settles
    # hundreds of sessions per step.
    decided = {
        "status": state_status.value,
        "underpaid": state.underpaid,
        "overpaid": state.overpaid,
        "late": state.late,
        "other_token": state.other_token,
        "paid_usd": normalize(state.seen_usd),
    }
    for name, value in decided.items():
        if getattr(checkout, name) != value:
            setattr(checkout, name, value)
    checkout.updated_at = now
    deadline = (
        min(checkout.expires_at, checkout.cancelled_at)
        if checkout.cancelled_at
        else checkout.expires_at
    )
    for payment in rows:
        late = payment.block_timestamp > deadline
        if payment.late != late:
            payment.late = late
    # Not flushed here: the caller's unit of work writes every session it touched at once.


# --- reads -----------------------------------------------------------------------------------


def _visible(principal: Principal) -> Any:
    stmt = select(Payment).where(
        Payment.organization_id == principal.organization_id, Payment.test == principal.test
    )
    if not principal.is_admin:
        stmt = stmt.join(CheckoutSession, CheckoutSession.id == Payment.session_id).where(
            CheckoutSession.created_by_user_id == principal.user_id
        )
    return stmt


async def get_payment(session: AsyncSession, principal: Principal, uuid: str) -> Payment:
    payment = await session.scalar(_visible(principal).where(Payment.uuid == uuid))
    if payment is None:
        raise PaymentNotFound()
    return payment


async def page_payments(
    session: AsyncSession,
    principal: Principal,
    *,
    limit: int | None,
    cursor: str | None,
    one_time_only: bool,
) -> tuple[Sequence[Payment], str | None]:
    """Credited payments (not orphaned), newest first, cursor-paginated."""
    size = limit or DEFAULT_PAGE
    stmt = _visible(principal).where(Payment.status != PaymentStatus.ORPHANED.value)
    if one_time_only:
        stmt = stmt.where(Payment.subscription_id.is_(None))
    if cursor:
        stmt = stmt.where(Payment.id < decode_cursor("p", cursor))
    rows = (await session.scalars(stmt.order_by(Payment.id.desc()).limit(size + 1))).all()
    items = rows[:size]
    return items, (encode_cursor("p", items[-1].id) if len(rows) > size else None)


async def payment_view(
    session: AsyncSession, context: CheckoutContext, payment: Payment
) -> CombinedPaymentOut:
    checkout = (
        await session.get(CheckoutSession, payment.session_id) if payment.session_id else None
    )
    subscription = (
        await session.get(Subscription, payment.subscription_id)
        if payment.subscription_id
        else None
    )
    customer_id = checkout.customer_id if checkout else None
    customer = await session.get(Customer, customer_id) if customer_id else None
    currency = await session.get(Currency, payment.currency_id)
    assert currency is not None
    return CombinedPaymentOut(
        uuid=payment.uuid,
        created_at=payment.created_at,
        from_=payment.from_address,
        to=payment.to_address,
        name=checkout.product_name if checkout else "",
        description=checkout.description if checkout else "",
        amount=payment.amount_usd,
        currency_id=payment.currency_id,
        currency=checkout_service.currency_out(currency, context),
        test=payment.test,
        product_id=checkout.product_id if checkout else None,
        transaction_hash=payment.tx_hash,
        customer_uuid=customer.uuid if customer else "",
        chain_id=payment.chain_id,
        log_index=payment.log_index,
        block_number=payment.block_number,
        amount_base_units=str(payment.amount_base_units),
        status=payment.status,
        late=payment.late,
        session_uuid=checkout.uuid if checkout else None,
        source="subscription_history" if subscription else "payment",
        subscription_uuid=subscription.uuid if subscription else None,
    )


def plain_payment(view: CombinedPaymentOut) -> PaymentOut:
    return PaymentOut.model_validate(view.model_dump(exclude={"source", "subscription_uuid"}))


async def transaction_info(
    session: AsyncSession, principal: Principal, context: CheckoutContext, transaction_id: str
) -> TransactionInfoOut:
    """Everything we know of one payment, by its uuid or its transaction hash."""
    stmt = _visible(principal)
    if transaction_id.startswith("0x"):
        stmt = stmt.where(Payment.tx_hash == transaction_id.lower()).order_by(Payment.log_index)
    else:
        stmt = stmt.where(Payment.uuid == transaction_id)
    payment = await session.scalar(stmt.limit(1))
    if payment is None:
        raise PaymentNotFound(param="transactionId")
    checkout = (
        await session.get(CheckoutSession, payment.session_id) if payment.session_id else None
    )
    subscription = (
        await session.get(Subscription, payment.subscription_id)
        if payment.subscription_id
        else None
    )
    creator = (
        await session.get(User, checkout.created_by_user_id)
        if checkout and checkout.created_by_user_id
        else None
    )
    fee_bps = creator.organization_fee_bps if creator else 0
    fee = normalize(payment.amount_usd * Decimal(fee_bps) / Decimal(10_000))
    head = await session.get(ChainHead, payment.chain_id)
    chain = context.registry.get(payment.chain_id)
    confirmations = None
    if head is not None and payment.status != PaymentStatus.ORPHANED.value:
        confirmations = max(0, head.block_number - payment.block_number + 1)
    return TransactionInfoOut(
        uuid=payment.uuid,
        chain_id=payment.chain_id,
        chain_name=chain.name if chain else f"Chain {payment.chain_id}",
        token_symbol=payment.token_symbol,
        token_contract=payment.token_contract,
        decimals=payment.decimals,
        tx_hash=payment.tx_hash,
        log_index=payment.log_index,
        block_number=payment.block_number,
        block_hash=payment.block_hash,
        block_timestamp=payment.block_timestamp,
        confirmations=confirmations,
        required_confirmations=chain.confirmations if chain else None,
        finality=chain.finality if chain else None,
        status=payment.status,
        late=payment.late,
        from_=payment.from_address,
        to=payment.to_address,
        amount_base_units=str(payment.amount_base_units),
        amount=base_units_to_tokens(payment.amount_base_units, decimals=payment.decimals),
        amount_usd=payment.amount_usd,
        organization_fee_bps=fee_bps,
        organization_fee_usd=fee,
        merchant_amount_usd=normalize(payment.amount_usd - fee),
        session_uuid=checkout.uuid if checkout else None,
        subscription_uuid=subscription.uuid if subscription else None,
        test=payment.test,
        created_at=payment.created_at,
        confirmed_at=payment.confirmed_at,
    )


async def payments_of_subscription(
    session: AsyncSession, subscription: Subscription
) -> Sequence[Payment]:
    rows = await session.scalars(
        select(Payment)
        .where(
            or_(
                Payment.subscription_id == subscription.id,
                Payment.session_id == subscription.session_id,
            ),
            Payment.status != PaymentStatus.ORPHANED.value,
        )
        .order_by(Payment.id)
    )
    return rows.all()
