"""Paid chats end to end: the real aiogram polling loop, event consumer and sender against the
fake Bot API server; trials started from the card, payments on anvil found by the real watcher.

A subscriber gets one invite link that asks to join; the bot approves their join request and
declines a stranger's; when access ends the member is removed with ban + unban (never a lasting
ban), someone who left is only marked, and one failure never stops a batch. A subscription paid
on the web page is bound to a Telegram account with a one-time claim token."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from bot.callbacks import CardAction
from chain.devnet import Devnet, transfer
from core.checkout.schemas import SubscriptionOptionsIn
from core.config import Settings
from core.db import transaction
from core.events import service as events_service
from core.models import CheckoutSession, Product, Subscription, TelegramAccess, TelegramOutbox
from core.subscriptions import service as subscriptions_service
from core.telegram import access, claims
from tests.bot.harness import TOKEN, RunningBot, running_bot
from tests.harness.chains import devnet, drain_async, watcher_settings
from tests.harness.factories import Tenant, make_tenant
from tests.harness.fake_telegram import Call, FakeTelegram, User, fake_telegram

pytestmark = pytest.mark.slow
__all__ = ["devnet"]  # the module-scoped anvil fixture

# Every test uses its own chat and people: outbox rows left by one test never touch another's.
_ids = itertools.count(1)


@pytest.fixture(scope="module")
def settings(database_url: str, devnet: Devnet) -> Settings:
    return watcher_settings(database_url, devnet, telegram_bot_username="chainpay_fake_bot")


@pytest.fixture(scope="module")
def tenant(database_url: str) -> Tenant:
    return make_tenant(database_url, test=True, name="Club & Co")


@pytest.fixture
def telegram() -> Iterator[tuple[str, FakeTelegram]]:
    with fake_telegram(TOKEN) as running:
        yield running


@pytest.fixture
def ids() -> tuple[int, int]:
    """A fresh (paid chat id, first Telegram user id) for one test."""
    n = next(_ids)
    return -1009_000_000_000 - n * 100, 8_800_000 + n * 100


def buttons(call: Call) -> list[dict[str, Any]]:
    markup = call.params.get("reply_markup") or {}
    return [b for row in markup.get("inline_keyboard", []) for b in row]


def to(user_id: int) -> Any:
    return lambda call: call.params.get("chat_id") == user_id


def in_chat(chat_id: int, user_id: int | None = None) -> Any:
    return lambda call: (
        call.params.get("chat_id") == chat_id
        and (user_id is None or call.params.get("user_id") == user_id)
    )


async def paid_product(bot: RunningBot, tenant: Tenant, chat_id: int) -> int:
    """A product bound to a chat the bot administers (invite and ban rights)."""
    bot.fake.add_chat(chat_id, "supergroup", title="VIP")
    bot.fake.set_bot_rights(chat_id)
    async with transaction(bot.sessionmaker) as db:
        product = Product(
            organization_id=tenant.organization_id,
            created_by_user_id=tenant.owner_id,
            test=True,
            name="VIP Club",
            description="Private chat",
            price_usd=Decimal("10"),
            telegram_chat_id=chat_id,
        )
        db.add(product)
        await db.flush()
        return product.id


async def subscription_link(
    bot: RunningBot, tenant: Tenant, product_id: int, *, trial_days: int | None = 7
) -> CheckoutSession:
    options = SubscriptionOptionsIn.model_validate(
        {
            "subscriptionType": "subscription",
            "frequency": {"value": 30, "unit": "days"},
            "trialPeriod": {"value": trial_days, "unit": "days"} if trial_days else None,
        }
    )
    return await bot.create_session(
        tenant, product_id=product_id, product_name=None, description=None, price=None,
        options=options,
    )  # fmt: skip


async def open_card(bot: RunningBot, payer: User, token: str) -> Call:
    mark = bot.fake.mark()
    bot.fake.send_text(payer, f"/start {token}")
    return await bot.fake.await_call("sendPhoto", to(payer.id), after=mark)


async def subscription_of(bot: RunningBot, session_id: int) -> Subscription | None:
    async with bot.sessionmaker() as db:
        found: Subscription | None = await db.scalar(
            select(Subscription).where(Subscription.session_id == session_id)
        )
        return found


async def access_rows(bot: RunningBot, subscription_id: int) -> list[TelegramAccess]:
    async with bot.sessionmaker() as db:
        return list(
            await db.scalars(
                select(TelegramAccess).where(TelegramAccess.subscription_id == subscription_id)
            )
        )


async def start_trial(bot: RunningBot, payer: User, checkout: CheckoutSession) -> Subscription:
    """The payer opens the card and presses "Start free trial"."""
    card = await open_card(bot, payer, checkout.bot_token)
    trial = CardAction(session_id=checkout.id, action="trial").pack()
    assert trial in [b.get("callback_data") for b in buttons(card)]
    mark = bot.fake.mark()
    bot.fake.press(payer, card.result["message_id"], trial)
    answer = await bot.fake.await_call("answerCallbackQuery", after=mark)
    assert "trial has started" in str(answer.params.get("text"))
    subscription = await subscription_of(bot, checkout.id)
    assert subscription is not None
    assert subscription.status == "trial"
    return subscription


async def invite_of(bot: RunningBot, user_id: int, *, after: int = 0) -> str:
    """The invite message sent to `user_id`: its Join button's link."""
    sent = await bot.fake.await_call(
        "sendMessage", lambda c: to(user_id)(c) and "private chat" in c.params["text"],
        timeout=15, after=after,
    )  # fmt: skip
    [join] = buttons(sent)
    return str(join["url"])


