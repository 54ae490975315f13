"""A payer in Telegram, end to end: the real aiogram polling loop against the fake Bot API
server, payments on anvil found by the real watcher, the card kept up to date from events."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from bot.callbacks import CardAction, PickChain
from chain.devnet import Devnet, transfer
from core.config import Settings
from tests.bot.harness import TOKEN, RunningBot, running_bot
from tests.harness.chains import devnet, drain_async, watcher_settings
from tests.harness.factories import Tenant, make_tenant
from tests.harness.fake_telegram import Call, FakeTelegram, fake_telegram

pytestmark = pytest.mark.slow
__all__ = ["devnet"]  # the module-scoped anvil fixture


@pytest.fixture(scope="module")
def settings(database_url: str, devnet: Devnet) -> Settings:
    return watcher_settings(database_url, devnet, telegram_bot_username="chainpay_fake_bot")


@pytest.fixture(scope="module")
def tenant(database_url: str) -> Tenant:
    return make_tenant(database_url, test=True, name="Coffee & Co")


@pytest.fixture
def telegram() -> Iterator[tuple[str, FakeTelegram]]:
    with fake_telegram(TOKEN) as running:
        yield running


def caption(call: Call) -> str:
    media = call.params.get("media")
    if isinstance(media, dict):
        return str(media.get("caption", ""))
    return str(call.params.get("caption", ""))


async def card_edit(
    fake: FakeTelegram, text: str, *, after: int, chat_id: int | None = None, seconds: float = 15
) -> Call:
    """The next edit of a card (caption or photo) whose caption contains `text`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while True:
        for call in fake.calls()[after:]:
            if (
                call.method in ("editMessageCaption", "editMessageMedia")
                and text in caption(call)
                and (chat_id is None or call.params.get("chat_id") == chat_id)
            ):
                return call
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(
                f"no card edit with {text!r}: {[str(c) for c in fake.calls()[after:]]}"
            )
        await asyncio.sleep(0.02)


def buttons(call: Call) -> list[dict[str, Any]]:
    markup = call.params.get("reply_markup") or {}
    return [b for row in markup.get("inline_keyboard", []) for b in row]


async def open_card(bot: RunningBot, payer: Any, token: str) -> Call:
    mark = bot.fake.mark()
    bot.fake.send_text(payer, f"/start {token}")
    return await bot.fake.await_call("sendPhoto", after=mark)


async def test_one_time_payment_from_start_to_completed_card(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], devnet: Devnet
) -> None:
    base, fake = telegram
    async with running_bot(settings, base, fake) as bot:
        checkout = await bot.create_session(tenant)
        payer = fake.user(7001, "Ann")
        sent = await open_card(bot, payer, checkout.bot_token)
        assert "Coffee &amp; Co" in caption(sent) or "Coffee & Co" in caption(sent)
        assert "$10" in caption(sent)
        assert "Choose the network" in caption(sent)
        assert sent.file("photo") is not None  # the QR code, uploaded
        chains = [b for b in buttons(sent) if b.get("callback_data", "").startswith("pc:")]
        assert [b["text"] for b in chains] == [c.name for c in bot.context.registry.chains.values()]
        assert (await bot.reload(checkout.id)).telegram_user_id == 7001
        # The checkout page as a Mini App, inside Telegram.
        mini_apps = [b["web_app"]["url"] for b in buttons(sent) if "web_app" in b]
        assert mini_apps == [f"{bot.context.link(checkout.uuid)}?tgWebApp=1"]

        message_id = sent.result["message_id"]
        mark = fake.mark()
        fake.press(payer, message_id, PickChain(session_id=checkout.id, chain_id=31337).pack())
        edited = await fake.await_call("editMessageMedia", after=mark)
        media = edited.params["media"]
        assert "Send exactly <code>10</code> USDT" in media["caption"] or "10" in media["caption"]
        assert checkout.deposit_address in str(media["caption"])

        node = devnet.node(31337)
        token = devnet.tokens[31337][0]
        mark = fake.mark()
        transfer(node.rpc_url, token, checkout.deposit_address, 10 * 10**6)
        node.mine(3)  # past the 2 confirmations
        await drain_async(settings)
        done = await card_edit(fake, "Paid", after=mark)
        assert "Waiting" not in caption(done)
        assert (await bot.reload(checkout.id)).status == "completed"


