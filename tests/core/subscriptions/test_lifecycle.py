"""Subscriptions on the clock: renewal request and reminders, past due, grace, expiry,
cancellation and late money, through the real services with a clock the test moves."""

from __future__ import annotations

import json
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.catalog import service as catalog_service
from core.catalog.schemas import ProductCreate
from core.checkout import service as checkout_service
from core.checkout.context import CheckoutContext
from core.checkout.schemas import SessionCreate, SubscriptionOptionsIn
from core.clock import ManualClock
from core.db import create_engine, create_sessionmaker, transaction
from core.models import Event, Product, Subscription, TelegramOutbox
from core.orgs.schemas import Principal, Role
from core.payments import ingest
from core.payments.schemas import Transfer
from core.subscriptions import history, lifecycle, tasks
from core.subscriptions import service as subscriptions_service
from core.subscriptions.policy import Policy
from tests.harness.factories import DEVNET_A_USDT, Tenant, make_tenant, test_settings

START = datetime(2027, 1, 1, tzinfo=UTC)
MONTH = timedelta(days=30)
POLICY = Policy()  # 3 days' lead, 3 days' grace


@pytest.fixture(scope="module")
def tenant(database_url: str) -> Tenant:
    return make_tenant(database_url, test=True, name="Lifecycle")


class World:
    """One subscription's world: its own clock, the real services, the suite's database."""

    def __init__(self, database_url: str, tenant: Tenant) -> None:
        self.clock = ManualClock(START)
        self.engine = create_engine(database_url)
        self.sessionmaker: async_sessionmaker[AsyncSession] = create_sessionmaker(self.engine)
        self.context = replace(
            CheckoutContext.from_settings(test_settings(database_url)), clock=self.clock
        )
        self.principal = Principal(0, tenant.organization_id, tenant.owner_id, Role.OWNER, True)
        self.subscription_id = 0
        self.address = ""

    async def subscribe(self, *, price: str = "10", reactivate: bool = False) -> None:
        """A 30-day subscription paid once (one period) at START, for Telegram user 4242."""
        async with transaction(self.sessionmaker) as db:
            product = await catalog_service.create_product(
                db,
                self.principal,
                ProductCreate(name="Club", description="Club", price=Decimal(price)),
            )
            product.reactivate_on_late_payment = reactivate
            options = SubscriptionOptionsIn.model_validate(
                {"subscriptionType": "subscription", "frequency": {"value": 30, "unit": "days"}}
            )
            checkout = await checkout_service.create_session(
                db,
                self.principal,
                self.context,
                SessionCreate(product_id=product.id, options=options),
            )
            checkout.telegram_user_id = 4242
            self.address = checkout.deposit_address
        await self.pay(Decimal(price))
        async with self.sessionmaker() as db:
            found = await db.scalar(
                select(Subscription).where(Subscription.deposit_address == self.address)
            )
            assert found is not None
            self.subscription_id = found.id

    async def pay(self, usd: Decimal) -> None:
        async with transaction(self.sessionmaker) as db:
            await ingest.apply_transfer(
                db,
                self.context,
                Transfer(
                    chain_id=31337,
                    tx_hash="0x" + secrets.token_hex(32),
                    log_index=0,
                    block_number=100,
                    block_hash="0x" + secrets.token_hex(32),
                    block_timestamp=self.clock.now(),
                    from_address="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                    to_address=self.address,
                    token_contract=DEVNET_A_USDT,
                    amount_base_units=int(usd * 10**6),
                    final=True,
                ),
            )

    async def tick(self, at: datetime) -> int:
        self.clock.set(at)
        async with transaction(self.sessionmaker) as db:
            return await tasks.advance(db, at, policy=POLICY)

    async def subscription(self) -> Subscription:
        async with self.sessionmaker() as db:
            found = await db.get(Subscription, self.subscription_id)
            assert found is not None
            return found

    async def events(self) -> dict[str, int]:
        async with self.sessionmaker() as db:
            rows = await db.execute(
                select(Event.type, func.count())
                .where(Event.subscription_id == self.subscription_id)
                .group_by(Event.type)
            )
            return {kind: count for kind, count in rows}

    async def bills(self) -> list[tuple[str, datetime, Decimal, Decimal, Decimal, int]]:
        """(status, period start, amount, paid, due, payments) of each bill, oldest first."""
        async with self.sessionmaker() as db:
            found = await db.get(Subscription, self.subscription_id)
            assert found is not None
            return [
                (
                    entry.status.value,
                    entry.bill.period_start,
                    entry.bill.amount_usd,
                    entry.paid_usd,
                    entry.amount_due,
                    len(entry.payments),
                )
                for entry in await history.entries(db, found)
            ]

    async def event_data(self, kind: str) -> list[dict[str, Any]]:
        async with self.sessionmaker() as db:
            rows = await db.scalars(
                select(Event)
                .where(Event.subscription_id == self.subscription_id, Event.type == kind)
                .order_by(Event.id)
            )
            return [json.loads(event.payload)["data"] for event in rows]

    async def reminders(self) -> list[str]:
        async with self.sessionmaker() as db:
            return list(
                await db.scalars(
                    select(TelegramOutbox.dedupe_key)
                    .where(TelegramOutbox.dedupe_key.like(f"remind:{self.subscription_id}:%"))
                    .order_by(TelegramOutbox.id)
                )
            )


