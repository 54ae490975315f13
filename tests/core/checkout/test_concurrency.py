"""No lost update on a session row: two paths that recompute one session at the same time.

PostgreSQL only (SQLite runs one writer at a time: there is no race to lose). Each round runs
the two sides on separate connections with a held transaction as the barrier: the first side
does its work and keeps its transaction open, the second starts and runs until it waits on a
row lock (or finishes), and only then does the first commit. Which side goes first alternates
between rounds. Every round must end in the one state the payments and the clock decide, with
each status event emitted once and paidUsd equal to the confirmed payments on record.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import count
from typing import Any

import pytest
from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from core.checkout import service as checkout_service
from core.checkout import settlement
from core.checkout.context import CheckoutContext
from core.checkout.schemas import Duration, SessionCreate, SubscriptionOptionsIn
from core.db import create_engine, create_sessionmaker, transaction
from core.errors import AppError
from core.models import CheckoutSession, Event, Payment, Subscription
from core.orgs.schemas import Principal, Role
from core.payments import ingest as payments_ingest
from core.payments.schemas import Transfer
from core.subscriptions import service as subscriptions_service
from tests.harness.databases import suite_backend
from tests.harness.factories import DEVNET_A_USDT, DEVNET_B_USDT, make_tenant, test_settings

ROUNDS = 50
CHAIN_A, CHAIN_B = 31337, 31338  # 6 and 18 decimals (tests/harness/factories.TEST_CHAINS)
DECIMALS = {CHAIN_A: 6, CHAIN_B: 18}
CONTRACTS = {CHAIN_A: DEVNET_A_USDT, CHAIN_B: DEVNET_B_USDT}
_tx_numbers = count(1)

Side = Callable[[AsyncSession], Awaitable[Any]]


@pytest.fixture(autouse=True)
def postgresql_only() -> None:
    if suite_backend() != "postgresql":
        pytest.skip("SQLite runs one writer at a time: these races need PostgreSQL")


@dataclass
class Bench:
    """Two engines for the two sides, a third to watch them, and what the services need."""

    one: async_sessionmaker[AsyncSession]
    two: async_sessionmaker[AsyncSession]
    watch: async_sessionmaker[AsyncSession]
    engines: list[AsyncEngine]
    context: CheckoutContext
    principal: Principal
    waited: int = 0  # rounds in which the second side was seen waiting on the first's lock

    async def new_session(
        self, *, price: str = "10", expires_in: timedelta | None = None, subscription: bool = False
    ) -> int:
        options = (
            SubscriptionOptionsIn(
                subscription_type="subscription", frequency=Duration(value=30, unit="days")
            )
            if subscription
            else None
        )
        async with transaction(self.one) as db:
            checkout = await checkout_service.create_session(
                db,
                self.principal,
                self.context,
                SessionCreate(
                    product_name="Raced", description="d", price=Decimal(price), options=options
                ),
            )
            if expires_in is not None:
                checkout.expires_at = datetime.now(UTC) + expires_in
            return checkout.id

    async def race(self, first: Side, second: Side) -> tuple[Any, Any]:
        """`first` runs and holds its transaction until `second` waits on a lock or is done."""
        async with self.one() as a, self.two() as b:
            first_result = await _attempt(first, a)
            pid = await b.scalar(text("SELECT pg_backend_pid()"))
            second_task = asyncio.create_task(_attempt(second, b))
            await self.blocked_or_done(pid, second_task)
            await _finish(a, first_result)
            second_result = await second_task
            await _finish(b, second_result)
        return first_result, second_result

    async def blocked_or_done(
        self, pid: int, task: asyncio.Task[Any], paused: asyncio.Event | None = None
    ) -> None:
        deadline = asyncio.get_running_loop().time() + 5
        while not task.done() and asyncio.get_running_loop().time() < deadline:
            if paused is not None and paused.is_set():
                return
            async with self.watch() as watch:
                waiting = await watch.scalar(
                    text("SELECT wait_event_type FROM pg_stat_activity WHERE pid = :pid"),
                    {"pid": pid},
                )
            if waiting == "Lock":
                self.waited += 1
                return
            await asyncio.sleep(0.002)

    async def outcome(self, session_id: int) -> tuple[CheckoutSession, dict[str, int], Decimal]:
        """The session as committed, how many of each event it has, its confirmed USD."""
        async with self.watch() as db:
            checkout = await db.get(CheckoutSession, session_id)
            assert checkout is not None
            events = dict(
                (
                    await db.execute(
                        select(Event.type, func.count())
                        .where(Event.session_id == session_id)
                        .group_by(Event.type)
                    )
                ).all()
            )
            confirmed = await db.scalar(
                select(func.coalesce(func.sum(Payment.amount_usd), 0)).where(
                    Payment.session_id == session_id, Payment.status == "confirmed"
                )
            )
        return checkout, {str(k): int(v) for k, v in events.items()}, Decimal(confirmed or 0)

    async def uuid_of(self, session_id: int) -> str:
        async with self.watch() as db:
            uuid = await db.scalar(
                select(CheckoutSession.uuid).where(CheckoutSession.id == session_id)
            )
        assert uuid is not None
        return uuid

    async def deposit_address(self, session_id: int) -> str:
        async with self.watch() as db:
            address = await db.scalar(
                select(CheckoutSession.deposit_address).where(CheckoutSession.id == session_id)
            )
        assert address is not None
        return address

    # The sides: the project's own service functions, each as its entry point calls it.

    def credit(self, address: str, chain_id: int, usd: int, *, final: bool = True) -> Side:
        transfer = paid(address, chain_id, usd, final=final)

        async def side(db: AsyncSession) -> Any:
            return await payments_ingest.apply_transfers(db, self.context, [transfer])

        return side

    def cancel(self, uuid: str) -> Side:
        async def side(db: AsyncSession) -> Any:
            return await checkout_service.cancel_session(
                db, self.principal, uuid, now=self.context.clock.now()
            )

        return side

    def expire(self) -> Side:
        async def side(db: AsyncSession) -> Any:
            return await settlement.expire_due_sessions(db, self.context)

        return side

    def confirm(self, chain_id: int) -> Side:
        async def side(db: AsyncSession) -> Any:
            return await payments_ingest.confirm_through(db, self.context, chain_id, 10**9)

        return side


async def _attempt(side: Side, db: AsyncSession) -> Any:
    try:
        return await side(db)
    except AppError as refused:
        return refused


async def _finish(db: AsyncSession, result: Any) -> None:
    if isinstance(result, AppError):
        await db.rollback()
    else:
        await db.commit()


def paid(address: str, chain_id: int, usd: int, *, final: bool) -> Transfer:
    """`usd` worth of the chain's test USDT, mined a minute ago (before any deadline here)."""
    number = next(_tx_numbers)
    return Transfer(
        chain_id=chain_id,
        tx_hash=f"0x{number:064x}",
        log_index=0,
        block_number=100 + number,
        block_hash="0x" + "ab" * 32,
        block_timestamp=datetime.now(UTC) - timedelta(minutes=1),
        from_address="0x" + "cd" * 20,
        to_address=address.lower(),
        token_contract=CONTRACTS[chain_id].lower(),
        amount_base_units=usd * 10 ** DECIMALS[chain_id],
        final=final,
    )


