"""A subscription's whole life in Telegram, end to end: the real bot (polling loop, event
consumer, sender) against the fake Bot API, payments on anvil found by the real watcher, and
the `subscriptions.lifecycle` job run at chosen moments, all on ONE ManualClock that anvil's
block time follows (`evm_setNextBlockTimestamp`), so no test sleeps through a month.

Trial from the card → invite → reminders → paid → renewed → past due → paid in grace → past
due → expired and removed from the chat (ban + unban); reminders counted exactly; reminders
turned off; the subscriber's own cancel at the period's end."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.callbacks import CardAction, PickChain, SubscriptionAction
from chain.devnet import Devnet, transfer
from core.checkout.schemas import SubscriptionOptionsIn
from core.clock import ManualClock
from core.config import Settings
from core.db import transaction
from core.models import CheckoutSession, Event, Product, Subscription, TelegramOutbox
from core.subscriptions import tasks
from tests.bot.harness import TOKEN, RunningBot, running_bot
from tests.bot.test_payer_flow import card_edit
from tests.harness.chains import devnet, drain_async, watcher_settings
from tests.harness.factories import Tenant, make_tenant
from tests.harness.fake_telegram import Call, FakeTelegram, User, fake_telegram

pytestmark = pytest.mark.slow
__all__ = ["devnet"]  # the module-scoped anvil fixture

DAY = timedelta(days=1)
MONTH = timedelta(days=30)
CHAIN = 31337
REMINDER_MARK = "⏰"  # every renewal reminder starts with it (reminder.renewal)

# Every test has its own chat and people: rows left by one test never touch another's.
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def settings(database_url: str, devnet: Devnet) -> Settings:
    return watcher_settings(database_url, devnet, telegram_bot_username="chainpay_fake_bot")


@pytest.fixture(scope="module")
def tenant(database_url: str) -> Tenant:
    return make_tenant(database_url, test=True, name="Life Club")


@pytest.fixture
def telegram() -> Iterator[tuple[str, FakeTelegram]]:
    with fake_telegram(TOKEN) as running:
        yield running


@pytest.fixture
def ids() -> tuple[int, int]:
    """A fresh (paid chat id, first Telegram user id) for one test."""
    n = next(_ids)
    return -1008_000_000_000 - n * 100, 9_900_000 + n * 100


@pytest.fixture
def clock(devnet: Devnet) -> ManualClock:
    """Starts a minute after anvil's latest block (whole seconds): block times only go forward,
    and every test of the module moves the same chain further."""
    latest = devnet.node(CHAIN).rpc("eth_getBlockByNumber", ["latest", False])
    start = datetime.fromtimestamp(int(latest["timestamp"], 16), tz=UTC)
    return ManualClock(max(start, datetime.now(UTC).replace(microsecond=0)) + timedelta(minutes=1))


def buttons(call: Call) -> list[dict[str, Any]]:
    markup = call.params.get("reply_markup") or {}
    return [b for row in markup.get("inline_keyboard", []) for b in row]


def to(user_id: int) -> Any:
    return lambda call: call.params.get("chat_id") == user_id


def is_reminder(user_id: int) -> Any:
    return lambda call: (
        call.method == "sendMessage"
        and call.params.get("chat_id") == user_id
        and str(call.params.get("text", "")).startswith(REMINDER_MARK)
    )


class Life:
    """The bot, the watcher and the lifecycle job of one test, all on one clock."""

    def __init__(
        self, bot: RunningBot, settings: Settings, devnet: Devnet, clock: ManualClock
    ) -> None:
        self.bot = bot
        self.fake = bot.fake
        self.settings = settings
        self.devnet = devnet
        self.clock = clock
        self.policy = bot.context.subscription_policy

    async def tick(self, at: datetime) -> None:
        """The clock reaches `at` and the `subscriptions.lifecycle` job runs once (over every
        subscription of the database: what it did to this test's is read from its rows)."""
        self.clock.set(at)
        async with transaction(self.bot.sessionmaker) as db:
            await tasks.advance(db, at, policy=self.policy)

    async def pay(self, address: str, usd: int) -> None:
        """`usd` USDT (6 decimals on devnet A) to `address` in a block stamped with the clock's
        time, confirmed, and found by the watcher (on the same clock)."""
        node = self.devnet.node(CHAIN)
        node.rpc("evm_setNextBlockTimestamp", [int(self.clock.now().timestamp())])
        transfer(node.rpc_url, self.devnet.tokens[CHAIN][0], address, usd * 10**6)
        node.mine(3)  # past the 2 confirmations
        await drain_async(self.settings, context=self.bot.context)

    async def paid_product(self, tenant: Tenant, chat_id: int) -> int:
        """A $10 product bound to a chat the bot administers (invite and ban rights)."""
        self.fake.add_chat(chat_id, "supergroup", title="VIP")
        self.fake.set_bot_rights(chat_id)
        async with transaction(self.bot.sessionmaker) as db:
            product = Product(
                organization_id=tenant.organization_id,
                created_by_user_id=tenant.owner_id,
                test=True,
                name="Signals",
                description="Private chat",
                price_usd=Decimal("10"),
                telegram_chat_id=chat_id,
            )
            db.add(product)
            await db.flush()
            return product.id

    async def link(self, tenant: Tenant, product_id: int, *, trial: bool) -> CheckoutSession:
        """A 30-day subscription session (with a 7-day trial) for the product."""
        options = SubscriptionOptionsIn.model_validate(
            {
                "subscriptionType": "subscription",
                "frequency": {"value": 30, "unit": "days"},
                "trialPeriod": {"value": 7, "unit": "days"} if trial else None,
            }
        )
        return await self.bot.create_session(
            tenant, product_id=product_id, product_name=None, description=None, price=None,
            options=options,
        )  # fmt: skip

    async def open_card(self, payer: User, checkout: CheckoutSession) -> Call:
        mark = self.fake.mark()
        self.fake.send_text(payer, f"/start {checkout.bot_token}")
        return await self.fake.await_call("sendPhoto", to(payer.id), after=mark)

    async def start_trial(self, payer: User, checkout: CheckoutSession) -> Subscription:
        card = await self.open_card(payer, checkout)
        trial = CardAction(session_id=checkout.id, action="trial").pack()
        assert trial in [b.get("callback_data") for b in buttons(card)]
        mark = self.fake.mark()
        self.fake.press(payer, card.result["message_id"], trial)
        answer = await self.fake.await_call("answerCallbackQuery", after=mark)
        assert "trial has started" in str(answer.params.get("text"))
        return await self.subscription_of(checkout.id)

    async def join(self, payer: User, chat_id: int) -> None:
        """The invite arrives (once); the payer asks to join through it and is approved."""
        sent = await self.fake.await_call(
            "sendMessage", lambda c: to(payer.id)(c) and "private chat" in c.params["text"],
            timeout=15,
        )  # fmt: skip
        [join] = buttons(sent)
        mark = self.fake.mark()
        self.fake.join_request(payer, chat_id, str(join["url"]))
        await self.fake.await_call(
            "approveChatJoinRequest",
            lambda c: c.params.get("chat_id") == chat_id and c.params.get("user_id") == payer.id,
            after=mark,
        )
        assert self.fake.member(chat_id, payer.id)["status"] == "member"

    async def subscription_of(self, session_id: int) -> Subscription:
        async with self.bot.sessionmaker() as db:
            found = await db.scalar(
                select(Subscription).where(Subscription.session_id == session_id)
            )
            assert found is not None
            return found

    async def reload(self, subscription_id: int) -> Subscription:
        async with self.bot.sessionmaker() as db:
            found = await db.get(Subscription, subscription_id)
            assert found is not None
            return found

    async def events(self, subscription_id: int) -> dict[str, int]:
        async with self.bot.sessionmaker() as db:
            rows = await db.execute(
                select(Event.type, func.count())
                .where(Event.subscription_id == subscription_id)
                .group_by(Event.type)
            )
            return {kind: count for kind, count in rows}

    async def reminder_rows(self, subscription_id: int) -> list[TelegramOutbox]:
        async with self.bot.sessionmaker() as db:
            return list(
                await db.scalars(
                    select(TelegramOutbox)
                    .where(
                        TelegramOutbox.subscription_id == subscription_id,
                        TelegramOutbox.kind == "reminder",
                    )
                    .order_by(TelegramOutbox.id)
                )
            )

    async def reminders_worked_off(self, subscription_id: int, seconds: float = 15) -> None:
        """Wait until the sender has done every reminder row of the subscription."""
        deadline = asyncio.get_running_loop().time() + seconds
        while any(r.done_at is None for r in await self.reminder_rows(subscription_id)):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("reminders still queued")
            await asyncio.sleep(0.05)

    async def listing(self, payer: User) -> Call:
        """The payer's `/subscriptions` answer."""
        mark = self.fake.mark()
        self.fake.send_text(payer, "/subscriptions")
        return await self.fake.await_call(
            "sendMessage",
            lambda c: to(payer.id)(c) and "Your subscriptions" in c.params["text"],
            after=mark,
        )

    def reminders_to(self, user_id: int) -> list[Call]:
        return [c for c in self.fake.calls("sendMessage") if is_reminder(user_id)(c)]

    async def reminder(self, user_id: int, count: int) -> Call:
        """The `count`-th reminder message to `user_id` (waits for it)."""
        await self.fake.await_count("sendMessage", count, is_reminder(user_id), timeout=15)
        return self.reminders_to(user_id)[count - 1]

    async def period_reminders(
        self, payer: User, subscription_id: int, end: datetime, sent_before: int
    ) -> Call:
        """The job passes each of a period's reminder times (3 days, 1 day, 3 hours before its
        end), just before and just after each too: one row and one message each, never two."""
        for n, before in enumerate((3 * DAY, DAY, timedelta(hours=3)), start=1):
            await self.tick(end - before - timedelta(seconds=1))
            assert len(await self.reminder_rows(subscription_id)) == sent_before + n - 1
            await self.tick(end - before)
            await self.tick(end - before + timedelta(minutes=5))
            assert len(await self.reminder_rows(subscription_id)) == sent_before + n
            message = await self.reminder(payer.id, sent_before + n)
        await asyncio.sleep(0.3)  # a duplicate would have been sent by now
        assert len(self.reminders_to(payer.id)) == sent_before + 3
        return message

    async def press_renew(self, payer: User, reminder: Call, subscription_id: int) -> Call:
        """The reminder's one button opens the subscription's payment card."""
        [renew] = buttons(reminder)
        assert (
            renew["callback_data"]
            == SubscriptionAction(subscription_id=subscription_id, action="renew").pack()
        )
        mark = self.fake.mark()
        self.fake.press(payer, reminder.result["message_id"], renew["callback_data"])
        return await self.fake.await_call("sendPhoto", to(payer.id), after=mark)


def caption(call: Call) -> str:
    return str(call.params.get("caption", ""))


async def test_trial_paid_renewed_past_due_paid_in_grace_then_expired_and_removed(
    settings: Settings,
    tenant: Tenant,
    telegram: tuple[str, FakeTelegram],
    devnet: Devnet,
    clock: ManualClock,
    ids: tuple[int, int],
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake, clock=clock) as bot:
        life = Life(bot, settings, devnet, clock)
        product_id = await life.paid_product(tenant, chat_id)
        checkout = await life.link(tenant, product_id, trial=True)
        payer = fake.user(user_id, "Nina")
        started = clock.now()

        # Trial started in the card: access at once (one invite), nothing to pay for 7 days.
        subscription = await life.start_trial(payer, checkout)
        sid = subscription.id
        trial_end = started + timedelta(days=7)
        assert subscription.current_period_end == trial_end
        await life.join(payer, chat_id)

        # Reminders before the trial ends, each once; the Renew button opens the payment card.
        reminder = await life.period_reminders(payer, sid, trial_end, sent_before=0)
        assert "Signals" in reminder.params["text"]
        card = await life.press_renew(payer, reminder, sid)
        assert "Signals" in caption(card)
        assert "free trial until" in caption(card)

        # Paid two hours before the trial's end: active, the first period from the trial's end.
        clock.set(trial_end - timedelta(hours=2))
        await life.pay(checkout.deposit_address, 10)
        sub = await life.reload(sid)
        assert sub.status == "active"
        first_end = trial_end + MONTH
        assert sub.current_period_end == first_end
        await life.tick(trial_end + timedelta(minutes=1))  # nothing at the old end
        assert (await life.reload(sid)).status == "active"

        # Renewal reminders, then renewed: extended from the old end, not from the payment.
        reminder = await life.period_reminders(payer, sid, first_end, sent_before=3)
        card = await life.press_renew(payer, reminder, sid)
        assert "Subscription: active until" in caption(card)
        clock.set(first_end - timedelta(hours=2))
        await life.pay(checkout.deposit_address, 10)
        second_end = first_end + MONTH
        sub = await life.reload(sid)
        assert (sub.status, sub.current_period_end) == ("active", second_end)

        # The period ends unpaid: past due (access kept); paid a day into the grace: active
        # again, the next period from the old end (no day lost).
        await life.period_reminders(payer, sid, second_end, sent_before=6)
        await life.tick(second_end)
        assert (await life.reload(sid)).status == "past_due"
        clock.set(second_end + DAY)
        await life.pay(checkout.deposit_address, 10)
        third_end = second_end + MONTH
        sub = await life.reload(sid)
        assert (sub.status, sub.current_period_end) == ("active", third_end)
        assert fake.member(chat_id, payer.id)["status"] == "member"

        # Unpaid again: past due, then expired at the grace's end and removed from the chat.
        await life.period_reminders(payer, sid, third_end, sent_before=9)
        await life.tick(third_end)
        assert (await life.reload(sid)).status == "past_due"
        grace_end = third_end + timedelta(days=3)
        await life.tick(grace_end - timedelta(seconds=1))
        assert (await life.reload(sid)).status == "past_due"
        mark = fake.mark()
        await life.tick(grace_end)
        sub = await life.reload(sid)
        assert (sub.status, sub.stopped, sub.next_action_at) == ("expired", True, None)
        ban = await fake.await_call(
            "banChatMember", lambda c: c.params.get("user_id") == payer.id, after=mark, timeout=15
        )
        unban = await fake.await_call(
            "unbanChatMember", lambda c: c.params.get("user_id") == payer.id, after=mark
        )
        assert ban.params["chat_id"] == unban.params["chat_id"] == chat_id
        assert unban.params.get("only_if_banned") is True
        assert unban.seq > ban.seq
        assert fake.member(chat_id, payer.id)["status"] == "left"

        # Counted exactly: 4 periods x 3 reminders, one invite, each event once.
        await life.tick(grace_end + 40 * DAY)
        await asyncio.sleep(0.3)
        assert len(life.reminders_to(payer.id)) == 12
        assert len(await life.reminder_rows(sid)) == 12
        invites = [
            c
            for c in fake.calls("sendMessage")
            if to(payer.id)(c) and "private chat" in c.params["text"]
        ]
        assert len(invites) == 1
        assert (
            len([c for c in fake.calls("banChatMember") if c.params.get("user_id") == payer.id])
            == 1
        )
        events = await life.events(sid)
        assert {k: events.get(k, 0) for k in (
            "subscription.created", "subscription.renewal_due", "subscription.renewed",
            "subscription.past_due", "subscription.expired",
        )} == {
            "subscription.created": 1, "subscription.renewal_due": 4,
            "subscription.renewed": 3, "subscription.past_due": 2, "subscription.expired": 1,
        }  # fmt: skip


async def test_reminders_turned_off_send_nothing_but_the_renewal_is_still_requested(
    settings: Settings,
    tenant: Tenant,
    telegram: tuple[str, FakeTelegram],
    devnet: Devnet,
    clock: ManualClock,
    ids: tuple[int, int],
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake, clock=clock) as bot:
        life = Life(bot, settings, devnet, clock)
        product_id = await life.paid_product(tenant, chat_id)
        checkout = await life.link(tenant, product_id, trial=True)
        payer = fake.user(user_id, "Quiet")
        subscription = await life.start_trial(payer, checkout)
        end = subscription.current_period_end

        listing = await life.listing(payer)
        [off] = [b for b in buttons(listing) if b["callback_data"].endswith(":reminders_off")]
        mark = fake.mark()
        fake.press(payer, listing.result["message_id"], off["callback_data"])
        await fake.await_call(
            "answerCallbackQuery", lambda c: c.params.get("text") == "Reminders off", after=mark
        )

        for before in (3 * DAY, DAY, timedelta(hours=3)):
            await life.tick(end - before)
        await life.reminders_worked_off(subscription.id)
        assert len(await life.reminder_rows(subscription.id)) == 3  # queued, then skipped
        assert life.reminders_to(payer.id) == []
        assert (await life.events(subscription.id)).get("subscription.renewal_due") == 1


async def test_the_subscriber_cancels_at_the_period_end_and_keeps_access_until_then(
    settings: Settings,
    tenant: Tenant,
    telegram: tuple[str, FakeTelegram],
    devnet: Devnet,
    clock: ManualClock,
    ids: tuple[int, int],
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake, clock=clock) as bot:
        life = Life(bot, settings, devnet, clock)
        product_id = await life.paid_product(tenant, chat_id)
        checkout = await life.link(tenant, product_id, trial=False)
        payer, stranger = fake.user(user_id, "Owen"), fake.user(user_id + 1, "Mallory")
        await life.open_card(payer, checkout)
        await life.pay(checkout.deposit_address, 10)
        subscription = await life.subscription_of(checkout.id)
        assert subscription.status == "active"
        end = subscription.current_period_end
        await life.join(payer, chat_id)

        clock.advance(days=10)
        listing = await life.listing(payer)
        cancel = SubscriptionAction(subscription_id=subscription.id, action="cancel").pack()
        assert cancel in [b["callback_data"] for b in buttons(listing)]

        # Another account's press is refused and changes nothing.
        mark = fake.mark()
        fake.press(stranger, listing.result["message_id"], cancel, chat_id=payer.id)
        refused = await fake.await_call("answerCallbackQuery", after=mark)
        assert "another Telegram account" in str(refused.params.get("text"))
        assert (await life.reload(subscription.id)).status == "active"

        mark = fake.mark()
        fake.press(payer, listing.result["message_id"], cancel)
        answer = await fake.await_call("answerCallbackQuery", after=mark)
        assert answer.params.get("text") == "Subscription cancelled"
        told = await fake.await_call("sendMessage", to(payer.id), after=mark)
        until = end.strftime("%Y-%m-%d %H:%M UTC")
        assert f"access until {until}" in told.params["text"]
        sub = await life.reload(subscription.id)
        assert (sub.status, sub.ends_at) == ("cancelled", end)
        assert (await life.events(subscription.id)).get("subscription.cancelled") == 1

        listing = await life.listing(payer)
        assert f"Signals: cancelled, access until {until}" in listing.params["text"]
        assert cancel not in [b["callback_data"] for b in buttons(listing)]
        # Pressing the old button again: refused, still cancelled once.
        mark = fake.mark()
        fake.press(payer, listing.result["message_id"], cancel)
        again = await fake.await_call("answerCallbackQuery", after=mark)
        assert "already cancelled" in str(again.params.get("text"))

        # No renewal requests or reminders for a cancelled subscription; access until the end.
        await life.tick(end - 3 * DAY)
        await life.tick(end - timedelta(seconds=1))
        assert (await life.reload(subscription.id)).status == "cancelled"
        assert fake.member(chat_id, payer.id)["status"] == "member"
        mark = fake.mark()
        await life.tick(end)
        assert (await life.reload(subscription.id)).status == "expired"
        await fake.await_call(
            "unbanChatMember", lambda c: c.params.get("user_id") == payer.id, after=mark, timeout=15
        )
        assert fake.member(chat_id, payer.id)["status"] == "left"
        assert life.reminders_to(payer.id) == []
        events = await life.events(subscription.id)
        assert events.get("subscription.renewal_due") is None
        assert events.get("subscription.expired") == 1


async def test_a_trial_paid_days_later_is_not_late_and_its_renew_card_asks_for_the_renewal(
    settings: Settings,
    tenant: Tenant,
    telegram: tuple[str, FakeTelegram],
    devnet: Devnet,
    clock: ManualClock,
    ids: tuple[int, int],
) -> None:
    from core.checkout import tasks as checkout_tasks

    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake, clock=clock) as bot:
        life = Life(bot, settings, devnet, clock)
        product_id = await life.paid_product(tenant, chat_id)
        checkout = await life.link(tenant, product_id, trial=True)
        payer = fake.user(user_id, "Tess")
        subscription = await life.start_trial(payer, checkout)
        # The worker's checkout.expire job runs as in production, past the session's lifetime.
        clock.advance(hours=2)
        async with transaction(bot.sessionmaker) as db:
            await checkout_tasks.expire(db, clock.now(), context=bot.context)
        clock.set(subscription.current_period_end - DAY)
        await life.pay(checkout.deposit_address, 10)
        sub = await life.reload(subscription.id)
        assert sub.status == "active"
        async with bot.sessionmaker() as db:
            late = await db.scalar(
                select(func.count())
                .select_from(Event)
                .where(Event.session_id == checkout.id, Event.type == "payment.late")
            )
        assert late == 0
        await life.tick(sub.current_period_end - 3 * DAY)
        reminder = await life.reminder(payer.id, 1)
        card = await life.press_renew(payer, reminder, sub.id)
        assert "expired" not in caption(card)