@pytest.fixture
async def world(database_url: str, tenant: Tenant):  # type: ignore[no-untyped-def]
    made = World(database_url, tenant)
    try:
        yield made
    finally:
        await made.engine.dispose()


def test_reminder_times_and_the_one_third_rule() -> None:
    end = START + MONTH
    assert lifecycle.reminder_times(end, timedelta(days=3)) == [
        end - timedelta(days=3),
        end - timedelta(days=1),
        end - timedelta(hours=3),
    ]
    daily = Subscription(frequency_seconds=86_400)
    assert lifecycle.lead_for(daily, POLICY) == timedelta(hours=8)
    times = lifecycle.reminder_times(end, lifecycle.lead_for(daily, POLICY))
    assert len(times) == 3
    assert times == sorted(times)
    assert end - times[0] == timedelta(hours=8)
    product = Product(grace_seconds=7 * 86_400)
    assert lifecycle.grace_for(
        Subscription(frequency_seconds=30 * 86_400), product, POLICY
    ) == timedelta(days=7)
    assert lifecycle.grace_for(daily, product, POLICY) == timedelta(hours=8)


async def test_renewal_reminders_past_due_paid_in_grace_then_expired(world: World) -> None:
    await world.subscribe()
    end = START + MONTH
    sub = await world.subscription()
    assert sub.current_period_end == end
    assert sub.next_action_at == end - timedelta(days=3)

    assert await world.tick(end - timedelta(days=4)) == 0
    assert await world.tick(end - timedelta(days=3)) == 1
    assert await world.tick(end - timedelta(days=3)) == 0  # nothing twice
    assert (await world.events()).get("subscription.renewal_due") == 1
    assert len(await world.reminders()) == 1

    await world.tick(end - timedelta(days=1))
    assert len(await world.reminders()) == 2
    # A worker down across the last reminder and the period end catches up in one pass.
    await world.tick(end + timedelta(hours=1))
    sub = await world.subscription()
    assert sub.status == "past_due"
    assert len(await world.reminders()) == 3
    assert (await world.events()).get("subscription.past_due") == 1
    assert (await world.events()).get("subscription.renewal_due") == 1

    # Paid in grace: active again, extended from the old period end (no day lost).
    world.clock.set(end + timedelta(days=2))
    await world.pay(Decimal("10"))
    sub = await world.subscription()
    assert sub.status == "active"
    assert sub.current_period_end == end + MONTH
    assert sub.next_action_at == end + MONTH - timedelta(days=3)

    # Unpaid again: one jump past the next end and the grace: every step, once each.
    second_end = end + MONTH
    await world.tick(second_end + timedelta(days=3, seconds=1))
    sub = await world.subscription()
    assert sub.status == "expired"
    assert sub.stopped is True
    assert sub.next_action_at is None
    events = await world.events()
    assert events.get("subscription.renewal_due") == 2
    assert events.get("subscription.past_due") == 2
    assert events.get("subscription.expired") == 1
    assert len(await world.reminders()) == 6  # three a period, each once
    assert lifecycle.grants_access(sub, second_end + timedelta(days=4)) is False


