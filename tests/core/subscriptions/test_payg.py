"""Pay-as-you-go on the clock: usage, the period-end bill with free credits, paying it, an
unpaid bill's reminders, past due and expiry, the spending cap, through the real services."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from core.catalog import service as catalog_service
from core.catalog.schemas import ProductCreate
from core.checkout import service as checkout_service
from core.checkout.schemas import SessionCreate, SubscriptionOptionsIn
from core.db import transaction
from core.errors import AppError
from core.models import CheckoutSession, Subscription
from core.subscriptions import payg
from core.subscriptions import service as subscriptions_service
from core.subscriptions.policy import Policy
from tests.core.subscriptions.test_lifecycle import MONTH, START, World
from tests.harness.factories import Tenant, make_tenant

POLICY = Policy()  # 3 days' lead, 3 days' grace
DAY = timedelta(days=1)


@pytest.fixture(scope="module")
def tenant(database_url: str) -> Tenant:
    return make_tenant(database_url, test=True, name="Pay as you go")


class PaygWorld(World):
    async def start(
        self,
        *,
        unit_price: str = "0.5",
        free_credits: str | None = None,
        cap: str | None = None,
        telegram_user_id: int = 4242,
    ) -> None:
        """A 30-day PAYG subscription started (without paying) at the clock's time."""
        async with transaction(self.sessionmaker) as db:
            product = await catalog_service.create_product(
                db,
                self.principal,
                ProductCreate(
                    name="API calls",
                    description="Per call",
                    price=Decimal(unit_price),
                    max_spending_per_period=Decimal(cap) if cap is not None else None,
                ),
            )
            self.product_id = product.id
            options = SubscriptionOptionsIn.model_validate(
                {
                    "subscriptionType": "payAsYouGo",
                    "frequency": {"value": 30, "unit": "days"},
                    "freeCredits": free_credits,
                }
            )
            checkout = await checkout_service.create_session(
                db,
                self.principal,
                self.context,
                SessionCreate(product_id=product.id, options=options),
            )
            self.address = checkout.deposit_address
            self.session_id = checkout.id
            started = await subscriptions_service.start_trial(
                db, checkout, now=self.clock.now(), telegram_user_id=telegram_user_id, policy=POLICY
            )
            self.subscription_id = started.id
            self.uuid = started.uuid

    async def use(self, units: str) -> Subscription:
        async with transaction(self.sessionmaker) as db:
            return await subscriptions_service.increase_units(
                db, self.principal, self.uuid, Decimal(units), policy=POLICY, now=self.clock.now()
            )

    async def due(self) -> Decimal:
        async with self.sessionmaker() as db:
            found = await db.get(Subscription, self.subscription_id)
            assert found is not None
            return await subscriptions_service.amount_due(db, found)


@pytest.fixture
async def world(database_url: str, tenant: Tenant):  # type: ignore[no-untyped-def]
    made = PaygWorld(database_url, tenant)
    try:
        yield made
    finally:
        await made.engine.dispose()


async def test_payg_starts_active_without_paying_with_its_free_credits(world: PaygWorld) -> None:
    await world.start(free_credits="3")
    started = await world.subscription()
    assert started.payg
    assert started.status == "active"
    assert started.units_current_period == 0
    assert started.free_credits_usd == Decimal(3)
    assert started.current_period_end == START + MONTH
    assert started.next_action_at == START + MONTH
    assert started.deposit_address == world.address
    assert await world.events() == {"subscription.created": 1}


async def test_period_end_bills_units_less_free_credits_and_payment_starts_next_period(
    world: PaygWorld,
) -> None:
    await world.start(unit_price="0.5", free_credits="3")
    await world.use("10.25")
    used = await world.use("0.000000000000000001")
    assert used.units_current_period == Decimal("10.250000000000000001")

    end = START + MONTH
    await world.tick(end)
    billed = await world.subscription()
    # 10.250000000000000001 x 0.5 = 5.1250000000000000005, less 3 of free credits.
    assert billed.billed_usd == Decimal("2.1250000000000000005")
    assert await world.due() == Decimal("2.1250000000000000005")
    assert billed.free_credits_usd == 0
    assert billed.units_current_period == 0
    assert billed.status == "active"
    assert billed.bill_due_at == end + timedelta(days=3)
    assert billed.current_period_end == end + MONTH
    assert await world.events() == {"subscription.created": 1, "subscription.renewal_due": 1}
    assert len(await world.reminders()) == 1  # the first reminder at the bill's opening

    # A partial payment lowers the bill; the rest pays it.
    await world.pay(Decimal("2"))
    assert await world.due() == Decimal("0.1250000000000000005")
    assert (await world.subscription()).bill_due_at is not None
    await world.pay(Decimal("0.125001"))
    paid = await world.subscription()
    assert paid.status == "active"
    assert paid.bill_due_at is None
    assert paid.units_current_period == 0
    assert paid.current_period_end == end + MONTH
    assert paid.next_action_at == end + MONTH
    assert paid.payer_address is not None
    assert await world.due() == 0
    assert (await world.events())["subscription.renewed"] == 1
    # Nothing more happens before the next period end.
    assert await world.tick(end + timedelta(days=10)) == 0


