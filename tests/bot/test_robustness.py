"""The bot when Telegram or the process misbehaves (issue 13, "Robustness and security"), end to
end: the real run_bot against the fake Bot API over HTTP, payments on anvil found by the real
watcher. 429s are waited out, a user who blocked the bot is marked and skipped without holding
up anyone else, lost or unchanged card messages are handled, webhook updates need the secret,
a restarted bot still finishes a card, and confirmations show as they come."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.callbacks import CardAction, PickChain
from bot.dispatcher import UPDATE_TYPES
from bot.runner import webhook_secret
from chain.devnet import Devnet, transfer, write_chains_file
from core.config import Settings
from core.models import CheckoutSession, TelegramCard, TelegramOutbox, TelegramUser
from tests.bot.harness import TOKEN, RunningBot, running_bot
from tests.harness.chains import chain_configs, devnet, drain_async, watcher_settings
from tests.harness.factories import TEST_SECRET_KEY, Tenant, make_tenant, test_settings
from tests.harness.fake_telegram import NOT_MODIFIED, Call, FakeTelegram, User, fake_telegram
from tests.harness.server import free_port

pytestmark = pytest.mark.slow
__all__ = ["devnet"]  # the module-scoped anvil fixture

CHAIN = 31337
EDITS = ("editMessageCaption", "editMessageMedia")


@pytest.fixture(scope="module")
def settings(database_url: str, devnet: Devnet) -> Settings:
    return watcher_settings(database_url, devnet, telegram_bot_username="chainpay_fake_bot")


@pytest.fixture(scope="module")
def tenant(database_url: str) -> Tenant:
    return make_tenant(database_url, test=True, name="Robust Shop")


@pytest.fixture
def telegram() -> Iterator[tuple[str, FakeTelegram]]:
    with fake_telegram(TOKEN) as running:
        yield running


def caption(call: Call) -> str:
    media = call.params.get("media")
    if isinstance(media, dict):
        return str(media.get("caption", ""))
    return str(call.params.get("caption", ""))


def shown(call: Call, chat_id: int) -> bool:
    return call.params.get("chat_id") == chat_id


async def card_edit(
    fake: FakeTelegram, text: str, *, after: int, chat_id: int | None = None, seconds: float = 20
) -> Call:
    """The next successful edit of a card whose caption contains `text` (in `chat_id`)."""
    deadline = time.monotonic() + seconds
    while True:
        for call in fake.calls()[after:]:
            if (
                call.method in EDITS
                and call.status == 200
                and text in caption(call)
                and (chat_id is None or shown(call, chat_id))
            ):
                return call
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no card edit with {text!r}: {[str(c) for c in fake.calls()[after:]]}"
            )
        await asyncio.sleep(0.02)


def calls_of(fake: FakeTelegram, method: str, *, after: int = 0) -> list[Call]:
    return [c for c in fake.calls()[after:] if c.method == method]


def successful_edits(fake: FakeTelegram, text: str, *, after: int) -> list[Call]:
    return [
        c
        for c in fake.calls()[after:]
        if c.method in EDITS and c.status == 200 and text in caption(c)
    ]


async def open_and_pick(bot: RunningBot, payer: User, checkout: CheckoutSession) -> int:
    """The payer opens the card and picks the devnet; returns the card's message id."""
    fake = bot.fake
    mark = fake.mark()
    fake.send_text(payer, f"/start {checkout.bot_token}")
    sent = await fake.await_call("sendPhoto", after=mark)
    message_id = int(sent.result["message_id"])
    mark = fake.mark()
    fake.press(payer, message_id, PickChain(session_id=checkout.id, chain_id=CHAIN).pack())
    await fake.await_call("editMessageMedia", after=mark)
    return message_id


def pay(devnet: Devnet, checkout: CheckoutSession, *, usd: int = 10, mine: int = 3) -> None:
    node = devnet.node(CHAIN)
    token = devnet.tokens[CHAIN][0]
    transfer(node.rpc_url, token, checkout.deposit_address, usd * 10**6)
    if mine:
        node.mine(mine)


