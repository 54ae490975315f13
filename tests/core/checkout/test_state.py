"""Table tests of the session state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from core.checkout.state import PaymentFact, PaymentStatus, SessionFacts, SessionStatus, decide

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
EXPIRES = T0 + timedelta(minutes=60)
USDT = (1, "0xdAC17F958D2ee523a2206206994597C13D831ec7")
USDC = (1, "0xA0b86991c6218b36c1d19D4a2e9Eb0cE3606eB48")
BSC_USDT = (56, "0x55d398326f99059fF775485246999027B3197955")

S, C, ORPH = PaymentStatus.SEEN, PaymentStatus.CONFIRMED, PaymentStatus.ORPHANED


def pay(
    usd: str, status: PaymentStatus = C, minute: int = 10, token: tuple[int, str] = USDT
) -> PaymentFact:
    return PaymentFact(Decimal(usd), status, T0 + timedelta(minutes=minute), token[0], token[1])


def facts(price: str = "10", **overrides: object) -> SessionFacts:
    base: dict[str, object] = {"price_usd": Decimal(price), "expires_at": EXPIRES}
    base.update(overrides)
    return SessionFacts(**base)  # type: ignore[arg-type]


NOW = T0 + timedelta(minutes=30)
AFTER = T0 + timedelta(minutes=90)

# (name, facts, payments, now, status, underpaid, overpaid, late, other_token, remaining)
CASES = [
    ("nothing paid yet", facts(), [], NOW, SessionStatus.CREATED, False, False, False, False, "10"),
    (
        "exact payment final",
        facts(),
        [pay("10")],
        NOW,
        SessionStatus.COMPLETED,
        False,
        False,
        False,
        False,
        "0",
    ),
    (
        "exact payment not final",
        facts(),
        [pay("10", S)],
        NOW,
        SessionStatus.WAITING_CONFIRMATION,
        False,
        False,
        False,
        False,
        "0",
    ),
    (
        "partial payment final",
        facts(),
        [pay("4")],
        NOW,
        SessionStatus.PENDING,
        True,
        False,
        False,
        False,
        "6",
    ),
    (
        "partial payment seen",
        facts(),
        [pay("4", S)],
        NOW,
        SessionStatus.PENDING,
        True,
        False,
        False,
        False,
        "6",
    ),
    (
        "underpay then top-up",
        facts(),
        [pay("4"), pay("6", minute=20)],
        NOW,
        SessionStatus.COMPLETED,
        False,
        False,
        False,
        False,
        "0",
    ),
    (
        "top-up still unfinal",
        facts(),
        [pay("4"), pay("6", S, 20)],
        NOW,
        SessionStatus.WAITING_CONFIRMATION,
        False,
        False,
        False,
        False,
        "0",
    ),
    (
        "overpaid",
        facts(),
        [pay("12.5")],
        NOW,
        SessionStatus.COMPLETED,
        False,
        True,
        False,
        False,
        "0",
    ),
    (
        "two tokens on two chains add up",
        facts(),
        [pay("5", token=USDT), pay("5", token=BSC_USDT)],
        NOW,
        SessionStatus.COMPLETED,
        False,
        False,
        False,
        False,
        "0",
    ),
    ("expired unpaid", facts(), [], AFTER, SessionStatus.EXPIRED, False, False, False, False, "10"),
    (
        "expired partly paid",
        facts(),
        [pay("3")],
        AFTER,
        SessionStatus.EXPIRED,
        True,
        False,
        False,
        False,
        "7",
    ),
    (
        "payment after expiry is late and does not complete",
        facts(),
        [pay("10", minute=70)],
        AFTER,
        SessionStatus.EXPIRED,
        False,
        False,
        True,
        False,
        "10",
    ),
    (
        "timely payment finalised after expiry completes",
        facts(),
        [pay("10", C, 59)],
        AFTER,
        SessionStatus.COMPLETED,
        False,
        False,
        False,
        False,
        "0",
    ),
    (
        "timely unfinal payment survives expiry",
        facts(),
        [pay("10", S, 59)],
        AFTER,
        SessionStatus.WAITING_CONFIRMATION,
        False,
        False,
        False,
        False,
        "0",
    ),
    (
        "money after completion is overpaid and late",
        facts(),
        [pay("10"), pay("10", minute=80)],
        AFTER,
        SessionStatus.COMPLETED,
        False,
        True,
        True,
        False,
        "0",
    ),
    (
        "orphaned payment counts for nothing",
        facts(),
        [pay("10", ORPH)],
        NOW,
        SessionStatus.CREATED,
        False,
        False,
        False,
        False,
        "10",
    ),
    (
        "orphaned then re-included",
        facts(),
        [pay("10", ORPH), pay("10", C, 11)],
        NOW,
        SessionStatus.COMPLETED,
        False,
        False,
        False,
        False,
        "0",
    ),
    (
        "cancelled before any payment",
        facts(cancelled_at=T0 + timedelta(minutes=5)),
        [],
        NOW,
        SessionStatus.CANCELLED,
        False,
        False,
        False,
        False,
        "10",
    ),
    (
        "payment after cancellation is late",
        facts(cancelled_at=T0 + timedelta(minutes=5)),
        [pay("10", minute=8)],
        NOW,
        SessionStatus.CANCELLED,
        False,
        False,
        True,
        False,
        "10",
    ),
    (
        "cancelled while partly paid stays underpaid",
        facts(cancelled_at=T0 + timedelta(minutes=15)),
        [pay("4", minute=10)],
        NOW,
        SessionStatus.CANCELLED,
        True,
        False,
        False,
        False,
        "6",
    ),
    (
        "other accepted token than chosen is flagged",
        facts(chosen_chain_id=USDT[0], chosen_token_contract=USDT[1]),
        [pay("10", token=USDC)],
        NOW,
        SessionStatus.COMPLETED,
        False,
        False,
        False,
        True,
        "0",
    ),
    (
        "chosen token is not flagged",
        facts(chosen_chain_id=USDT[0], chosen_token_contract=USDT[1].lower()),
        [pay("10")],
        NOW,
        SessionStatus.COMPLETED,
        False,
        False,
        False,
        False,
        "0",
    ),
    (
        "tolerance accepts a small shortfall",
        facts(tolerance_usd=Decimal("0.01")),
        [pay("9.99")],
        NOW,
        SessionStatus.COMPLETED,
        False,
        False,
        False,
        False,
        "0",
    ),
    (
        "shortfall beyond tolerance",
        facts(tolerance_usd=Decimal("0.01")),
        [pay("9.98")],
        NOW,
        SessionStatus.PENDING,
        True,
        False,
        False,
        False,
        "0.02",
    ),
    (
        "one base unit short is pending",
        facts("0.3"),
        [pay("0.299999")],
        NOW,
        SessionStatus.PENDING,
        True,
        False,
        False,
        False,
        "0.000001",
    ),
    (
        "exact decimals: 0.1 + 0.2 pays 0.3",
        facts("0.3"),
        [pay("0.1"), pay("0.2")],
        NOW,
        SessionStatus.COMPLETED,
        False,
        False,
        False,
        False,
        "0",
    ),
    (
        "payment exactly at expiry is timely",
        facts(),
        [pay("10", minute=60)],
        AFTER,
        SessionStatus.COMPLETED,
        False,
        False,
        False,
        False,
        "0",
    ),
]


@pytest.mark.parametrize(
    (
        "name",
        "session",
        "payments",
        "now",
        "status",
        "underpaid",
        "overpaid",
        "late",
        "other",
        "remaining",
    ),
    CASES,
    ids=[c[0] for c in CASES],
)
def test_session_state_table(
    name: str,
    session: SessionFacts,
    payments: list[PaymentFact],
    now: datetime,
    status: SessionStatus,
    underpaid: bool,
    overpaid: bool,
    late: bool,
    other: bool,
    remaining: str,
) -> None:
    state = decide(session, payments, now)
    assert state.status is status
    assert (state.underpaid, state.overpaid, state.late, state.other_token) == (
        underpaid,
        overpaid,
        late,
        other,
    )
    assert state.remaining_usd == Decimal(remaining)


def test_decide_is_order_independent() -> None:
    payments = [pay("4"), pay("3", S, 20), pay("3", minute=30, token=BSC_USDT)]
    assert decide(facts(), payments, NOW) == decide(facts(), list(reversed(payments)), NOW)