async def test_a_zero_bill_starts_the_next_period_at_once_and_credits_carry_over(
    world: PaygWorld,
) -> None:
    await world.start(unit_price="1", free_credits="10")
    await world.use("4")
    await world.tick(START + MONTH)
    after = await world.subscription()
    assert after.status == "active"
    assert after.free_credits_usd == Decimal(6)
    assert after.billed_usd == 0
    assert after.units_current_period == 0
    assert after.current_period_end == START + 2 * MONTH
    assert after.bill_due_at is None
    assert await world.events() == {"subscription.created": 1, "subscription.renewed": 1}
    assert await world.reminders() == []

    # A worker down for three periods of no usage rolls each of them once.
    await world.tick(START + 4 * MONTH + DAY)
    later = await world.subscription()
    assert later.current_period_end == START + 5 * MONTH
    assert (await world.events())["subscription.renewed"] == 4


async def test_an_unpaid_bill_reminds_then_goes_past_due_then_expires_each_once(
    world: PaygWorld,
) -> None:
    await world.start(unit_price="2")
    await world.use("3")
    end = START + MONTH
    deadline = end + timedelta(days=3)
    await world.tick(end)
    await world.tick(end)  # a second pass changes nothing
    assert len(await world.reminders()) == 1
    await world.tick(deadline - DAY)
    await world.tick(deadline - timedelta(hours=3))
    assert len(await world.reminders()) == 3
    assert (await world.subscription()).status == "active"

    await world.tick(deadline)
    past_due = await world.subscription()
    assert past_due.status == "past_due"
    assert past_due.past_due_at == deadline
    assert await world.due() == Decimal(6)

    await world.tick(deadline + timedelta(days=3))
    await world.tick(deadline + timedelta(days=4))
    expired = await world.subscription()
    assert expired.status == "expired"
    assert expired.stopped
    assert expired.next_action_at is None
    assert await world.events() == {
        "subscription.created": 1,
        "subscription.renewal_due": 1,
        "subscription.past_due": 1,
        "subscription.expired": 1,
    }
    assert len(await world.reminders()) == 3
    with pytest.raises(AppError) as refused:
        await world.use("1")
    assert refused.value.status_code == 409


async def test_paying_a_past_due_bill_in_grace_makes_it_active_again(world: PaygWorld) -> None:
    await world.start(unit_price="1")
    await world.use("5")
    end = START + MONTH
    await world.tick(end + timedelta(days=3, hours=1))
    assert (await world.subscription()).status == "past_due"
    await world.pay(Decimal(5))
    paid = await world.subscription()
    assert paid.status == "active"
    assert paid.past_due_at is None
    assert paid.current_period_end == end + MONTH
    assert paid.next_action_at == end + MONTH
    assert await world.due() == 0


async def test_usage_beyond_the_products_cap_is_refused_and_not_recorded(
    world: PaygWorld,
) -> None:
    await world.start(unit_price="1", free_credits="5", cap="20")
    await world.use("25")  # bills 20 after the free credits: at the cap, allowed
    with pytest.raises(AppError) as refused:
        await world.use("0.01")
    assert refused.value.status_code == 422
    assert refused.value.param == "increaseByAmount"
    assert "maxSpendingPerPeriod" in str(refused.value)
    assert (await world.subscription()).units_current_period == Decimal(25)


async def test_the_default_cap_is_1000_usd(world: PaygWorld) -> None:
    await world.start(unit_price="10")
    await world.use("100")
    with pytest.raises(AppError):
        await world.use("0.1")
    async with world.sessionmaker() as db:
        product = await catalog_service.get_product(db, world.principal, world.product_id)
        assert payg.max_spending(product) == Decimal(1000)


async def test_usage_after_an_unprocessed_period_end_counts_toward_the_new_period(
    world: PaygWorld,
) -> None:
    await world.start(unit_price="1")
    await world.use("2")
    world.clock.set(START + MONTH + DAY)  # the job has not run yet
    await world.use("7")
    after = await world.subscription()
    assert after.billed_usd == Decimal(2)
    assert after.units_current_period == Decimal(7)


async def test_one_start_per_payer_per_product(world: PaygWorld) -> None:
    await world.start(telegram_user_id=777)
    async with transaction(world.sessionmaker) as db:
        options = SubscriptionOptionsIn.model_validate(
            {"subscriptionType": "payAsYouGo", "frequency": {"value": 30, "unit": "days"}}
        )
        again = await checkout_service.create_session(
            db,
            world.principal,
            world.context,
            SessionCreate(product_id=world.product_id, options=options),
        )
        with pytest.raises(AppError) as refused:
            await subscriptions_service.start_trial(
                db, again, now=world.clock.now(), telegram_user_id=777
            )
        assert refused.value.code == "payg_started"
        other = await subscriptions_service.start_trial(
            db, again, now=world.clock.now(), telegram_user_id=778
        )
        assert other.payg