async def card_of(bot: RunningBot, session_id: int) -> TelegramCard:
    async with bot.sessionmaker() as db:
        card = await db.scalar(select(TelegramCard).where(TelegramCard.session_id == session_id))
        assert card is not None
        return card


async def remembered(bot: RunningBot, session_id: int, message_id: int) -> None:
    """The card row points at `message_id` (it is written just after Telegram answers)."""
    deadline = time.monotonic() + 5
    while True:
        async with bot.sessionmaker() as db:
            found = await db.scalar(
                select(TelegramCard.message_id).where(TelegramCard.session_id == session_id)
            )
        if found == message_id:
            return
        assert time.monotonic() < deadline, f"the card points at message {found}"
        await asyncio.sleep(0.05)


async def outbox_rows(bot: RunningBot, session_id: int) -> list[TelegramOutbox]:
    async with bot.sessionmaker() as db:
        return list(
            await db.scalars(
                select(TelegramOutbox)
                .where(TelegramOutbox.session_id == session_id)
                .order_by(TelegramOutbox.id)
            )
        )


async def person(bot: RunningBot, telegram_user_id: int) -> TelegramUser:
    async with bot.sessionmaker() as db:
        user = await db.get(TelegramUser, telegram_user_id)
        assert user is not None
        return user


# ----------------------------------------------------------------------------------- 429


async def test_a_429_on_the_senders_card_edit_is_waited_out_and_the_card_edited_once(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], devnet: Devnet
) -> None:
    base, fake = telegram
    async with running_bot(settings, base, fake) as bot:
        checkout = await bot.create_session(tenant)
        payer = fake.user(8001, "Rita")
        message_id = await open_and_pick(bot, payer, checkout)
        fake.fail_next("editMessageCaption", status=429, retry_after=1)
        mark = fake.mark()
        pay(devnet, checkout)
        await drain_async(settings)
        done = await card_edit(fake, "Paid", after=mark)
        limited = [
            c for c in fake.calls()[mark:] if c.method == "editMessageCaption" and c.status == 429
        ]
        assert len(limited) == 1
        assert done.at - limited[0].at >= 0.9  # Telegram's retry_after was waited out
        await asyncio.sleep(2.5)  # a second edit would come by now
        assert len(successful_edits(fake, "Paid", after=mark)) == 1
        assert "Paid" in fake.message(payer.id, message_id)["caption"]


async def test_a_long_429_puts_the_card_back_and_another_payers_card_goes_on_meanwhile(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], devnet: Devnet
) -> None:
    base, fake = telegram
    async with running_bot(settings, base, fake) as bot:
        first, second = await bot.create_session(tenant), await bot.create_session(tenant)
        ann, bob = fake.user(8005, "Ann"), fake.user(8006, "Bob")
        await open_and_pick(bot, ann, first)
        await open_and_pick(bot, bob, second)
        fake.fail_next("editMessageCaption", status=429, retry_after=8)
        mark = fake.mark()
        pay(devnet, first, mine=0)
        pay(devnet, second)
        await drain_async(settings)
        limited = await fake.await_call(
            "editMessageCaption", lambda c: c.status == 429, after=mark, timeout=20
        )
        flooded = int(limited.params["chat_id"])
        other = bob.id if flooded == ann.id else ann.id
        meanwhile = await card_edit(fake, "Paid", after=mark, chat_id=other)
        assert meanwhile.at - limited.at < 5  # not held up by the other chat's 8 s
        session_id = first.id if flooded == ann.id else second.id
        rows = await outbox_rows(bot, session_id)
        put_back = [r for r in rows if r.done_at is None and r.error == "retry after 8s"]
        assert len(put_back) == 1
        assert put_back[0].available_at - put_back[0].created_at >= timedelta(seconds=8)
        # It comes back when Telegram allows; the card (shown Paid by a later row) is left be.
        deadline = time.monotonic() + 20
        while not all(r.done_at is not None for r in await outbox_rows(bot, session_id)):
            assert time.monotonic() < deadline
            await asyncio.sleep(0.2)
        assert time.time() - limited.at >= 7.9
        assert len(successful_edits(fake, "Paid", after=mark)) == 2
        assert "Paid" in str(fake.messages(flooded)[-1].get("caption"))