async def join(bot: RunningBot, user: User, chat_id: int, link: str) -> Call:
    """The user sends a join request through `link`; the bot's answer to it."""
    mark = bot.fake.mark()
    bot.fake.join_request(user, chat_id, link)

    def decided(call: Call) -> bool:
        return in_chat(chat_id, user.id)(call)

    approve = bot.fake.await_call("approveChatJoinRequest", decided, after=mark)
    decline = bot.fake.await_call("declineChatJoinRequest", decided, after=mark)
    done, pending = await asyncio.wait(
        [asyncio.ensure_future(approve), asyncio.ensure_future(decline)],
        return_when=asyncio.FIRST_COMPLETED,
    )
    for task in pending:
        task.cancel()
    return done.pop().result()


async def member_by_trial(
    bot: RunningBot, tenant: Tenant, product_id: int, chat_id: int, payer: User
) -> Subscription:
    """A payer who started a trial and joined the chat with the invite."""
    checkout = await subscription_link(bot, tenant, product_id)
    subscription = await start_trial(bot, payer, checkout)
    link = await invite_of(bot, payer.id)
    assert (await join(bot, payer, chat_id, link)).method == "approveChatJoinRequest"
    assert bot.fake.member(chat_id, payer.id)["status"] == "member"
    return subscription


async def end_access(bot: RunningBot, subscription_id: int, *, reason: str = "expiry") -> int:
    """What the expiry job does: the subscription expires, its removals are queued."""
    async with transaction(bot.sessionmaker) as db:
        subscription = await db.get(Subscription, subscription_id)
        assert subscription is not None
        subscription.status = "expired"
        return await access.request_removal(db, subscription, now=datetime.now(UTC), reason=reason)