def run_rounds(database_url: str, play: Callable[[Bench, int], Awaitable[None]]) -> None:
    tenant = make_tenant(database_url, test=True)
    principal = Principal(
        api_key_id=0,
        organization_id=tenant.organization_id,
        user_id=tenant.owner_id,
        role=Role.OWNER,
        test=True,
    )
    context = CheckoutContext.from_settings(test_settings(database_url))

    async def run() -> None:
        engines = [create_engine(database_url) for _ in range(3)]
        one, two, watch = (create_sessionmaker(e) for e in engines)
        bench = Bench(one, two, watch, engines, context, principal)
        try:
            for number in range(ROUNDS):
                await play(bench, number)
            # The rounds were races, not two transactions one after the other.
            assert bench.waited >= ROUNDS // 2, bench.waited
        finally:
            for engine in engines:
                await engine.dispose()

    asyncio.run(run())


def assert_paid_is_confirmed(checkout: CheckoutSession, confirmed: Decimal) -> None:
    assert checkout.paid_usd == confirmed, (checkout.paid_usd, confirmed)


def test_cancel_racing_a_full_credit_ends_completed_with_each_event_once(
    database_url: str,
) -> None:
    async def play(bench: Bench, number: int) -> None:
        session_id = await bench.new_session()
        uuid = await bench.uuid_of(session_id)
        credit = bench.credit(await bench.deposit_address(session_id), CHAIN_A, 10)
        cancel = bench.cancel(uuid)
        credit_first = number % 2 == 0
        if credit_first:
            _, cancelled = await bench.race(credit, cancel)
        else:
            cancelled, _ = await bench.race(cancel, credit)
        checkout, events, confirmed = await bench.outcome(session_id)
        # The payment was mined before the cancel: it completes the session either way; the
        # cancel only succeeds when it came first (a completed session is not open).
        assert isinstance(cancelled, AppError) == credit_first, (number, cancelled)
        assert checkout.status == "completed", (number, checkout.status, events)
        assert checkout.completed_at is not None
        assert (checkout.cancelled_at is not None) == (not credit_first)
        assert events.get("session.completed") == 1, (number, events)
        assert events.get("session.cancelled", 0) == (0 if credit_first else 1), (number, events)
        assert checkout.paid_usd == Decimal(10)
        assert_paid_is_confirmed(checkout, confirmed)

    run_rounds(database_url, play)


