"""A merchant in Telegram, end to end: linking with a one-time code, invoices and subscription
links made in the bot, paid on anvil, the merchant told once; paid-chat binding; notifications
reaching only the linked organization and mode. The real aiogram polling loop, event consumer
and sender run against the fake Bot API server."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from bot.callbacks import CardAction, InvoicesPage, PickChain, SubLinkPeriod
from chain.devnet import Devnet, transfer
from core.catalog import service as catalog_service
from core.catalog.schemas import ProductCreate
from core.checkout import service as checkout_service
from core.checkout.schemas import SubscriptionOptionsIn
from core.config import Settings
from core.db import transaction
from core.events import service as events_service
from core.models import CheckoutSession, Product
from core.orgs import service as orgs_service
from core.orgs.schemas import Principal, Role, UserCreate
from core.telegram import links
from core.webhooks import deliveries as deliveries_service
from core.webhooks import endpoints as endpoints_service
from core.webhooks.crypto import SecretBox
from core.webhooks.schemas import EndpointCreate
from core.webhooks.sender import WebhookSender
from tests.bot.harness import TOKEN, RunningBot, running_bot
from tests.harness.chains import devnet, drain_async, watcher_settings
from tests.harness.factories import Api, Tenant, make_tenant, unique_email
from tests.harness.fake_telegram import Call, FakeTelegram, User, fake_telegram
from tests.harness.receiver import Receiver, running_receiver

pytestmark = pytest.mark.slow
__all__ = ["devnet"]  # the module-scoped anvil fixture

BOT_USERNAME = "chainpay_fake_bot"


@pytest.fixture(scope="module")
def bot_settings(database_url: str, devnet: Devnet) -> Settings:
    return watcher_settings(database_url, devnet, telegram_bot_username=BOT_USERNAME)


@pytest.fixture
def shop(database_url: str) -> Tenant:
    """A fresh organization per test (its invoices, products and links are its own)."""
    return make_tenant(database_url, test=True, name="Shop A")


@pytest.fixture
def other_shop(database_url: str) -> Tenant:
    return make_tenant(database_url, test=True, name="Shop B")


@pytest.fixture
def telegram() -> Iterator[tuple[str, FakeTelegram]]:
    with fake_telegram(TOKEN, username=BOT_USERNAME) as running:
        yield running


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


# --- helpers ---------------------------------------------------------------------------------


def principal(tenant: Tenant, *, test: bool = True) -> Principal:
    return Principal(0, tenant.organization_id, tenant.owner_id, Role.OWNER, test)


async def new_code(bot: RunningBot, tenant: Tenant, *, test: bool = True) -> str:
    async with transaction(bot.sessionmaker) as db:
        made = await links.create_link_code(
            db,
            organization_id=tenant.organization_id,
            user_id=tenant.owner_id,
            test=test,
            now=datetime.now(UTC),
        )
    return made.code


async def say(bot: RunningBot, user: User, text: str) -> Call:
    """The user sends `text`; the bot's next message to them."""
    mark = bot.fake.mark()
    bot.fake.send_text(user, text)
    return await bot.fake.await_call(
        "sendMessage", lambda c: c.params["chat_id"] == user.id, after=mark
    )


async def press(bot: RunningBot, user: User, message: Call, data: str) -> Call:
    """The user presses a button of a message the bot sent; the bot's edit of it."""
    mark = bot.fake.mark()
    message_id = message.result["message_id"]
    bot.fake.press(user, message_id, data)
    return await bot.fake.await_call(
        "editMessageText", lambda c: c.params["message_id"] == message_id, after=mark
    )


async def link(bot: RunningBot, user: User, tenant: Tenant, *, test: bool = True) -> None:
    answer = await say(bot, user, f"/link {await new_code(bot, tenant, test=test)}")
    assert "Linked" in answer.params["text"], answer


def text(call: Call) -> str:
    return str(call.params["text"])


def buttons(call: Call) -> list[dict[str, Any]]:
    markup = call.params.get("reply_markup") or {}
    return [b for row in markup.get("inline_keyboard", []) for b in row]


