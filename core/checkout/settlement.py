"""Settlement: decide a session's state from its payments, store it, and announce what changed
(session, payment and late-payment events, log lines, its subscription); expiry of due sessions."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy import exists, select
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
from core.db import chunks
from core.events import service as events_service
from core.logs import log_on_commit
from core.models import (
    ChainHead,
    CheckoutSession,
    Customer,
    Organization,
    Payment,
    Subscription,
)
from core.money import normalize
from core.subscriptions import service as subscriptions_service

log = structlog.get_logger(__name__)

# The deadline of a session a subscription took over (see recompute_session).
NEVER = datetime.max.replace(tzinfo=UTC)


async def load_described(
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
    for chunk in chunks(org_ids):
        loaded.extend(await session.scalars(select(Organization).where(Organization.id.in_(chunk))))
    for chunk in chunks(customer_ids):
        loaded.extend(await session.scalars(select(Customer).where(Customer.id.in_(chunk))))
    return loaded


async def settle_many(
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
    subscribed = await _with_subscription(session, checkouts.values())
    for id_, checkout in checkouts.items():
        await recompute_session(
            session,
            context,
            checkout,
            now=now,
            payments=payments_of.get(id_, []),
            subscribed=id_ in subscribed,
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


async def _with_subscription(
    session: AsyncSession, checkouts: Iterable[CheckoutSession]
) -> set[int]:
    """Of these sessions, the subscription sessions that have their subscription, as
    `recompute_session` asks one by one: one query per 500 (none without such sessions)."""
    asked = sorted(c.id for c in checkouts if c.kind == "subscription" and c.completed_at is None)
    found: set[int] = set()
    for chunk in chunks(asked):
        found.update(
            await session.scalars(
                select(Subscription.session_id).where(Subscription.session_id.in_(chunk))
            )
        )
    return found


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
                # A trial started on it: the subscription's lifecycle takes over.
                ~exists().where(Subscription.session_id == CheckoutSession.id),
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
        await subscriptions_service.settle(
            session, checkout, now=now, policy=context.subscription_policy
        )


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
    subscribed: bool | None = None,
) -> None:
    """Run the state machine over the session's payments and store what it decides.

    `subscribed`: whether a subscription's session has its subscription, when the caller
    looked it up for many sessions at once (`settle_many`); else it is asked here."""
    if payments is None:
        payments = (
            await session.scalars(select(Payment).where(Payment.session_id == checkout.id))
        ).all()
    rows = payments
    # A subscription's session that has its subscription (paid, or a trial started) takes the
    # subscription's payments: they are neither late nor does the session expire; what is due
    # when is the subscription's lifecycle's to judge.
    taken = checkout.kind == "subscription" and (
        checkout.completed_at is not None
        or (
            subscribed
            if subscribed is not None
            else await session.scalar(
                select(Subscription.id).where(Subscription.session_id == checkout.id)
            )
            is not None
        )
    )
    facts = SessionFacts(
        price_usd=checkout.price_usd,
        expires_at=NEVER if taken else checkout.expires_at,
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
        "late": checkout.late if taken else state.late,
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
        if taken:
            continue  # the subscription marks its own late money (after expiry)
        late = payment.block_timestamp > deadline
        if payment.late != late:
            payment.late = late
    # Not flushed here: the caller's unit of work writes every session it touched at once.