def test_cancel_racing_a_half_credit_ends_cancelled_and_underpaid_for_good(
    database_url: str,
) -> None:
    async def play(bench: Bench, number: int) -> None:
        session_id = await bench.new_session()
        uuid = await bench.uuid_of(session_id)
        credit = bench.credit(await bench.deposit_address(session_id), CHAIN_A, 5)
        cancel = bench.cancel(uuid)
        if number % 2 == 0:
            _, cancelled = await bench.race(credit, cancel)
        else:
            cancelled, _ = await bench.race(cancel, credit)
        assert not isinstance(cancelled, AppError), (number, cancelled)
        # Neither a second cancel nor the expiry sweep cancels it again.
        async with bench.two() as db:
            with pytest.raises(AppError):
                await checkout_service.cancel_session(
                    db, bench.principal, uuid, now=bench.context.clock.now()
                )
        async with transaction(bench.two) as db:
            await settlement.expire_due_sessions(db, bench.context)
        checkout, events, confirmed = await bench.outcome(session_id)
        assert checkout.status == "cancelled", (number, checkout.status, events)
        assert checkout.cancelled_at is not None
        assert checkout.completed_at is None
        assert checkout.underpaid
        assert events.get("session.cancelled") == 1, (number, events)
        assert events.get("session.underpaid") == 1, (number, events)
        assert checkout.paid_usd == Decimal(5)
        assert_paid_is_confirmed(checkout, confirmed)

    run_rounds(database_url, play)


@pytest.mark.parametrize(("usd", "final_status"), [(10, "completed"), (5, "expired")])
def test_expiry_racing_a_credit_made_before_the_deadline_ends_as_the_payment_decides(
    database_url: str, usd: int, final_status: str
) -> None:
    async def play(bench: Bench, number: int) -> None:
        # Expired a second ago; the payment was mined a minute ago (before the deadline).
        session_id = await bench.new_session(expires_in=timedelta(seconds=-1))
        credit = bench.credit(await bench.deposit_address(session_id), CHAIN_A, usd)
        expire = bench.expire()
        expiry_first = number % 2 == 1
        if expiry_first:
            await bench.race(expire, credit)
        else:
            await bench.race(credit, expire)
        checkout, events, confirmed = await bench.outcome(session_id)
        assert checkout.status == final_status, (number, checkout.status, events)
        if final_status == "completed":
            assert events.get("session.completed") == 1, (number, events)
            # Only when the sweep came first did it ever look expired.
            assert events.get("session.expired", 0) == (1 if expiry_first else 0), (number, events)
            assert not checkout.underpaid
        else:
            assert events.get("session.expired") == 1, (number, events)
            assert events.get("session.underpaid") == 1, (number, events)
            assert "session.completed" not in events
            assert checkout.underpaid
        assert checkout.paid_usd == Decimal(usd)
        assert_paid_is_confirmed(checkout, confirmed)

    run_rounds(database_url, play)