async def test_a_429_on_the_handlers_card_photo_is_waited_out_and_the_card_sent(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    async with running_bot(settings, base, fake) as bot:
        checkout = await bot.create_session(tenant)
        payer = fake.user(8011, "Sam")
        fake.fail_next("sendPhoto", status=429, retry_after=1)
        mark = fake.mark()
        fake.send_text(payer, f"/start {checkout.bot_token}")
        limited, sent = await fake.await_count("sendPhoto", 2, after=mark)
        assert (limited.status, sent.status) == (429, 200)
        assert sent.at - limited.at >= 0.9
        await remembered(bot, checkout.id, sent.result["message_id"])
        await asyncio.sleep(0.5)
        assert not calls_of(fake, "sendMessage", after=mark)  # no apology: it worked


async def test_a_long_429_in_a_button_handler_asks_the_payer_to_try_again_shortly(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    async with running_bot(settings, base, fake) as bot:
        checkout = await bot.create_session(tenant)
        payer = fake.user(8021, "Tom")
        mark = fake.mark()
        fake.send_text(payer, f"/start {checkout.bot_token}")
        sent = await fake.await_call("sendPhoto", after=mark)
        fake.fail_next("editMessageMedia", status=429, retry_after=45)
        mark = fake.mark()
        started = time.monotonic()
        fake.press(
            payer,
            sent.result["message_id"],
            PickChain(session_id=checkout.id, chain_id=CHAIN).pack(),
        )
        answer = await fake.await_call("answerCallbackQuery", after=mark)
        assert time.monotonic() - started < 10  # not held for 45 s
        assert "45" in str(answer.params.get("text"))
        assert answer.params.get("show_alert") is True
        # Pressing again once Telegram lets us works.
        mark = fake.mark()
        fake.press(
            payer,
            sent.result["message_id"],
            PickChain(session_id=checkout.id, chain_id=CHAIN).pack(),
        )
        await fake.await_call("editMessageMedia", lambda c: c.status == 200, after=mark)


# ----------------------------------------------------------------------------- blocked user


async def test_a_payer_who_blocked_the_bot_is_marked_and_skipped_and_others_still_get_edits(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], devnet: Devnet
) -> None:
    base, fake = telegram
    async with running_bot(settings, base, fake) as bot:
        blocker, other = fake.user(8101, "Bea"), fake.user(8102, "Olly")
        first = await bot.create_session(tenant)
        second = await bot.create_session(tenant)
        first_message = await open_and_pick(bot, blocker, first)
        await open_and_pick(bot, other, second)
        fake.block(blocker.id)
        mark = fake.mark()
        pay(devnet, first, mine=0)
        pay(devnet, second)
        await drain_async(settings)
        await card_edit(fake, "Paid", after=mark, chat_id=other.id)

        assert (await person(bot, blocker.id)).blocked_at is not None
        refused = [c for c in fake.calls()[mark:] if shown(c, blocker.id) and c.status == 403]
        assert refused  # tried once...
        await asyncio.sleep(2.5)
        # ...and given up, not retried: the card rows of the blocked payer are done, with why.
        assert [c for c in fake.calls()[mark:] if shown(c, blocker.id)] == refused
        rows = await outbox_rows(bot, first.id)
        assert rows
        assert all(r.done_at is not None for r in rows)
        assert any("forbidden" in (r.error or "") for r in rows)
        assert (await person(bot, other.id)).blocked_at is None

        # Writing to the bot again unblocks them; their card is brought up to date on request.
        fake.unblock(blocker.id)
        mark = fake.mark()
        fake.send_text(blocker, "/help")
        await fake.await_call("sendMessage", lambda c: shown(c, blocker.id), after=mark)
        assert (await person(bot, blocker.id)).blocked_at is None
        fake.press(blocker, first_message, CardAction(session_id=first.id, action="status").pack())
        await card_edit(fake, "Paid", after=mark, chat_id=blocker.id)


# -------------------------------------------------------------------------------- edits


async def test_message_is_not_modified_counts_as_done_and_is_not_retried(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], devnet: Devnet
) -> None:
    base, fake = telegram
    async with running_bot(settings, base, fake) as bot:
        checkout = await bot.create_session(tenant)
        payer = fake.user(8201, "Nia")
        await open_and_pick(bot, payer, checkout)
        fake.fail_next("editMessageCaption", status=400, description=NOT_MODIFIED)
        mark = fake.mark()
        pay(devnet, checkout)
        await drain_async(settings)
        await fake.await_call("editMessageCaption", lambda c: c.status == 400, after=mark)
        await asyncio.sleep(2.5)
        assert [c.method for c in fake.calls()[mark:] if shown(c, payer.id)] == [
            "editMessageCaption"
        ]
        rows = await outbox_rows(bot, checkout.id)
        assert all(r.done_at is not None and r.error is None for r in rows)
        card = await card_of(bot, checkout.id)
        assert card.fingerprint is not None  # remembered as shown: no edit next time