async def test_money_paid_to_a_payg_session_before_any_start_becomes_credit(
    world: PaygWorld,
) -> None:
    async with transaction(world.sessionmaker) as db:
        product = await catalog_service.create_product(
            db, world.principal, ProductCreate(name="Calls", description="x", price=Decimal(2))
        )
        options = SubscriptionOptionsIn.model_validate(
            {"subscriptionType": "payAsYouGo", "frequency": {"value": 30, "unit": "days"}}
        )
        checkout = await checkout_service.create_session(
            db,
            world.principal,
            world.context,
            SessionCreate(product_id=product.id, options=options),
        )
        world.address = checkout.deposit_address
        session_id = checkout.id
    await world.pay(Decimal(2))
    async with world.sessionmaker() as db:
        found = await db.scalar(select(Subscription).where(Subscription.session_id == session_id))
        assert found is not None
        assert (await db.get(CheckoutSession, session_id)) is not None
        world.subscription_id = found.id
        world.uuid = found.uuid
    assert (await world.subscription()).payg
    await world.use("1")  # bills 2 at the period end, covered by the 2 already paid
    await world.tick(START + MONTH)
    covered = await world.subscription()
    assert covered.status == "active"
    assert covered.bill_due_at is None
    assert await world.due() == 0


async def test_cancel_at_period_end_bills_the_last_periods_usage_at_the_access_end(
    world: PaygWorld,
) -> None:
    await world.start(unit_price="1", free_credits="1")
    await world.use("3")
    async with transaction(world.sessionmaker) as db:
        await subscriptions_service.cancel(
            db, world.principal, world.uuid, force=False, now=world.clock.now(), at_period_end=True
        )
    assert await world.due() == 0
    await world.tick(START + MONTH)
    ended = await world.subscription()
    assert ended.status == "expired"
    assert ended.units_current_period == 0
    assert ended.free_credits_usd == 0
    assert await world.due() == Decimal(2)
    assert ended.next_action_at is None


async def test_history_has_a_bill_per_closed_period_open_until_paid(world: PaygWorld) -> None:
    await world.start(unit_price="0.5", free_credits="1")
    assert await world.bills() == []  # nothing billed before the first period closes
    await world.use("2")  # 1 USD, all free credits
    await world.tick(START + MONTH)
    zero = ("paid", START, Decimal(0), Decimal(0), Decimal(0), 0)
    assert await world.bills() == [zero]

    await world.use("7")  # 3.5 USD
    await world.tick(START + 2 * MONTH)
    owed = ("open", START + MONTH, Decimal("3.5"), Decimal(0), Decimal("3.5"), 0)
    assert await world.bills() == [zero, owed]
    [opened] = await world.event_data("subscription.renewal_due")
    assert opened["amountDue"] == "3.5"
    assert opened["bill"]["amountUsd"] == "3.5"

    await world.pay(Decimal("1.5"))
    assert (await world.bills())[1] == (
        "open",
        START + MONTH,
        Decimal("3.5"),
        Decimal("1.5"),
        Decimal(2),
        1,
    )
    await world.pay(Decimal(2))
    assert (await world.bills())[1] == (
        "paid",
        START + MONTH,
        Decimal("3.5"),
        Decimal("3.5"),
        Decimal(0),
        2,
    )

    # The next bill goes unpaid: past due at its deadline, unpaid at expiry.
    await world.use("2")
    await world.tick(START + 3 * MONTH)
    await world.tick(START + 3 * MONTH + 3 * DAY)
    assert (await world.bills())[2][0] == "past_due"
    await world.tick(START + 3 * MONTH + 6 * DAY)
    assert (await world.subscription()).status == "expired"
    # Consumed usage stays owed after expiry; money that comes late (reported as such) pays it.
    assert (await world.bills())[2] == ("past_due", START + 2 * MONTH, Decimal(1), 0, 1, 0)
    await world.pay(Decimal(1))
    assert (await world.bills())[2] == ("paid", START + 2 * MONTH, Decimal(1), 1, 0, 1)


async def test_history_bills_a_cancelled_subscriptions_last_period_at_its_access_end(
    world: PaygWorld,
) -> None:
    await world.start(unit_price="1", free_credits="1")
    await world.use("3")
    async with transaction(world.sessionmaker) as db:
        await subscriptions_service.cancel(
            db, world.principal, world.uuid, force=False, now=world.clock.now(), at_period_end=True
        )
    await world.tick(START + MONTH)
    [last] = await world.bills()
    assert last == ("open", START, Decimal(2), Decimal(0), Decimal(2), 0)
    assert await world.due() == Decimal(2)  # the same as the subscription's amountDue