@pytest.mark.parametrize("usd_each", [5, 10])
def test_two_chains_crediting_one_session_at_once_complete_it_once(
    database_url: str, usd_each: int
) -> None:
    async def play(bench: Bench, number: int) -> None:
        session_id = await bench.new_session()
        address = await bench.deposit_address(session_id)
        on_a = bench.credit(address, CHAIN_A, usd_each)
        on_b = bench.credit(address, CHAIN_B, usd_each)
        if number % 2 == 0:
            await bench.race(on_a, on_b)
        else:
            await bench.race(on_b, on_a)
        checkout, events, confirmed = await bench.outcome(session_id)
        assert checkout.status == "completed", (number, checkout.status, events)
        assert events.get("session.completed") == 1, (number, events)
        assert events.get("payment.confirmed") == 2, (number, events)
        if usd_each == 5:
            assert events.get("session.underpaid") == 1, (number, events)  # after the first 5
            assert not checkout.overpaid
        else:
            assert "session.underpaid" not in events
            assert checkout.overpaid
            assert events.get("session.overpaid") == 1, (number, events)
        assert checkout.paid_usd == Decimal(2 * usd_each)
        assert_paid_is_confirmed(checkout, confirmed)

    run_rounds(database_url, play)


def test_confirmations_on_two_chains_at_once_complete_a_split_payment_once(
    database_url: str,
) -> None:
    async def play(bench: Bench, number: int) -> None:
        session_id = await bench.new_session()
        address = await bench.deposit_address(session_id)
        for chain_id in (CHAIN_A, CHAIN_B):  # both halves seen, neither final yet
            async with transaction(bench.one) as db:
                await bench.credit(address, chain_id, 5, final=False)(db)
        if number % 2 == 0:
            await bench.race(bench.confirm(CHAIN_A), bench.confirm(CHAIN_B))
        else:
            await bench.race(bench.confirm(CHAIN_B), bench.confirm(CHAIN_A))
        checkout, events, confirmed = await bench.outcome(session_id)
        assert checkout.status == "completed", (number, checkout.status, events)
        assert events.get("session.completed") == 1, (number, events)
        assert events.get("payment.confirmed") == 2, (number, events)
        assert checkout.paid_usd == Decimal(10)
        assert_paid_is_confirmed(checkout, confirmed)

    run_rounds(database_url, play)


def test_two_chains_paying_a_subscription_at_once_start_it_once_with_two_periods(
    database_url: str,
) -> None:
    async def play(bench: Bench, number: int) -> None:
        session_id = await bench.new_session(subscription=True)
        address = await bench.deposit_address(session_id)
        on_a = bench.credit(address, CHAIN_A, 10)
        on_b = bench.credit(address, CHAIN_B, 10)
        if number % 2 == 0:
            results = await bench.race(on_a, on_b)
        else:
            results = await bench.race(on_b, on_a)
        assert not any(isinstance(r, BaseException) for r in results), results
        checkout, events, confirmed = await bench.outcome(session_id)
        async with bench.watch() as db:
            [subscription] = (
                await db.scalars(select(Subscription).where(Subscription.session_id == session_id))
            ).all()
            sub_events = dict(
                (
                    await db.execute(
                        select(Event.type, func.count())
                        .where(Event.subscription_id == subscription.id)
                        .group_by(Event.type)
                    )
                ).all()
            )
        assert checkout.status == "completed", (number, checkout.status, events)
        assert events.get("session.completed") == 1, (number, events)
        assert subscription.periods_paid == 2, (number, subscription.periods_paid)
        assert sub_events == {"subscription.created": 1, "subscription.renewed": 1}, sub_events
        assert_paid_is_confirmed(checkout, confirmed)

    run_rounds(database_url, play)