async def removals_done(bot: RunningBot, subscription_ids: list[int], seconds: float = 15) -> None:
    """Wait until the sender has worked off every removal queued for these subscriptions."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        async with bot.sessionmaker() as db:
            open_rows = await db.scalar(
                select(TelegramOutbox.id).where(
                    TelegramOutbox.subscription_id.in_(subscription_ids),
                    TelegramOutbox.kind == "access_revoke",
                    TelegramOutbox.done_at.is_(None),
                )
            )
        if open_rows is None:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"removals still queued: {bot.fake.calls()[-20:]}")
        await asyncio.sleep(0.05)


def assert_not_a_lasting_ban(fake: FakeTelegram, chat_id: int, user_id: int) -> None:
    """Ban + unban: the ban has no until_date (or one at least 30 s ahead), the unban follows
    with only_if_banned, and the person ends up out of the chat but free to come back."""
    [ban] = [c for c in fake.calls("banChatMember") if in_chat(chat_id, user_id)(c)]
    until = ban.params.get("until_date")
    assert until in (None, 0) or until >= ban.at + 30
    unbans = [c for c in fake.calls("unbanChatMember") if in_chat(chat_id, user_id)(c)]
    assert [u.params.get("only_if_banned") for u in unbans] == [True]
    assert unbans[0].seq > ban.seq
    assert fake.member(chat_id, user_id)["status"] == "left"


# ----------------------------------------------------------------------------- invites


async def test_trial_subscriber_gets_one_join_request_link_and_only_they_are_approved(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], ids: tuple[int, int]
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake) as bot:
        product_id = await paid_product(bot, tenant, chat_id)
        checkout = await subscription_link(bot, tenant, product_id)
        payer, stranger = fake.user(user_id, "Ann"), fake.user(user_id + 1, "Eve")
        subscription = await start_trial(bot, payer, checkout)

        link = await invite_of(bot, payer.id)
        created = fake.last("createChatInviteLink")
        assert created.params["chat_id"] == chat_id
        assert created.params["creates_join_request"] is True
        assert "member_limit" not in created.params
        assert created.result["invite_link"] == link

        approved = await join(bot, payer, chat_id, link)
        assert approved.method == "approveChatJoinRequest"
        assert fake.member(chat_id, payer.id)["status"] == "member"
        declined = await join(bot, stranger, chat_id, link)  # the link, forwarded
        assert declined.method == "declineChatJoinRequest"
        assert fake.member(chat_id, stranger.id)["status"] == "left"

        [row] = await access_rows(bot, subscription.id)
        assert (row.status, row.telegram_user_id, row.invite_link) == ("member", payer.id, link)
        # One invite for one start: nothing else arrives once the consumer has caught up.
        await asyncio.sleep(1.5)
        assert len([c for c in fake.calls("createChatInviteLink") if in_chat(chat_id)(c)]) == 1
        invites = [
            c for c in fake.calls("sendMessage")
            if to(payer.id)(c) and "private chat" in c.params["text"]
        ]  # fmt: skip
        assert len(invites) == 1


async def test_paying_on_anvil_sends_the_invite_and_approves_the_payer(
    settings: Settings,
    tenant: Tenant,
    telegram: tuple[str, FakeTelegram],
    ids: tuple[int, int],
    devnet: Devnet,
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake) as bot:
        product_id = await paid_product(bot, tenant, chat_id)
        checkout = await subscription_link(bot, tenant, product_id, trial_days=None)
        payer = fake.user(user_id, "Bob")
        await open_card(bot, payer, checkout.bot_token)

        node = devnet.node(31337)
        transfer(node.rpc_url, devnet.tokens[31337][0], checkout.deposit_address, 10 * 10**6)
        node.mine(3)
        await drain_async(settings)
        link = await invite_of(bot, payer.id)
        subscription = await subscription_of(bot, checkout.id)
        assert subscription is not None
        assert (subscription.status, subscription.telegram_user_id) == ("active", payer.id)
        assert fake.last("createChatInviteLink").params["creates_join_request"] is True

        assert (await join(bot, payer, chat_id, link)).method == "approveChatJoinRequest"
        stranger = fake.user(user_id + 1, "Eve")
        assert (await join(bot, stranger, chat_id, link)).method == "declineChatJoinRequest"


async def test_paying_after_the_trial_keeps_the_member_without_a_second_invite(
    settings: Settings,
    tenant: Tenant,
    telegram: tuple[str, FakeTelegram],
    ids: tuple[int, int],
    devnet: Devnet,
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake) as bot:
        product_id = await paid_product(bot, tenant, chat_id)
        payer = fake.user(user_id, "Pat")
        subscription = await member_by_trial(bot, tenant, product_id, chat_id, payer)
        checkout = await bot.reload(subscription.session_id)

        mark = fake.mark()
        node = devnet.node(31337)
        transfer(node.rpc_url, devnet.tokens[31337][0], checkout.deposit_address, 10 * 10**6)
        node.mine(3)
        await drain_async(settings)
        # subscription.renewed reaches the bot, which finds the payer in the chat already.
        await fake.await_call("getChatMember", in_chat(chat_id, payer.id), timeout=15, after=mark)
        await asyncio.sleep(1)
        paid = await subscription_of(bot, checkout.id)
        assert paid is not None
        assert paid.status == "active"
        assert not [
            c for c in fake.calls("createChatInviteLink") if c.seq >= mark and in_chat(chat_id)(c)
        ]
        assert not [c for c in fake.calls("sendMessage") if c.seq >= mark and to(payer.id)(c)
                    and "private chat" in c.params["text"]]  # fmt: skip
        [row] = await access_rows(bot, subscription.id)
        assert row.status == "member"


async def test_where_join_requests_fail_the_invite_admits_one_member_and_expires(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], ids: tuple[int, int]
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake) as bot:
        product_id = await paid_product(bot, tenant, chat_id)
        checkout = await subscription_link(bot, tenant, product_id)
        fake.fail_next(
            "createChatInviteLink", 400, description="Bad Request: CHAT_JOIN_REQUESTS_DISABLED"
        )
        payer = fake.user(user_id, "Cid")
        subscription = await start_trial(bot, payer, checkout)
        link = await invite_of(bot, payer.id)

        refused, fallback = [c for c in fake.calls("createChatInviteLink") if in_chat(chat_id)(c)]
        assert refused.status == 400
        assert refused.params["creates_join_request"] is True
        assert fallback.status == 200
        assert fallback.result["invite_link"] == link
        assert fallback.params["member_limit"] == 1
        assert "creates_join_request" not in fallback.params
        expires = fallback.params["expire_date"]
        assert fallback.at + 60 < expires <= fallback.at + 2 * 86_400
        [row] = await access_rows(bot, subscription.id)
        assert (row.status, row.invite_link) == ("invited", link)


async def test_join_requests_in_a_chat_that_sells_nothing_are_left_to_its_admins(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], ids: tuple[int, int]
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake) as bot:
        await paid_product(bot, tenant, chat_id)
        other_chat = chat_id - 1  # the bot is an admin there too, but no product is bound
        fake.add_chat(other_chat, "supergroup", title="Friends")
        fake.set_bot_rights(other_chat)
        mark = fake.mark()
        fake.join_request(fake.user(user_id, "Ros"), other_chat)
        fake.join_request(fake.user(user_id + 1, "Sam"), chat_id)  # the paid chat: declined
        await fake.await_call("declineChatJoinRequest", in_chat(chat_id), after=mark)
        await asyncio.sleep(0.5)
        decided = fake.calls("approveChatJoinRequest") + fake.calls("declineChatJoinRequest")
        assert not [c for c in decided if in_chat(other_chat)(c)]
        assert (other_chat, user_id) in fake.pending_join_requests


# ---------------------------------------------------------------------- one trial each


async def test_a_second_trial_of_the_same_product_is_refused_with_a_friendly_answer(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], ids: tuple[int, int]
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake) as bot:
        product_id = await paid_product(bot, tenant, chat_id)
        payer = fake.user(user_id, "Dee")
        await start_trial(bot, payer, await subscription_link(bot, tenant, product_id))
        await invite_of(bot, payer.id)

        second = await subscription_link(bot, tenant, product_id)
        card = await open_card(bot, payer, second.bot_token)
        trial = CardAction(session_id=second.id, action="trial").pack()
        assert trial not in [b.get("callback_data") for b in buttons(card)]
        assert "Start free trial" not in str(card.params.get("reply_markup"))
        # Pressed anyway (an old button, a forged callback): refused, nothing started.
        mark = fake.mark()
        fake.press(payer, card.result["message_id"], trial)
        answer = await fake.await_call("answerCallbackQuery", after=mark)
        assert "already had a free trial" in str(answer.params.get("text"))
        assert answer.params.get("show_alert") is True
        assert await subscription_of(bot, second.id) is None
        # Another person's first trial of the same product is still offered.
        other = fake.user(user_id + 1, "Fay")
        card = await open_card(
            bot, other, (await subscription_link(bot, tenant, product_id)).bot_token
        )
        assert "Start free trial" in str(card.params.get("reply_markup"))


# ------------------------------------------------------------------------------ removal


async def test_expiry_removes_the_member_with_ban_then_unban(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], ids: tuple[int, int]
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake) as bot:
        product_id = await paid_product(bot, tenant, chat_id)
        payer = fake.user(user_id, "Gus")
        subscription = await member_by_trial(bot, tenant, product_id, chat_id, payer)

        assert await end_access(bot, subscription.id) == 1
        await removals_done(bot, [subscription.id])
        assert_not_a_lasting_ban(fake, chat_id, payer.id)
        [row] = await access_rows(bot, subscription.id)
        assert row.status == "removed"
        assert row.removed_at is not None
        # Asked again (the expiry job runs twice): nothing more to do.
        assert await end_access(bot, subscription.id, reason="again") == 0
        # Their old link lets them in no more.
        link = str(row.invite_link)
        assert (await join(bot, payer, chat_id, link)).method == "declineChatJoinRequest"


async def test_a_subscription_expired_event_removes_the_member(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], ids: tuple[int, int]
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake) as bot:
        product_id = await paid_product(bot, tenant, chat_id)
        payer = fake.user(user_id, "Hal")
        subscription = await member_by_trial(bot, tenant, product_id, chat_id, payer)

        mark = fake.mark()
        async with transaction(bot.sessionmaker) as db:
            row = await db.get(Subscription, subscription.id)
            checkout = await db.get(CheckoutSession, subscription.session_id)
            assert row is not None
            assert checkout is not None
            row.status = "expired"
            await events_service.emit(
                db,
                organization_id=row.organization_id,
                test=row.test,
                type="subscription.expired",
                data=subscriptions_service.event_data(row, checkout, previous="trial"),
                session_id=checkout.id,
                subscription_id=row.id,
            )
        await fake.await_call("unbanChatMember", in_chat(chat_id, payer.id), after=mark)
        await removals_done(bot, [subscription.id])
        assert_not_a_lasting_ban(fake, chat_id, payer.id)
        [access_row] = await access_rows(bot, subscription.id)
        assert access_row.status == "removed"


async def test_a_member_who_already_left_is_only_marked_removed(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], ids: tuple[int, int]
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake) as bot:
        product_id = await paid_product(bot, tenant, chat_id)
        payer = fake.user(user_id, "Ivy")
        subscription = await member_by_trial(bot, tenant, product_id, chat_id, payer)
        fake.set_member(chat_id, payer.id, "left")

        await end_access(bot, subscription.id)
        await removals_done(bot, [subscription.id])
        assert fake.calls("getChatMember")  # the bot looked before acting
        assert not [c for c in fake.calls("banChatMember") if in_chat(chat_id)(c)]
        assert not [c for c in fake.calls("unbanChatMember") if in_chat(chat_id)(c)]
        [row] = await access_rows(bot, subscription.id)
        assert row.status == "removed"


async def test_one_failed_removal_does_not_stop_the_batch_and_is_retried(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], ids: tuple[int, int]
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake) as bot:
        product_id = await paid_product(bot, tenant, chat_id)
        payers = [fake.user(user_id + n, f"Member {n}") for n in range(3)]
        subscriptions = [await member_by_trial(bot, tenant, product_id, chat_id, p) for p in payers]
        fake.fail_next("banChatMember", 400, description="Bad Request: injected failure")
        mark = fake.mark()
        async with transaction(bot.sessionmaker) as db:  # one expiry run, three removals
            for subscription in subscriptions:
                row = await db.get(Subscription, subscription.id)
                assert row is not None
                row.status = "expired"
                await access.request_removal(db, row, now=datetime.now(UTC), reason="batch")

        bans = await fake.await_count("banChatMember", 3, in_chat(chat_id), after=mark)
        assert [b.status for b in bans] == [400, 200, 200]
        failed = bans[0].params["user_id"]
        others = [p.id for p in payers if p.id != failed]
        assert {b.params["user_id"] for b in bans[1:]} == set(others)
        for user in others:
            await fake.await_call("unbanChatMember", in_chat(chat_id, user), after=mark)
            assert fake.member(chat_id, user)["status"] == "left"
        assert fake.member(chat_id, failed)["status"] == "member"  # not yet

        # The failed one comes back after its backoff and is removed then.
        await fake.await_call("unbanChatMember", in_chat(chat_id, failed), timeout=20, after=mark)
        await removals_done(bot, [s.id for s in subscriptions])
        assert fake.member(chat_id, failed)["status"] == "left"
        for subscription in subscriptions:
            [access_row] = await access_rows(bot, subscription.id)
            assert access_row.status == "removed"


async def test_a_ban_whose_unban_failed_is_lifted_on_the_retry(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], ids: tuple[int, int]
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake) as bot:
        product_id = await paid_product(bot, tenant, chat_id)
        payer = fake.user(user_id, "Jo")
        subscription = await member_by_trial(bot, tenant, product_id, chat_id, payer)
        fake.fail_next("unbanChatMember", 400, description="Bad Request: injected failure")

        mark = fake.mark()
        await end_access(bot, subscription.id)
        await fake.await_call("unbanChatMember", in_chat(chat_id, payer.id), after=mark)
        assert fake.member(chat_id, payer.id)["status"] == "kicked"  # banned for now
        await removals_done(bot, [subscription.id], seconds=20)
        assert fake.member(chat_id, payer.id)["status"] == "left"  # free to come back
        [row] = await access_rows(bot, subscription.id)
        assert row.status == "removed"


async def test_a_subscription_renewed_before_the_removal_runs_keeps_its_member(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], ids: tuple[int, int]
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake) as bot:
        product_id = await paid_product(bot, tenant, chat_id)
        payer = fake.user(user_id, "Kim")
        subscription = await member_by_trial(bot, tenant, product_id, chat_id, payer)

        now = datetime.now(UTC)
        async with transaction(bot.sessionmaker) as db:
            row = await db.get(Subscription, subscription.id)
            assert row is not None
            row.status = "expired"
            assert await access.request_removal(db, row, now=now, reason="late") == 1
            # The payment arrives before the sender gets to it.
            row.status = "active"
            row.current_period_end = now + timedelta(days=30)
            await db.flush()
            assert await access.removal_of(db, row.id, chat_id, now=now) is None
        await removals_done(bot, [subscription.id])
        assert not [c for c in fake.calls("banChatMember") if in_chat(chat_id)(c)]
        assert fake.member(chat_id, payer.id)["status"] == "member"
        [access_row] = await access_rows(bot, subscription.id)
        assert access_row.status == "member"


# ------------------------------------------------------------------------------- claims


async def paid_on_the_web(
    bot: RunningBot, settings: Settings, tenant: Tenant, product_id: int, devnet: Devnet
) -> Subscription:
    """A subscription paid without Telegram: the session was never opened in the bot."""
    checkout = await subscription_link(bot, tenant, product_id, trial_days=None)
    node = devnet.node(31337)
    transfer(node.rpc_url, devnet.tokens[31337][0], checkout.deposit_address, 10 * 10**6)
    node.mine(3)
    await drain_async(settings)
    subscription = await subscription_of(bot, checkout.id)
    assert subscription is not None
    assert subscription.telegram_user_id is None
    return subscription


async def claim_token(bot: RunningBot, subscription_id: int) -> str:
    async with transaction(bot.sessionmaker) as db:
        subscription = await db.get(Subscription, subscription_id)
        assert subscription is not None
        return await claims.create(db, subscription, now=datetime.now(UTC))


async def reply_to(bot: RunningBot, user: User, text: str) -> str:
    """The bot's answer to `text` (not an invite the sender happens to send meanwhile)."""
    mark = bot.fake.mark()
    bot.fake.send_text(user, text)

    def answer(call: Call) -> bool:
        return to(user.id)(call) and "private chat" not in call.params["text"]

    return str((await bot.fake.await_call("sendMessage", answer, after=mark)).params["text"])


