"""The session state machine: one pure function from payments, price, lifetime and clock.

QBitFlow's statuses: created -> waitingConfirmation (full amount seen, not final) -> completed;
pending while partly paid; expired; cancelled. Flags: underpaid, overpaid, late, other_token.
Lateness is judged by the transfer's block timestamp against expiresAt (or the cancellation),
never by when the payment became final: finality can take many minutes after a timely payment.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum


class SessionStatus(StrEnum):
    CREATED = "created"
    WAITING_CONFIRMATION = "waitingConfirmation"
    PENDING = "pending"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


OPEN_STATUSES = frozenset({SessionStatus.CREATED, SessionStatus.PENDING})


class PaymentStatus(StrEnum):
    SEEN = "seen"
    CONFIRMED = "confirmed"
    ORPHANED = "orphaned"


@dataclass(frozen=True, slots=True)
class PaymentFact:
    amount_usd: Decimal
    status: PaymentStatus
    block_timestamp: datetime
    chain_id: int
    token_contract: str


@dataclass(frozen=True, slots=True)
class SessionFacts:
    price_usd: Decimal
    expires_at: datetime
    cancelled_at: datetime | None = None
    chosen_chain_id: int | None = None
    chosen_token_contract: str | None = None
    tolerance_usd: Decimal = Decimal(0)


@dataclass(frozen=True, slots=True)
class SessionState:
    status: SessionStatus
    underpaid: bool
    overpaid: bool
    late: bool
    other_token: bool
    confirmed_usd: Decimal
    seen_usd: Decimal
    remaining_usd: Decimal


def decide(facts: SessionFacts, payments: list[PaymentFact], now: datetime) -> SessionState:
    """The session's status and flags. Pure: same inputs, same answer."""
    deadline = facts.expires_at
    if facts.cancelled_at is not None and facts.cancelled_at < deadline:
        deadline = facts.cancelled_at
    live = [p for p in payments if p.status is not PaymentStatus.ORPHANED]
    timely = [p for p in live if p.block_timestamp <= deadline]
    confirmed_timely = sum(
        (p.amount_usd for p in timely if p.status is PaymentStatus.CONFIRMED), Decimal(0)
    )
    seen_timely = sum((p.amount_usd for p in timely), Decimal(0))
    confirmed_all = sum(
        (p.amount_usd for p in live if p.status is PaymentStatus.CONFIRMED), Decimal(0)
    )
    due = facts.price_usd - facts.tolerance_usd

    late = any(p.block_timestamp > deadline for p in live)
    other_token = facts.chosen_chain_id is not None and any(
        (p.chain_id, p.token_contract.lower())
        != (facts.chosen_chain_id, (facts.chosen_token_contract or "").lower())
        for p in live
    )

    if confirmed_timely >= due and confirmed_timely > 0:
        status = SessionStatus.COMPLETED
    elif facts.cancelled_at is not None:
        status = SessionStatus.CANCELLED
    elif seen_timely >= due and seen_timely > 0:
        status = SessionStatus.WAITING_CONFIRMATION
    elif now > facts.expires_at:
        status = SessionStatus.EXPIRED
    elif seen_timely > 0:
        status = SessionStatus.PENDING
    else:
        status = SessionStatus.CREATED

    paid_enough = status in (SessionStatus.COMPLETED, SessionStatus.WAITING_CONFIRMATION)
    remaining = Decimal(0) if paid_enough else max(Decimal(0), facts.price_usd - seen_timely)
    return SessionState(
        status=status,
        underpaid=not paid_enough and seen_timely > 0,
        overpaid=status is SessionStatus.COMPLETED and confirmed_all > facts.price_usd,
        late=late,
        other_token=other_token,
        confirmed_usd=confirmed_timely,
        seen_usd=seen_timely,
        remaining_usd=remaining,
    )