def test_cancelling_a_trial_while_its_first_payment_settles_keeps_it_cancelled(
    database_url: str,
) -> None:
    async def play(bench: Bench, number: int) -> None:
        session_id = await bench.new_session(subscription=True)
        async with transaction(bench.one) as db:
            checkout = await db.get(CheckoutSession, session_id)
            assert checkout is not None
            checkout.trial_seconds = 7 * 86_400
            await db.flush()
            trial = await subscriptions_service.start_trial(
                db,
                checkout,
                now=bench.context.clock.now(),
                telegram_user_id=10_000 + number + 1000 * next(_tx_numbers),
            )
            uuid = trial.uuid
        address = await bench.deposit_address(session_id)

        async def cancel(db: AsyncSession) -> Any:
            return await subscriptions_service.cancel(
                db, bench.principal, uuid, force=True, now=bench.context.clock.now()
            )

        credit = bench.credit(address, CHAIN_A, 10)
        if number % 2 == 0:
            await bench.race(credit, cancel)
        else:
            await bench.race(cancel, credit)
        async with bench.watch() as db:
            subscription = await db.scalar(select(Subscription).where(Subscription.uuid == uuid))
        assert subscription is not None
        # However the two interleave, the merchant's cancel stands.
        assert subscription.status == "cancelled", (number, subscription.status)
        assert subscription.stopped
        assert subscription.periods_paid == 1, (number, subscription.periods_paid)

    run_rounds(database_url, play)


def test_two_chains_steps_settling_the_same_sessions_in_crossed_order_do_not_deadlock(
    database_url: str,
) -> None:
    """Each chain's step credits one session and confirms a payment of the other, as the
    watcher's step does (`chain/watcher.py` `_commit`), pausing between the two."""

    async def step(
        db: AsyncSession,
        bench: Bench,
        chain_id: int,
        transfer: Transfer,
        reached: asyncio.Event,
        go: asyncio.Event,
    ) -> None:
        try:
            await payments_ingest.lock_step_sessions(db, chain_id, [transfer], 10**9)
            await payments_ingest.apply_transfers(db, bench.context, [transfer])
        finally:
            reached.set()
        await go.wait()
        await payments_ingest.confirm_through(db, bench.context, chain_id, 10**9)

    async def play(bench: Bench, number: int) -> None:
        ids = [await bench.new_session(), await bench.new_session()]
        first, second = [await bench.deposit_address(i) for i in ids]
        async with transaction(bench.one) as db:  # half of each, seen, not final yet
            await bench.credit(first, CHAIN_A, 5, final=False)(db)
            await bench.credit(second, CHAIN_B, 5, final=False)(db)
        steps = [
            (CHAIN_A, paid(second, CHAIN_A, 5, final=True)),
            (CHAIN_B, paid(first, CHAIN_B, 5, final=True)),
        ]
        if number % 2:
            steps.reverse()
        go = asyncio.Event()
        reached = [asyncio.Event(), asyncio.Event()]
        async with bench.one() as a, bench.two() as b:
            leading = asyncio.create_task(step(a, bench, *steps[0], reached[0], go))
            await reached[0].wait()
            pid = await b.scalar(text("SELECT pg_backend_pid()"))
            trailing = asyncio.create_task(step(b, bench, *steps[1], reached[1], go))
            await bench.blocked_or_done(pid, trailing, reached[1])
            go.set()
            await leading
            await a.commit()
            await trailing
            await b.commit()
        for session_id in ids:
            checkout, events, confirmed = await bench.outcome(session_id)
            assert checkout.status == "completed", (number, checkout.status, events)
            assert events.get("session.completed") == 1, (number, events)
            assert checkout.paid_usd == Decimal(10)
            assert_paid_is_confirmed(checkout, confirmed)

    run_rounds(database_url, play)