async def test_prepaying_three_periods_and_partial_payments(world: World) -> None:
    await world.subscribe()
    await world.pay(Decimal("20"))  # two more periods at once
    sub = await world.subscription()
    assert sub.current_period_end == START + 3 * MONTH
    await world.pay(Decimal("4"))
    await world.pay(Decimal("6"))  # 4 + 6: one more period, accumulated
    sub = await world.subscription()
    assert sub.current_period_end == START + 4 * MONTH
    assert (await world.events()).get("subscription.renewed") == 2


async def test_late_money_after_expiry_is_reported_and_does_not_reactivate(world: World) -> None:
    await world.subscribe()
    await world.tick(START + MONTH + timedelta(days=3, seconds=1))
    assert (await world.subscription()).status == "expired"
    world.clock.set(START + MONTH + timedelta(days=10))
    await world.pay(Decimal("10"))
    sub = await world.subscription()
    assert sub.status == "expired"
    assert (await world.events()).get("payment.late") == 1


async def test_late_money_reactivates_where_the_product_says_so(world: World) -> None:
    await world.subscribe(reactivate=True)
    await world.tick(START + MONTH + timedelta(days=3, seconds=1))
    later = START + MONTH + timedelta(days=10)
    world.clock.set(later)
    await world.pay(Decimal("10"))
    sub = await world.subscription()
    assert sub.status == "active"
    assert sub.current_period_end == later + MONTH
    assert (await world.events()).get("payment.late") is None


async def test_cancel_at_period_end_keeps_access_until_then_cancel_now_ends_it(
    world: World,
) -> None:
    await world.subscribe()
    world.clock.set(START + timedelta(days=5))
    async with transaction(world.sessionmaker) as db:
        sub = await db.get(Subscription, world.subscription_id)
        assert sub is not None
        cancelled = await subscriptions_service.cancel(
            db, world.principal, sub.uuid, force=False, now=world.clock.now(), at_period_end=True
        )
        assert cancelled.ends_at == START + MONTH
    sub = await world.subscription()
    assert lifecycle.grants_access(sub, START + timedelta(days=20)) is True
    await world.tick(START + timedelta(days=20))
    assert (await world.subscription()).status == "cancelled"
    await world.tick(START + MONTH)
    sub = await world.subscription()
    assert sub.status == "expired"
    assert lifecycle.grants_access(sub, START + MONTH) is False
    assert (await world.events()).get("subscription.renewal_due") is None  # cancelled: none


async def test_cancel_now_ends_access_at_the_next_run(world: World) -> None:
    await world.subscribe()
    moment = START + timedelta(days=5)
    world.clock.set(moment)
    async with transaction(world.sessionmaker) as db:
        sub = await db.get(Subscription, world.subscription_id)
        assert sub is not None
        await subscriptions_service.cancel(
            db, world.principal, sub.uuid, force=False, now=moment, at_period_end=False
        )
    assert lifecycle.grants_access(await world.subscription(), moment) is False
    await world.tick(moment + timedelta(seconds=30))
    assert (await world.subscription()).status == "expired"
    assert (await world.events()).get("subscription.expired") == 1