@pytest.mark.parametrize("how", ["deleted", "not-found"])
async def test_a_lost_card_message_is_sent_anew_and_its_new_id_remembered(
    settings: Settings,
    tenant: Tenant,
    telegram: tuple[str, FakeTelegram],
    devnet: Devnet,
    how: str,
) -> None:
    base, fake = telegram
    async with running_bot(settings, base, fake) as bot:
        checkout = await bot.create_session(tenant)
        payer = fake.user(8211 if how == "deleted" else 8212, "Lou")
        message_id = await open_and_pick(bot, payer, checkout)
        if how == "deleted":  # the payer deleted the chat's messages
            async with httpx.AsyncClient() as client:
                deleted = await client.post(
                    f"{base}/bot{TOKEN}/deleteMessage",
                    json={"chat_id": payer.id, "message_id": message_id},
                )
            assert deleted.json()["ok"] is True
        else:
            fake.fail_next(
                "editMessageCaption",
                status=400,
                description="Bad Request: message to edit not found",
            )
        mark = fake.mark()
        pay(devnet, checkout)
        await drain_async(settings)
        fresh = await fake.await_call(
            "sendPhoto", lambda c: c.status == 200 and "Paid" in caption(c), after=mark, timeout=20
        )
        new_id = int(fresh.result["message_id"])
        assert new_id != message_id
        assert "Paid" in fake.message(payer.id, new_id)["caption"]
        await remembered(bot, checkout.id, new_id)
        # The next look at the card edits the new message (nothing changed: no call at all).
        mark = fake.mark()
        fake.press(payer, new_id, CardAction(session_id=checkout.id, action="status").pack())
        await fake.await_call("answerCallbackQuery", after=mark)
        assert not [c for c in fake.calls()[mark:] if c.method in (*EDITS, "sendPhoto")]


# ------------------------------------------------------------------------------- webhook


async def post_update(port: int, update: dict[str, Any], secret: str | None) -> int:
    headers = {} if secret is None else {"X-Telegram-Bot-Api-Secret-Token": secret}
    async with httpx.AsyncClient() as client:
        answer = await client.post(
            f"http://127.0.0.1:{port}/tg/hook", json=update, headers=headers, timeout=10
        )
    return answer.status_code