async def test_a_stranger_cannot_press_another_payers_buttons(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    async with running_bot(settings, base, fake) as bot:
        checkout = await bot.create_session(tenant)
        owner, stranger = fake.user(7101, "Owner"), fake.user(7102, "Stranger")
        sent = await open_card(bot, owner, checkout.bot_token)
        mark = fake.mark()
        fake.press(
            stranger,
            sent.result["message_id"],
            CardAction(session_id=checkout.id, action="cancel").pack(),
            chat_id=owner.id,
        )
        answer = await fake.await_call("answerCallbackQuery", after=mark)
        assert "another Telegram account" in str(answer.params.get("text"))
        assert (await bot.reload(checkout.id)).status == "created"
        # Opening the link from another account is refused too.
        mark = fake.mark()
        fake.send_text(stranger, f"/start {checkout.bot_token}")
        refused = await fake.await_call("sendMessage", after=mark)
        assert "another Telegram account" in str(refused.params["text"])


async def pay_and_confirm(
    settings: Settings, devnet: Devnet, address: str, base_units: int
) -> None:
    node = devnet.node(31337)
    transfer(node.rpc_url, devnet.tokens[31337][0], address, base_units)
    node.mine(3)  # past the 2 confirmations
    await drain_async(settings)


async def choose_devnet_a(bot: RunningBot, payer: Any, sent: Call, session_id: int) -> Call:
    mark = bot.fake.mark()
    bot.fake.press(
        payer, sent.result["message_id"], PickChain(session_id=session_id, chain_id=31337).pack()
    )
    return await bot.fake.await_call("editMessageMedia", after=mark)


async def test_underpaid_card_shows_the_rest_and_a_top_up_completes_it(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], devnet: Devnet
) -> None:
    base, fake = telegram
    async with running_bot(settings, base, fake) as bot:
        checkout = await bot.create_session(tenant)
        payer = fake.user(7201, "Bo")
        sent = await open_card(bot, payer, checkout.bot_token)
        await choose_devnet_a(bot, payer, sent, checkout.id)
        mark = fake.mark()
        await pay_and_confirm(settings, devnet, checkout.deposit_address, 4 * 10**6)
        partial = await card_edit(fake, "Still to pay", after=mark)
        assert "Received $4 of $10" in caption(partial)
        assert "<b>$6</b>" in caption(partial)
        # The amount asked for is now the rest, in the chosen token (6 USDT).
        assert "Send exactly <code>6</code> USDT" in caption(partial)
        assert (await bot.reload(checkout.id)).status == "pending"
        mark = fake.mark()
        await pay_and_confirm(settings, devnet, checkout.deposit_address, 6 * 10**6)
        await card_edit(fake, "Paid. Thank you", after=mark)
        assert (await bot.reload(checkout.id)).status == "completed"