async def test_history_bills_each_period_open_partial_past_due_paid_then_unpaid(
    world: World,
) -> None:
    await world.subscribe()
    end = START + MONTH
    first = ("paid", START, Decimal(10), Decimal(10), Decimal(0), 1)
    assert await world.bills() == [first]

    await world.tick(end - timedelta(days=3))  # the renewal request opens the next bill
    assert await world.bills() == [first, ("open", end, Decimal(10), Decimal(0), Decimal(10), 0)]
    [opened] = await world.event_data("subscription.renewal_due")
    assert opened["amountDue"] == "10"
    assert opened["bill"]["status"] == "open"
    assert opened["bill"]["amountUsd"] == "10"
    assert datetime.fromisoformat(opened["bill"]["periodStart"]) == end

    world.clock.set(end - timedelta(days=1))
    await world.pay(Decimal("4"))  # partial: the bill stays open, 6 owed
    assert (await world.bills())[1] == ("open", end, Decimal(10), Decimal(4), Decimal(6), 1)
    await world.tick(end + timedelta(hours=1))
    assert (await world.bills())[1] == ("past_due", end, Decimal(10), Decimal(4), Decimal(6), 1)
    [late] = await world.event_data("subscription.past_due")
    assert late["amountDue"] == "6"

    world.clock.set(end + timedelta(days=1))
    await world.pay(Decimal("6"))  # the rest, in grace: paid by two payments
    second = ("paid", end, Decimal(10), Decimal(10), Decimal(0), 2)
    assert await world.bills() == [first, second]
    [renewed] = await world.event_data("subscription.renewed")
    assert renewed["bill"]["status"] == "paid"
    assert renewed["amountDue"] == "0"

    # The next period goes unpaid: open, past due, then unpaid at expiry.
    await world.tick(end + MONTH + timedelta(days=3, seconds=1))
    third = ("unpaid", end + MONTH, Decimal(10), Decimal(0), Decimal(0), 0)
    assert await world.bills() == [first, second, third]
    # Money after expiry is late: reported, never set against the unpaid bill.
    world.clock.set(end + MONTH + timedelta(days=5))
    await world.pay(Decimal("10"))
    assert await world.bills() == [first, second, third]


async def test_history_prepaid_periods_are_each_a_bill_and_a_payment_may_span_two(
    world: World,
) -> None:
    await world.subscribe()
    await world.pay(Decimal("25"))  # two periods and half of a third
    bills = await world.bills()
    assert [(b[0], b[1], b[3]) for b in bills] == [
        ("paid", START, Decimal(10)),
        ("paid", START + MONTH, Decimal(10)),
        ("paid", START + 2 * MONTH, Decimal(15)),
    ]
    # The 25 paid the second and third bills; the 5 beyond every bill stays with the newest
    # one until the next bill opens, and then pays toward it.
    assert [b[5] for b in bills] == [1, 1, 1]
    await world.tick(START + 3 * MONTH - timedelta(days=3))
    assert (await world.bills())[-1] == (
        "open",
        START + 3 * MONTH,
        Decimal(10),
        Decimal(5),
        Decimal(5),
        1,
    )
    sub = await world.subscription()
    async with world.sessionmaker() as db:
        assert await subscriptions_service.amount_due(db, sub) == Decimal(5)


async def test_history_a_cancelled_subscriptions_open_renewal_is_void(world: World) -> None:
    await world.subscribe()
    await world.tick(START + MONTH - timedelta(days=2))
    assert (await world.bills())[-1][0] == "open"
    world.clock.set(START + MONTH - timedelta(days=1))
    async with transaction(world.sessionmaker) as db:
        sub = await db.get(Subscription, world.subscription_id)
        assert sub is not None
        await subscriptions_service.cancel(
            db, world.principal, sub.uuid, force=False, now=world.clock.now(), at_period_end=True
        )
    assert [b[0] for b in await world.bills()] == ["paid", "void"]
    await world.tick(START + MONTH)
    assert [b[0] for b in await world.bills()] == ["paid", "void"]