async def test_webhook_mode_handles_updates_with_the_secret_and_rejects_others(
    settings: Settings, telegram: tuple[str, FakeTelegram]
) -> None:
    base, fake = telegram
    port = free_port()
    url = "https://bot.example/tg/hook"
    options = {"webhook_url": url, "listen_host": "127.0.0.1", "listen_port": port}
    async with running_bot(settings, base, fake, **options):
        await fake.await_call("setWebhook")
        hook = fake.webhook
        assert hook is not None
        assert hook["url"] == url
        assert hook["secret_token"] == webhook_secret(TOKEN)
        assert hook["allowed_updates"] == UPDATE_TYPES
        assert not calls_of(fake, "getUpdates")
        assert not calls_of(fake, "deleteWebhook")

        someone = fake.user(8301, "Wes")
        for secret in (None, "wrong", webhook_secret("1:OTHER-TOKEN")):
            mark = fake.mark()
            status = await post_update(port, fake.text_update(someone, "/start"), secret)
            assert status in (401, 403)
            await asyncio.sleep(0.5)
            assert not calls_of(fake, "sendMessage", after=mark)

        mark = fake.mark()
        status = await post_update(port, fake.text_update(someone, "/start"), webhook_secret(TOKEN))
        assert status == 200
        welcome = await fake.await_call("sendMessage", after=mark)
        assert welcome.params["chat_id"] == someone.id


async def test_two_webhook_replicas_share_one_payers_card_through_the_database(
    settings: Settings,
    database_url: str,
    tenant: Tenant,
    telegram: tuple[str, FakeTelegram],
    devnet: Devnet,
    tmp_path: Path,
) -> None:
    """Replica A runs here, replica B is a real `chainpay bot --webhook` process (the routers
    are module-level: one dispatcher per process, as in production)."""
    base, fake = telegram
    ports = free_port(), free_port()
    url = "https://bot.example/tg/hook"
    secret = webhook_secret(TOKEN)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHAINPAY_")},
        "CHAINPAY_DATABASE_URL": database_url,
        "CHAINPAY_CHAINS_FILE": str(write_chains_file(devnet, tmp_path / "chains.toml")),
        "CHAINPAY_SECRET_KEY": TEST_SECRET_KEY,
        "CHAINPAY_TELEGRAM_BOT_TOKEN": TOKEN,
        "CHAINPAY_TELEGRAM_API_URL": base,
        "CHAINPAY_TELEGRAM_BOT_USERNAME": fake.username,
    }
    command = ["bot", "--webhook", url, "--listen", f"127.0.0.1:{ports[1]}"]
    async with running_bot(settings, base, fake, webhook_url=url, listen_port=ports[0]) as bot:
        await fake.await_call("setWebhook")
        with running_process(tmp_path, env, *command) as replica:
            await fake.await_count("setWebhook", 2, timeout=60)
            assert replica.poll() is None
            checkout = await bot.create_session(tenant)
            payer = fake.user(8311, "Rae")
            mark = fake.mark()
            start = fake.text_update(payer, f"/start {checkout.bot_token}")
            assert await post_update(ports[0], start, secret) == 200
            sent = await fake.await_call("sendPhoto", after=mark)
            # The button press lands on the other replica: it finds the card in the database.
            mark = fake.mark()
            pick = PickChain(session_id=checkout.id, chain_id=CHAIN).pack()
            press = fake.callback_update(payer, sent.result["message_id"], pick)
            assert await post_update(ports[1], press, secret) == 200
            edited = await fake.await_call("editMessageMedia", after=mark, timeout=20)
            assert edited.params["message_id"] == sent.result["message_id"]
            assert checkout.deposit_address in caption(edited)
            replica.send_signal(signal.SIGTERM)
            assert replica.wait(timeout=20) == 0


# ------------------------------------------------------------------------------- restart


async def test_a_bot_restarted_mid_payment_completes_the_card_exactly_once(
    settings: Settings, tenant: Tenant, telegram: tuple[str, FakeTelegram], devnet: Devnet
) -> None:
    base, fake = telegram
    async with running_bot(settings, base, fake) as bot:
        checkout = await bot.create_session(tenant)
        payer = fake.user(8401, "Ivy")
        message_id = await open_and_pick(bot, payer, checkout)
    # The bot is down while the payment arrives and confirms.
    pay(devnet, checkout)
    await drain_async(settings)
    mark = fake.mark()
    async with running_bot(settings, base, fake) as bot:
        assert (await bot.reload(checkout.id)).status == "completed"
        done = await card_edit(fake, "Paid", after=mark)
        assert done.params["message_id"] == message_id
        await asyncio.sleep(2.5)
        assert len(successful_edits(fake, "Paid", after=mark)) == 1
        assert not calls_of(fake, "sendPhoto", after=mark)


