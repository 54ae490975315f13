"""Start-up facts: token decimals read from the contract (and cached), the bot's username from
getMe on a (fake) Telegram Bot API server."""

from __future__ import annotations

import asyncio

import pytest

from chainpay.startup import checkout_context
from core.chains import ChainConfig, ConfigurationError, TokenConfig
from tests.harness.chains import devnet_or_skip
from tests.harness.factories import test_settings
from tests.harness.fake_telegram import fake_telegram


@pytest.mark.slow
def test_decimals_are_read_from_the_contract_and_cached(database_url: str) -> None:
    for devnet in devnet_or_skip(chains=((31344, 18),)):
        contract = devnet.tokens[31344][0]
        chain = ChainConfig(
            id=31344,
            rpc_urls=(devnet.node(31344).rpc_url,),
            confirmations=1,
            test=True,
            tokens=(TokenConfig(symbol="USDT", contract=contract),),
        )
        context = asyncio.run(checkout_context(test_settings(database_url, chains=[chain])))
        token = context.registry.chains[31344].tokens[0]
        assert token.decimals == 18
    # The node is gone now: the cached answer is used.
    offline = chain.model_copy(update={"rpc_urls": ("http://127.0.0.1:9",)})
    again = asyncio.run(checkout_context(test_settings(database_url, chains=[offline])))
    assert again.registry.chains[31344].tokens[0].decimals == 18


def test_unreadable_decimals_are_a_clear_configuration_error(database_url: str) -> None:
    chain = ChainConfig(
        id=31345,
        rpc_urls=("http://127.0.0.1:9",),
        test=True,
        tokens=(TokenConfig(symbol="USDT", contract="0x000000000000000000000000000000000000bEEF"),),
    )
    with pytest.raises(ConfigurationError, match="could not read decimals"):
        asyncio.run(checkout_context(test_settings(database_url, chains=[chain])))


def test_bot_username_comes_from_get_me(database_url: str) -> None:
    with fake_telegram() as (base, fake):
        settings = test_settings(
            database_url,
            telegram_bot_username=None,
            telegram_bot_token=fake.token,
            telegram_api_url=base,
        )
        context = asyncio.run(checkout_context(settings))
        assert context.bot_username == "chainpay_fake_bot"
        assert context.bot_url("abc") == "https://t.me/chainpay_fake_bot?start=abc"
        assert [name for name, _ in fake.requests] == ["getMe"]
        wrong = settings.model_copy(update={"telegram_bot_token": "1:WRONG"})
        assert asyncio.run(checkout_context(wrong)).bot_username is None
    no_bot = test_settings(database_url, telegram_bot_username=None)
    assert asyncio.run(checkout_context(no_bot)).bot_url("abc") is None