async def test_expired_card_explains_late_money_and_offers_a_fresh_session(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    from datetime import timedelta

    from core.checkout import tasks as checkout_tasks
    from core.db import transaction

    base, fake = telegram
    async with running_bot(settings, base, fake) as bot:
        checkout = await bot.create_session(tenant)
        payer = fake.user(7301, "Cy")
        sent = await open_card(bot, payer, checkout.bot_token)
        mark = fake.mark()
        async with transaction(bot.sessionmaker) as db:
            expired = await checkout_tasks.expire(
                db, checkout.expires_at + timedelta(seconds=1), context=bot.context
            )
        assert expired >= 1
        card = await card_edit(fake, "expired", after=mark, chat_id=payer.id)
        assert "still recorded" in caption(card)
        fresh_button = [
            b
            for b in buttons(card)
            if b.get("callback_data", "").startswith("ca:") and ":fresh" in b["callback_data"]
        ]
        assert len(fresh_button) == 1
        mark = fake.mark()
        fake.press(payer, sent.result["message_id"], fresh_button[0]["callback_data"])
        new_card = await fake.await_call("sendPhoto", after=mark)
        assert "Choose the network" in caption(new_card)
        assert "$10" in caption(new_card)
        # A new session on the same terms, already the payer's.
        from sqlalchemy import select

        from core.models import CheckoutSession

        async with bot.sessionmaker() as db:
            newest = await db.scalar(
                select(CheckoutSession)
                .where(CheckoutSession.telegram_user_id == payer.id)
                .order_by(CheckoutSession.id.desc())
            )
        assert newest is not None
        assert newest.id != checkout.id
        assert newest.status == "created"
        assert newest.price_usd == checkout.price_usd


async def test_language_switch_renders_the_next_card_in_russian(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    async with running_bot(settings, base, fake) as bot:
        payer = fake.user(7401, "Dasha", language_code="en")
        mark = fake.mark()
        fake.send_text(payer, "/language")
        menu = await fake.await_call("sendMessage", after=mark)
        ru = [b for b in buttons(menu) if b["callback_data"] == "lang:ru"]
        assert ru, buttons(menu)
        mark = fake.mark()
        fake.press(payer, menu.result["message_id"], "lang:ru")
        confirmed = await fake.await_call("sendMessage", after=mark)
        assert "русский" in confirmed.params["text"]
        checkout = await bot.create_session(tenant)
        sent = await open_card(bot, payer, checkout.bot_token)
        assert "Выберите сеть" in caption(sent)
        assert "Цена" in caption(sent)


async def test_a_russian_telegram_client_gets_russian_by_default(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    async with running_bot(settings, base, fake):
        payer = fake.user(7402, "Ivan", language_code="ru")
        mark = fake.mark()
        fake.send_text(payer, "/help")
        answer = await fake.await_call("sendMessage", after=mark)
        assert "Оплата" in answer.params["text"]
        commands = fake.commands("ru")
        assert [c["command"] for c in commands][:2] == ["start", "subscriptions"]
        assert commands[1]["description"] == "Мои подписки"


async def test_subscriptions_list_renew_card_and_reminders_toggle(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    from core.checkout.schemas import SubscriptionOptionsIn
    from core.models import TelegramUser

    base, fake = telegram
    async with running_bot(settings, base, fake) as bot:
        product_id = await bot.create_product(tenant, name="Signals club", price="5")
        options = SubscriptionOptionsIn.model_validate(
            {
                "subscriptionType": "subscription",
                "frequency": {"value": 30, "unit": "days"},
                "trialPeriod": {"value": 7, "unit": "days"},
            }
        )
        checkout = await bot.create_session(
            tenant,
            product_id=product_id,
            product_name=None,
            description=None,
            price=None,
            options=options,
        )
        payer = fake.user(7501, "Eve")
        mark = fake.mark()
        fake.send_text(payer, "/subscriptions")
        empty = await fake.await_call("sendMessage", after=mark)
        assert "no subscriptions" in empty.params["text"]

        sent = await open_card(bot, payer, checkout.bot_token)
        assert "every 30 days" in caption(sent)
        assert "Free trial: 1 weeks" in caption(sent)
        trial = [b for b in buttons(sent) if b.get("callback_data", "").endswith(":trial")]
        assert len(trial) == 1
        mark = fake.mark()
        fake.press(payer, sent.result["message_id"], trial[0]["callback_data"])
        started = await card_edit(fake, "free trial until", after=mark, chat_id=payer.id)
        assert not [b for b in buttons(started) if b.get("callback_data", "").endswith(":trial")]

        mark = fake.mark()
        fake.send_text(payer, "/subscriptions")
        listing = await fake.await_call("sendMessage", after=mark)
        assert "Signals club: free trial" in listing.params["text"]
        assert "reminders are on" in listing.params["text"]
        renew = [b for b in buttons(listing) if b["callback_data"].endswith(":renew")]
        off = [b for b in buttons(listing) if b["callback_data"].endswith(":reminders_off")]
        assert len(renew) == 1
        assert len(off) == 1

        mark = fake.mark()
        fake.press(payer, listing.result["message_id"], renew[0]["callback_data"])
        card = await fake.await_call("sendPhoto", after=mark)
        assert checkout.product_name in caption(card)

        mark = fake.mark()
        fake.press(payer, listing.result["message_id"], off[0]["callback_data"])
        await fake.await_call(
            "answerCallbackQuery", lambda c: c.params.get("text") == "Reminders off", after=mark
        )
        async with bot.sessionmaker() as db:
            person = await db.get(TelegramUser, payer.id)
        assert person is not None
        assert person.reminders is False

        # Another account cannot renew or toggle someone else's subscription.
        stranger = fake.user(7502, "Mallory")
        mark = fake.mark()
        fake.press(
            stranger, listing.result["message_id"], renew[0]["callback_data"], chat_id=payer.id
        )
        refused = await fake.await_call("answerCallbackQuery", after=mark)
        assert "another Telegram account" in str(refused.params.get("text"))
