"""The payment card's own buttons and where the payer's Telegram id shows up: a network with two
tokens (the token picker), change network, check status, cancel by the payer, the success
button, and `telegramUserId` on the session, its customer, Papaya's `recipient` and events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.callbacks import CardAction, PickChain, PickToken
from chain.devnet import Devnet, deploy_token
from core.chains import TokenConfig
from core.config import Settings
from core.models import Event
from tests.bot.harness import TOKEN, running_bot
from tests.bot.test_payer_flow import buttons, caption, card_edit, open_card, pay_and_confirm
from tests.harness.chains import chain_configs, devnet
from tests.harness.factories import Api, Tenant, make_customer, make_tenant, test_settings
from tests.harness.fake_telegram import FakeTelegram, fake_telegram
from tests.harness.server import live_server

pytestmark = pytest.mark.slow
__all__ = ["devnet"]  # the module-scoped anvil fixture


@pytest.fixture(scope="module")
def usdc(devnet: Devnet) -> str:
    """A second token on chain 31337, so that picking the network leaves a token to pick."""
    return deploy_token(devnet.node(31337).rpc_url, symbol="USDC", decimals=6)


@pytest.fixture(scope="module")
def bot_settings(database_url: str, devnet: Devnet, usdc: str) -> Settings:
    chains = chain_configs(devnet)
    first = chains[0]
    chains[0] = first.model_copy(
        update={
            "tokens": (*(first.tokens or ()), TokenConfig(symbol="USDC", contract=usdc, decimals=6))
        }
    )
    return test_settings(database_url, chains=chains, telegram_bot_username="chainpay_fake_bot")


@pytest.fixture(scope="module")
def shop_api(bot_settings: Settings) -> Iterator[tuple[Api, Tenant]]:
    tenant = make_tenant(bot_settings.database_url, test=True, name="Card Shop")
    with live_server(bot_settings) as url:
        yield Api(url, tenant.key), tenant


@pytest.fixture
def telegram() -> Iterator[tuple[str, FakeTelegram]]:
    with fake_telegram(TOKEN) as running:
        yield running


def callback_buttons(call: Any, prefix: str) -> list[dict[str, Any]]:
    return [b for b in buttons(call) if b.get("callback_data", "").startswith(prefix)]


async def test_token_picker_change_network_status_and_cancel(
    bot_settings: Settings, shop_api: tuple[Api, Tenant], telegram: tuple[str, FakeTelegram]
) -> None:
    _, tenant = shop_api
    base, fake = telegram
    async with running_bot(bot_settings, base, fake) as bot:
        checkout = await bot.create_session(tenant)
        payer = fake.user(8101, "Finn")
        sent = await open_card(bot, payer, checkout.bot_token)
        message_id = sent.result["message_id"]

        mark = fake.mark()
        fake.press(payer, message_id, PickChain(session_id=checkout.id, chain_id=31337).pack())
        picker = await fake.await_call("editMessageReplyMarkup", after=mark)
        tokens = callback_buttons(picker, "pt:")
        assert [b["text"].split()[0] for b in tokens] == ["USDT", "USDC"]
        assert callback_buttons(picker, "ca:")  # and a way back

        mark = fake.mark()
        usdc_data = PickToken(session_id=checkout.id, chain_id=31337, symbol="USDC").pack()
        fake.press(payer, message_id, usdc_data)
        card = await fake.await_call("editMessageMedia", after=mark)
        assert "Send exactly <code>10</code> USDC" in caption(card)
        assert "Send only USDC on Devnet 31337" in caption(card)
        assert (await bot.reload(checkout.id)).chosen_token_contract is not None

        mark = fake.mark()
        status = CardAction(session_id=checkout.id, action="status").pack()
        fake.press(payer, message_id, status)
        await fake.await_call(
            "answerCallbackQuery",
            lambda c: c.params.get("text") == "Waiting for payment",
            after=mark,
        )

        mark = fake.mark()
        fake.press(payer, message_id, CardAction(session_id=checkout.id, action="change").pack())
        back = await card_edit(fake, "Choose the network", after=mark, chat_id=payer.id)
        assert callback_buttons(back, "pc:")
        assert (await bot.reload(checkout.id)).chosen_token_contract is None

        mark = fake.mark()
        fake.press(payer, message_id, CardAction(session_id=checkout.id, action="cancel").pack())
        cancelled = await card_edit(fake, "Cancelled", after=mark, chat_id=payer.id)
        assert not callback_buttons(cancelled, "pc:")
        assert (await bot.reload(checkout.id)).status == "cancelled"


async def test_the_payers_telegram_id_shows_in_the_api_and_the_success_button_opens_the_shop(
    bot_settings: Settings,
    shop_api: tuple[Api, Tenant],
    telegram: tuple[str, FakeTelegram],
    devnet: Devnet,
) -> None:
    api, _ = shop_api
    base, fake = telegram
    customer = make_customer(api)
    created = api.post(
        "/transaction/session-checkout",
        json={
            "productName": "Ebook",
            "description": "PDF",
            "price": "3",
            "customerUUID": customer["uuid"],
            "successUrl": "https://shop.example/thanks?session={{UUID}}",
        },
    )
    assert created.status_code == 200, created.text
    uuid = created.json()["uuid"]
    bot_url = created.json()["botUrl"]
    assert bot_url.startswith("https://t.me/chainpay_fake_bot?start=")
    start_token = bot_url.rsplit("=", 1)[1]
    assert len(start_token) <= 64
    async with running_bot(bot_settings, base, fake) as bot:
        payer = fake.user(8201, "Gus")
        sent = await open_card(bot, payer, start_token)
        # The API runs in its own thread; a blocking call from this loop could hold it up while
        # the bot (on this loop) holds SQLite's write lock.
        session = (await asyncio.to_thread(api.get, f"/transaction/session-checkout/{uuid}")).json()
        assert session["telegramUserId"] == 8201
        owner = (await asyncio.to_thread(api.get, f"/customer/uuid/{customer['uuid']}")).json()
        assert owner["telegramUserId"] == 8201
        papaya = httpx.Client(base_url=api.client.base_url.join("/api"), headers=api.client.headers)
        invoice = await asyncio.to_thread(papaya.get, f"/invoice/{session['invoiceId']}")
        assert invoice.status_code == 200, invoice.text
        assert invoice.json()["recipient"] == "8201"

        mark = fake.mark()
        fake.press(
            payer,
            sent.result["message_id"],
            PickToken(
                session_id=(await _session_id(bot, uuid)), chain_id=31337, symbol="USDT"
            ).pack(),
        )
        await fake.await_call("editMessageMedia", after=mark)
        mark = fake.mark()
        await pay_and_confirm(bot_settings, devnet, session["depositAddress"], 3 * 10**6)
        paid = await card_edit(fake, "Paid", after=mark, chat_id=payer.id)
        urls = [b["url"] for b in buttons(paid) if "url" in b]
        assert f"https://shop.example/thanks?session={uuid}" in urls
        async with bot.sessionmaker() as db:
            payloads = [
                json.loads(p)
                for p in await db.scalars(
                    select(Event.payload).where(Event.type == "session.completed")
                )
            ]
        assert any(json.dumps(p).count("8201") for p in payloads)


async def _session_id(bot: Any, uuid: str) -> int:
    from core.models import CheckoutSession

    async with bot.sessionmaker() as db:
        found = await db.scalar(select(CheckoutSession.id).where(CheckoutSession.uuid == uuid))
    assert found is not None
    return int(found)