def sent_to(fake: FakeTelegram, chat_id: int, containing: str, *, after: int = 0) -> list[Call]:
    """Messages the bot sent to `chat_id` containing `containing` (since call `after`)."""
    return [
        c
        for c in fake.calls("sendMessage")
        if c.seq >= after
        and c.params.get("chat_id") == chat_id
        and containing in str(c.params.get("text"))
    ]


async def notified(
    fake: FakeTelegram, chat_id: int, containing: str, *, after: int = 0, seconds: float = 15
) -> Call:
    """The first message to `chat_id` containing `containing` (waiting for it)."""
    return await fake.await_call(
        "sendMessage",
        lambda c: c.params["chat_id"] == chat_id and containing in str(c.params["text"]),
        timeout=seconds,
        after=after,
    )


async def sessions_of(bot: RunningBot, tenant: Tenant) -> list[CheckoutSession]:
    async with bot.sessionmaker() as db:
        found = await db.scalars(
            select(CheckoutSession)
            .where(CheckoutSession.organization_id == tenant.organization_id)
            .order_by(CheckoutSession.id)
        )
        return list(found)


async def new_product(bot: RunningBot, tenant: Tenant, name: str = "Club") -> Product:
    async with transaction(bot.sessionmaker) as db:
        return await catalog_service.create_product(
            db,
            principal(tenant),
            ProductCreate(name=name, description="Members' channel", price=Decimal("5")),
        )


async def chat_of(bot: RunningBot, product_id: int) -> int | None:
    async with bot.sessionmaker() as db:
        product = await db.get(Product, product_id)
        assert product is not None
        return product.telegram_chat_id


START_LINK = re.compile(rf"https://t\.me/{BOT_USERNAME}\?start=([A-Za-z0-9_-]+)")


# --- linking ---------------------------------------------------------------------------------


async def test_a_code_from_the_api_links_once_and_a_test_code_makes_test_invoices(
    bot_settings: Settings, shop: Tenant, base_url: str, telegram: tuple[str, FakeTelegram]
) -> None:
    response = Api(base_url, shop.key).post("/user/telegram-link")  # the shop's key is a test key
    assert response.status_code == 201, response.text
    code = response.json()["code"]
    base, fake = telegram
    async with running_bot(bot_settings, base, fake) as bot:
        merchant, stranger = fake.user(9101, "Merchant"), fake.user(9102, "Stranger")
        linked = await say(bot, merchant, f"/link {code.lower()}")
        assert "Linked in test mode" in text(linked)

        again = await say(bot, stranger, f"/link {code}")
        assert "invalid, used or expired" in text(again)
        refused = await say(bot, stranger, "/invoice 5 Tea")
        assert "/link" in text(refused)

        await say(bot, merchant, "/invoice 5 Tea")
        [invoice] = await sessions_of(bot, shop)
        assert invoice.test is True
        assert invoice.created_by_user_id == shop.owner_id


# --- invoices --------------------------------------------------------------------------------


async def test_invoice_answers_with_the_bot_link_and_the_web_link(
    bot_settings: Settings, shop: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    async with running_bot(bot_settings, base, fake) as bot:
        merchant = fake.user(9201, "Merchant")
        await link(bot, merchant, shop)
        answer = await say(bot, merchant, "/invoice 19.99 Ebook PDF")

        [invoice] = await sessions_of(bot, shop)
        assert (invoice.source, invoice.test, invoice.kind) == ("bot", True, "payment")
        assert invoice.created_by_user_id == shop.owner_id
        assert invoice.price_usd == Decimal("19.99")
        assert invoice.product_name == "Ebook PDF"
        assert f"https://t.me/{BOT_USERNAME}?start={invoice.bot_token}" in text(answer)
        assert bot.context.link(invoice.uuid) in text(answer)
        assert "$19.99" in text(answer)
        assert "Ebook PDF" in text(answer)


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("/invoice abc Ebook", "positive number"),
        ("/invoice -1 Ebook", "positive number"),
        ("/invoice 0 Ebook", "positive number"),
        ("/invoice 1.1234567 Ebook", "at most 6 decimals"),
        ("/invoice 10", "Say what the invoice is for"),
        ("/invoice", "Usage: /invoice"),
    ],
)
async def test_a_bad_invoice_is_refused_naming_the_problem_and_creates_nothing(
    bot_settings: Settings,
    shop: Tenant,
    telegram: tuple[str, FakeTelegram],
    command: str,
    problem: str,
) -> None:
    base, fake = telegram
    async with running_bot(bot_settings, base, fake) as bot:
        merchant = fake.user(9301, "Merchant")
        await link(bot, merchant, shop)
        answer = await say(bot, merchant, command)
        assert problem in text(answer)
        assert await sessions_of(bot, shop) == []