# ----------------------------------------------------------------------------- confirmations


async def test_the_card_counts_confirmations_then_shows_paid(
    database_url: str, tenant: Tenant, telegram: tuple[str, FakeTelegram], devnet: Devnet
) -> None:
    settings = test_settings(
        database_url,
        chains=chain_configs(devnet, confirmations=3),
        telegram_bot_username="chainpay_fake_bot",
    )
    base, fake = telegram
    async with running_bot(settings, base, fake) as bot:
        checkout = await bot.create_session(tenant)
        payer = fake.user(8501, "Cy")
        await open_and_pick(bot, payer, checkout)
        mark = fake.mark()
        pay(devnet, checkout, mine=0)  # in its own block: 1 confirmation
        await drain_async(settings)
        await card_edit(fake, "Payment detected: 1/3", after=mark)
        devnet.node(CHAIN).mine(1)
        await drain_async(settings)  # no event: the sender looks again by itself
        await card_edit(fake, "Payment detected: 2/3", after=mark, seconds=10)
        devnet.node(CHAIN).mine(1)
        await drain_async(settings)
        await card_edit(fake, "Paid", after=mark)
        assert (await bot.reload(checkout.id)).status == "completed"
        await asyncio.sleep(2.5)  # confirming is over: no more looks
        assert not [c for c in fake.calls()[mark:] if c.method in EDITS and "3/3" in caption(c)]
        assert len(successful_edits(fake, "Paid", after=mark)) == 1


# ------------------------------------------------------------------------------------ CLI


def chainpay(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("CHAINPAY_")}
    return subprocess.run(
        [sys.executable, "-m", "chainpay", *args],
        cwd=cwd,
        env={**clean, "COLUMNS": "200", **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@contextmanager
def running_process(
    cwd: Path, env: dict[str, str], *args: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`chainpay <args>` as a real process; its output is shown when the test fails."""
    log = cwd / f"{args[0]}-{time.monotonic_ns()}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "chainpay", *args],
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    except BaseException:
        print(f"--- chainpay {' '.join(args)} said:\n{log.read_text(errors='replace')}")
        raise
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_chainpay_bot_without_a_token_names_the_variable(tmp_path: Path, database_url: str) -> None:
    line = one_line_error(chainpay(tmp_path, "bot", CHAINPAY_DATABASE_URL=database_url))
    assert "CHAINPAY_TELEGRAM_BOT_TOKEN" in line


def test_chainpay_bot_refuses_a_plain_http_webhook(tmp_path: Path, database_url: str) -> None:
    result = chainpay(
        tmp_path,
        "bot",
        "--webhook",
        "http://bot.example/hook",
        CHAINPAY_DATABASE_URL=database_url,
        CHAINPAY_TELEGRAM_BOT_TOKEN=TOKEN,
    )
    assert result.returncode == 2, result.stderr
    assert "https" in result.stderr
    assert "--webhook" in result.stderr


def test_serve_without_a_token_says_once_that_the_bot_is_skipped(
    tmp_path: Path, fresh_url: str, devnet: Devnet
) -> None:
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHAINPAY_")},
        "CHAINPAY_DATABASE_URL": fresh_url,
        "CHAINPAY_CHAINS_FILE": str(write_chains_file(devnet, tmp_path / "chains.toml")),
        "CHAINPAY_SECRET_KEY": TEST_SECRET_KEY,
        "CHAINPAY_LOG_LEVEL": "info",
    }
    log = tmp_path / "serve.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "chainpay", "serve", "--port", str(port)],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "telegram_bot_skipped" not in log.read_text(errors="replace"):
            assert process.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.1)
        time.sleep(1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    lines = [x for x in log.read_text(errors="replace").splitlines() if "telegram_bot" in x]
    assert len(lines) == 1, lines
    assert "CHAINPAY_TELEGRAM_BOT_TOKEN" in lines[0]