async def test_a_claim_binds_a_web_subscription_and_sends_the_invite_once(
    settings: Settings,
    tenant: Tenant,
    telegram: tuple[str, FakeTelegram],
    ids: tuple[int, int],
    devnet: Devnet,
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake) as bot:
        product_id = await paid_product(bot, tenant, chat_id)
        subscription = await paid_on_the_web(bot, settings, tenant, product_id, devnet)
        token = await claim_token(bot, subscription.id)
        assert len(f"claim-{token}") <= 64

        payer, other = fake.user(user_id, "Lea"), fake.user(user_id + 1, "Max")
        mark = fake.mark()
        assert "linked to this Telegram account" in await reply_to(
            bot, payer, f"/start claim-{token}"
        )
        link = await invite_of(bot, payer.id, after=mark)
        bound = await subscription_of(bot, subscription.session_id)
        assert bound is not None
        assert bound.telegram_user_id == payer.id
        assert (await bot.reload(subscription.session_id)).telegram_user_id == payer.id
        assert (await join(bot, payer, chat_id, link)).method == "approveChatJoinRequest"

        # Used once: a second use, by anyone, and an unknown token get the same refusal.
        for user, text in [
            (payer, f"/start claim-{token}"),
            (other, f"/start claim-{token}"),
            (other, "/start claim-" + "x" * 32),
        ]:
            assert "invalid, used or expired" in await reply_to(bot, user, text)
        assert (await subscription_of(bot, subscription.session_id)).telegram_user_id == payer.id  # type: ignore[union-attr]
        await asyncio.sleep(1)
        assert len([c for c in fake.calls("createChatInviteLink") if in_chat(chat_id)(c)]) == 1


async def test_a_claim_for_a_subscription_bound_to_another_account_is_refused(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], ids: tuple[int, int]
) -> None:
    base, fake = telegram
    chat_id, user_id = ids
    async with running_bot(settings, base, fake) as bot:
        product_id = await paid_product(bot, tenant, chat_id)
        owner, other = fake.user(user_id, "Ned"), fake.user(user_id + 1, "Oz")
        subscription = await start_trial(
            bot, owner, await subscription_link(bot, tenant, product_id)
        )
        token = await claim_token(bot, subscription.id)

        assert "invalid, used or expired" in await reply_to(bot, other, f"/start claim-{token}")
        still = await subscription_of(bot, subscription.session_id)
        assert still is not None
        assert still.telegram_user_id == owner.id
        await asyncio.sleep(1)
        assert not [c for c in fake.calls("sendMessage") if to(other.id)(c) and buttons(c)]
        # The refusal did not use the token up: its rightful account can still open it.
        assert "linked to this Telegram account" in await reply_to(
            bot, owner, f"/start claim-{token}"
        )