async def test_an_unlinked_user_is_told_to_link_first(
    bot_settings: Settings, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    async with running_bot(bot_settings, base, fake) as bot:
        user = fake.user(9401, "Nobody")
        for command in ("/invoice 5 Tea", "/invoices", "/sublink", "/bind -1001 1"):
            answer = await say(bot, user, command)
            assert "Link your chainpay account first: /link" in text(answer), command


async def test_a_paid_invoice_notifies_the_merchant_once_even_after_a_restart(
    bot_settings: Settings, shop: Tenant, telegram: tuple[str, FakeTelegram], devnet: Devnet
) -> None:
    base, fake = telegram
    merchant, payer = fake.user(9501, "Merchant"), fake.user(9502, "Payer")
    async with running_bot(bot_settings, base, fake) as bot:
        await link(bot, merchant, shop)
        answer = await say(bot, merchant, "/invoice 19.99 Ebook PDF")
        found = START_LINK.search(text(answer))
        assert found is not None, text(answer)

        mark = fake.mark()
        fake.send_text(payer, f"/start {found.group(1)}")
        card = await fake.await_call("sendPhoto", after=mark)
        [invoice] = await sessions_of(bot, shop)
        mark = fake.mark()
        fake.press(
            payer,
            card.result["message_id"],
            PickChain(session_id=invoice.id, chain_id=31337).pack(),
        )
        await fake.await_call("editMessageMedia", after=mark)

        node = devnet.node(31337)
        mark = fake.mark()
        transfer(node.rpc_url, devnet.tokens[31337][0], invoice.deposit_address, 19_990_000)
        node.mine(3)
        await drain_async(bot_settings)
        paid = await notified(fake, merchant.id, "Invoice paid", after=mark)
        assert "Ebook PDF" in text(paid)
        assert "19.99" in text(paid)
        assert (await bot.reload(invoice.id)).status == "completed"
        await asyncio.sleep(3)  # the consumer and sender poll again: nothing more
        assert len(sent_to(fake, merchant.id, "Invoice paid")) == 1
        assert sent_to(fake, payer.id, "Invoice paid") == []

    async with running_bot(bot_settings, base, fake):
        await asyncio.sleep(3)
        assert len(sent_to(fake, merchant.id, "Invoice paid")) == 1


async def test_invoices_lists_them_with_status_five_per_page(
    bot_settings: Settings, shop: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    async with running_bot(bot_settings, base, fake) as bot:
        merchant = fake.user(9601, "Merchant")
        await link(bot, merchant, shop)
        empty = await say(bot, merchant, "/invoices")
        assert "No invoices yet" in text(empty)
        for n in range(1, 8):
            await say(bot, merchant, f"/invoice {n} Item {n}")
        made = await sessions_of(bot, shop)
        async with transaction(bot.sessionmaker) as db:
            await checkout_service.cancel_session(
                db, principal(shop), made[-1].uuid, now=datetime.now(UTC)
            )
        await bot.create_session(shop, product_name="Made by the API")  # not a bot invoice

        first = await say(bot, merchant, "/invoices")
        lines = text(first).splitlines()
        assert "(7)" in lines[0]
        assert [line.split()[0] for line in lines[1:]] == [f"#{s.id}" for s in made[::-1][:5]]
        assert "Item 7" in lines[1]
        assert "Cancelled" in lines[1]
        assert "Item 6" in lines[2]
        assert "Waiting for payment" in lines[2]
        assert [b["text"] for b in buttons(first)] == ["›"]

        second = await press(bot, merchant, first, InvoicesPage(page=1).pack())
        lines = text(second).splitlines()
        assert [line.split()[0] for line in lines[1:]] == [f"#{s.id}" for s in made[1::-1]]
        assert [b["text"] for b in buttons(second)] == ["‹"]
        assert "Made by the API" not in text(second)

        back = await press(bot, merchant, first, InvoicesPage(page=0).pack())
        assert text(back) == text(first)


# --- subscription links ----------------------------------------------------------------------


async def test_sublink_picks_a_product_then_a_period_and_gives_a_subscription_link(
    bot_settings: Settings, shop: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    async with running_bot(bot_settings, base, fake) as bot:
        merchant = fake.user(9701, "Merchant")
        await link(bot, merchant, shop)
        none = await say(bot, merchant, "/sublink")
        assert "no active products" in text(none)

        product = await new_product(bot, shop, "Club <VIP>")
        pick = await say(bot, merchant, "/sublink")
        [choice] = buttons(pick)
        assert "Club <VIP>" in choice["text"]
        assert "$5" in choice["text"]
        periods = await press(bot, merchant, pick, choice["callback_data"])
        assert "How often" in text(periods)
        by_text = {b["text"]: b["callback_data"] for b in buttons(periods)}
        assert by_text["every 30 d"] == SubLinkPeriod(product_id=product.id, days=30).pack()

        done = await press(bot, merchant, periods, by_text["every 30 d"])
        [created] = await sessions_of(bot, shop)
        assert (created.kind, created.source, created.test) == ("subscription", "bot", True)
        assert created.product_id == product.id
        assert created.frequency_seconds == 30 * 86400
        assert f"https://t.me/{BOT_USERNAME}?start={created.bot_token}" in text(done)
        assert bot.context.link(created.uuid) in text(done)


async def test_sublink_buttons_of_another_organizations_product_make_nothing(
    bot_settings: Settings, shop: Tenant, other_shop: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    async with running_bot(bot_settings, base, fake) as bot:
        merchant = fake.user(9751, "Merchant")
        await link(bot, merchant, shop)
        foreign = await new_product(bot, other_shop, "Not yours")
        await new_product(bot, shop)
        pick = await say(bot, merchant, "/sublink")
        mark = fake.mark()
        fake.press(
            merchant,
            pick.result["message_id"],
            SubLinkPeriod(product_id=foreign.id, days=30).pack(),
        )
        answer = await fake.await_call("answerCallbackQuery", after=mark)
        assert "no product with that id" in str(answer.params.get("text"))
        assert await sessions_of(bot, shop) == []
        assert await sessions_of(bot, other_shop) == []


# --- notifications ---------------------------------------------------------------------------


async def test_a_started_trial_notifies_the_merchant_once(
    bot_settings: Settings, shop: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    merchant, payer = fake.user(9801, "Merchant"), fake.user(9802, "Payer")
    async with running_bot(bot_settings, base, fake) as bot:
        await link(bot, merchant, shop)
        product = await new_product(bot, shop, "Club")
        options = SubscriptionOptionsIn.model_validate(
            {
                "subscriptionType": "subscription",
                "frequency": {"value": 30, "unit": "days"},
                "trialPeriod": {"value": 7, "unit": "days"},
            }
        )
        checkout = await bot.create_session(shop, product_id=product.id, options=options)
        mark = fake.mark()
        fake.send_text(payer, f"/start {checkout.bot_token}")
        card = await fake.await_call("sendPhoto", after=mark)
        trial = CardAction(session_id=checkout.id, action="trial").pack()
        assert trial in [b.get("callback_data") for b in buttons(card)]

        mark = fake.mark()
        fake.press(payer, card.result["message_id"], trial)
        started = await notified(fake, merchant.id, "New subscription", after=mark)
        assert "<b>Club</b>" in text(started)
        assert "(free trial)" in text(started)
        assert re.search(r"until \d{4}-\d\d-\d\d \d\d:\d\d UTC\.$", text(started)), text(started)
        await asyncio.sleep(3)
        assert len(sent_to(fake, merchant.id, "New subscription", after=mark)) == 1
        assert sent_to(fake, payer.id, "New subscription") == []


async def test_a_disabled_webhook_endpoint_notifies_the_merchant_with_url_and_reason(
    bot_settings: Settings, shop: Tenant, telegram: tuple[str, FakeTelegram], receiver: Receiver
) -> None:
    base, fake = telegram
    merchant = fake.user(9901, "Merchant")
    url = receiver.url("/gone?shop=a&b=1")
    receiver.answer("/gone", 410)
    async with running_bot(bot_settings, base, fake) as bot:
        await link(bot, merchant, shop)
        box = SecretBox.from_settings(bot_settings)
        async with transaction(bot.sessionmaker) as db:
            endpoint, _ = await endpoints_service.create_endpoint(
                db, principal(shop), EndpointCreate(url=url), box, allow_private=True
            )
            await deliveries_service.send_test(db, principal(shop), endpoint.uuid)
        mark = fake.mark()
        sender = WebhookSender(bot.sessionmaker, bot_settings)
        try:
            await sender.run_once()
        finally:
            await sender.close()
        assert len(receiver.at("/gone")) == 1

        disabled = await notified(fake, merchant.id, "was disabled", after=mark)
        message = fake.message(merchant.id, disabled.result["message_id"])
        assert endpoint.url in message["text"]  # shown as sent, the HTML escaped and unescaped
        assert message["text"].endswith("410 Gone")
        await asyncio.sleep(2)
        assert len(sent_to(fake, merchant.id, "was disabled", after=mark)) == 1


async def test_notifications_reach_only_the_organization_and_mode_of_the_link(
    bot_settings: Settings, shop: Tenant, other_shop: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    a_test, a_live, b_test = (fake.user(9951), fake.user(9952), fake.user(9953))
    async with running_bot(bot_settings, base, fake) as bot:
        await link(bot, a_test, shop, test=True)
        await link(bot, a_live, shop, test=False)
        await link(bot, b_test, other_shop, test=True)
        mark = fake.mark()
        async with transaction(bot.sessionmaker) as db:
            for tenant, name in ((shop, "a"), (other_shop, "b")):
                for test in (True, False):
                    mode = "test" if test else "live"
                    await events_service.emit(
                        db,
                        organization_id=tenant.organization_id,
                        test=test,
                        type="webhook.endpoint_disabled",
                        data={
                            "endpointUUID": f"{name}-{mode}",
                            "url": f"https://{name}-{mode}.shop.example/hook",
                            "reason": "410 Gone",
                        },
                    )
        await notified(fake, a_test.id, "a-test.shop", after=mark)
        await notified(fake, a_live.id, "a-live.shop", after=mark)
        await notified(fake, b_test.id, "b-test.shop", after=mark)
        await asyncio.sleep(2)
        got = {
            user.id: sorted(
                re.findall(r"https://(\w-\w+)\.", str(c.params["text"]))[0]
                for c in fake.calls("sendMessage")
                if c.seq >= mark and c.params["chat_id"] == user.id
            )
            for user in (a_test, a_live, b_test)
        }
        assert got == {a_test.id: ["a-test"], a_live.id: ["a-live"], b_test.id: ["b-test"]}


# --- paid chats ------------------------------------------------------------------------------


async def test_bind_names_a_missing_right_and_binds_only_with_both(
    bot_settings: Settings, shop: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    chat_id = -1009000000001
    fake.add_chat(chat_id, "channel", "Club channel")
    async with running_bot(bot_settings, base, fake) as bot:
        merchant = fake.user(9981, "Merchant")
        await link(bot, merchant, shop)
        product = await new_product(bot, shop)

        fake.set_bot_rights(chat_id, can_invite_users=True, can_restrict_members=False)
        refused = await say(bot, merchant, f"/bind {chat_id} {product.id}")
        assert "ban users" in text(refused)
        assert "invite users" not in text(refused)
        assert await chat_of(bot, product.id) is None
        for wrong in (f"{chat_id}", f"{chat_id} 99999999999999999999", f"0 {product.id}"):
            assert "Usage: /bind" in text(await say(bot, merchant, f"/bind {wrong}"))

        # Not in that chat at all: Telegram answers getChatMember with an error.
        fake.fail_next("getChatMember", 400, description="Bad Request: chat not found")
        unknown = await say(bot, merchant, f"/bind {chat_id} {product.id}")
        assert "invite users, ban users" in text(unknown)
        assert await chat_of(bot, product.id) is None

        fake.set_bot_rights(chat_id, can_invite_users=True, can_restrict_members=True)
        bound = await say(bot, merchant, f"/bind {chat_id} {product.id}")
        assert "now get into chat" in text(bound)
        assert await chat_of(bot, product.id) == chat_id


async def test_bind_refuses_another_organizations_product(
    bot_settings: Settings, shop: Tenant, other_shop: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    chat_id = -1009000000002
    async with running_bot(bot_settings, base, fake) as bot:
        merchant = fake.user(9982, "Merchant")
        await link(bot, merchant, shop)
        foreign = await new_product(bot, other_shop)
        fake.set_bot_rights(chat_id)
        answer = await say(bot, merchant, f"/bind {chat_id} {foreign.id}")
        assert "no product with that id" in text(answer)
        assert await chat_of(bot, foreign.id) is None


async def test_a_linked_merchant_making_the_bot_admin_gets_the_chat_id_and_the_bind_hint(
    bot_settings: Settings, shop: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    chat_id = -1009000000003
    fake.add_chat(chat_id, "channel", "Club <VIP> & Co")
    async with running_bot(bot_settings, base, fake) as bot:
        merchant, stranger = fake.user(9991, "Merchant"), fake.user(9992, "Stranger")
        await link(bot, merchant, shop)

        mark = fake.mark()
        fake.my_chat_member(chat_id, by=merchant)
        told = await notified(fake, merchant.id, str(chat_id), after=mark)
        assert f"/bind {chat_id}" in text(told)
        assert "Club &lt;VIP&gt; &amp; Co" in text(told)  # the title is the owner's text
        assert "I need" not in text(told)

        mark = fake.mark()
        fake.my_chat_member(
            chat_id, old_status="administrator", by=merchant, can_restrict_members=False
        )
        lacking = await notified(fake, merchant.id, str(chat_id), after=mark)
        assert "ban users" in text(lacking)

        mark = fake.mark()
        fake.my_chat_member(-1009000000004, by=stranger)
        await asyncio.sleep(1.5)
        assert [c for c in fake.calls("sendMessage") if c.seq >= mark] == []


async def test_an_unlinked_account_or_a_deleted_member_gets_no_more_notifications(
    bot_settings: Settings, shop: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    owner, gone, witness = fake.user(9961), fake.user(9962), fake.user(9963)
    async with running_bot(bot_settings, base, fake) as bot:
        async with transaction(bot.sessionmaker) as db:
            member = await orgs_service.create_user(
                db,
                principal(shop),
                UserCreate(
                    name="Member",
                    last_name="Gone",
                    email=unique_email("member"),
                    password="correct horse battery",
                    role=Role.USER,
                ),
            )
            code = await links.create_link_code(
                db,
                organization_id=shop.organization_id,
                user_id=member.id,
                test=True,
                now=datetime.now(UTC),
            )
        assert "Linked" in text(await say(bot, gone, f"/link {code.code}"))
        await link(bot, owner, shop)
        await link(bot, witness, shop)
        assert "Unlinked" in text(await say(bot, owner, "/unlink"))
        async with transaction(bot.sessionmaker) as db:
            await orgs_service.delete_user(db, principal(shop), member.id)

        mark = fake.mark()
        async with transaction(bot.sessionmaker) as db:
            await events_service.emit(
                db,
                organization_id=shop.organization_id,
                test=True,
                type="webhook.endpoint_disabled",
                data={
                    "endpointUUID": "x",
                    "url": "https://hook.shop.example/",
                    "reason": "410 Gone",
                },
            )
        await notified(fake, witness.id, "hook.shop.example", after=mark)
        await asyncio.sleep(2)
        assert sent_to(fake, owner.id, "hook.shop.example", after=mark) == []
        assert sent_to(fake, gone.id, "hook.shop.example", after=mark) == []