async def test_pay_as_you_go_is_started_from_the_card_and_its_bill_reminded_and_paid(
    settings: Settings,
    tenant: Tenant,
    telegram: tuple[str, FakeTelegram],
    devnet: Devnet,
    clock: ManualClock,
    ids: tuple[int, int],
) -> None:
    from core.orgs.schemas import Principal, Role
    from core.subscriptions import service as subscriptions_service

    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake, clock=clock) as bot:
        life = Life(bot, settings, devnet, clock)
        product_id = await life.paid_product(tenant, chat_id)  # $10 a unit
        options = SubscriptionOptionsIn.model_validate(
            {
                "subscriptionType": "payAsYouGo",
                "frequency": {"value": 30, "unit": "days"},
                "freeCredits": "4",
            }
        )
        checkout = await bot.create_session(
            tenant, product_id=product_id, product_name=None, description=None, price=None,
            options=options,
        )  # fmt: skip
        payer = fake.user(user_id, "Pia")

        # The card offers a start, not a payment: no network to pick, nothing to pay now.
        card = await life.open_card(payer, checkout)
        assert "Pay as you go: <b>$10</b> per unit" in caption(card)
        assert "Free credits: $4" in caption(card)
        assert "Nothing to pay now" in caption(card)
        start = CardAction(session_id=checkout.id, action="trial").pack()
        data = [b.get("callback_data") for b in buttons(card)]
        assert start in data
        assert not any(str(d).startswith("pc:") for d in data)  # no network picker
        mark = fake.mark()
        fake.press(payer, card.result["message_id"], start)
        answer = await fake.await_call("answerCallbackQuery", after=mark)
        assert "billed at the end of each period" in str(answer.params.get("text"))
        subscription = await life.subscription_of(checkout.id)
        assert (subscription.status, subscription.payg) == ("active", True)
        started = await card_edit(fake, "Subscription: active", after=mark)
        data = [b.get("callback_data") for b in buttons(started)]
        assert start not in data  # started once
        assert CardAction(session_id=checkout.id, action="cancel").pack() not in data
        await life.join(payer, chat_id)

        # 1.5 units used: 15 USD less 4 of free credits, billed at the period end.
        principal = Principal(0, tenant.organization_id, tenant.owner_id, Role.OWNER, True)
        async with transaction(bot.sessionmaker) as db:
            await subscriptions_service.increase_units(
                db, principal, subscription.uuid, Decimal("1.5"), policy=life.policy,
                now=clock.now(),
            )  # fmt: skip
        end = subscription.current_period_end
        await life.tick(end)
        billed = await life.reload(subscription.id)
        assert billed.bill_due_at == end + 3 * DAY
        reminder = await life.reminder(payer.id, 1)
        text = str(reminder.params["text"])
        assert "<b>11 USD</b>" in text
        assert (end + 3 * DAY).strftime("%Y-%m-%d %H:%M UTC") in text

        # Its Renew button opens the card of the bill: 11 USDT asked for, due by the deadline.
        card = await life.press_renew(payer, reminder, subscription.id)
        assert "Due: <b>$11</b>" in caption(card)
        mark = fake.mark()
        fake.press(
            payer,
            card.result["message_id"],
            PickChain(session_id=checkout.id, chain_id=CHAIN).pack(),
        )
        chosen = await fake.await_call("editMessageMedia", after=mark)
        media = chosen.params.get("media") or {}
        shown = str(media.get("caption", "")) if isinstance(media, dict) else ""
        assert "To pay the bill, send <code>11</code> USDT" in shown

        # Paid: the bill is closed, active, nothing due.
        clock.set(end + DAY)
        await life.pay(checkout.deposit_address, 11)
        paid = await life.reload(subscription.id)
        assert (paid.status, paid.bill_due_at) == ("active", None)
        assert len(life.reminders_to(payer.id)) == 1
