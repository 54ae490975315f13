"""The fake Telegram Bot API, driven by the real aiogram client and polling loop.

Why: bot tests trust the fake to answer what Telegram answers; if aiogram could not parse an
answer, or an error did not map to the exception aiogram raises for the real one, every bot
test built on the fake would prove nothing.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import CommandObject, CommandStart
from aiogram.types import (
    BotCommand,
    BotCommandScopeAllPrivateChats,
    BufferedInputFile,
    CallbackQuery,
    ChatJoinRequest,
    ChatMemberBanned,
    ChatMemberLeft,
    ChatMemberMember,
    ChatMemberUpdated,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    InputMediaPhoto,
    Message,
)

from tests.harness.fake_telegram import NOT_MODIFIED, Call, FakeTelegram, fake_telegram

TOKEN = "4242:TEST-TOKEN"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4  # binary, with CR/LF inside
CHANNEL = -1001234567890


@pytest.fixture
def served() -> Iterator[tuple[str, FakeTelegram]]:
    with fake_telegram(TOKEN, max_poll_seconds=0.5) as pair:
        yield pair


@pytest.fixture
def fake(served: tuple[str, FakeTelegram]) -> FakeTelegram:
    return served[1]


@pytest.fixture
async def bot(served: tuple[str, FakeTelegram]) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(served[0]))
    bot = Bot(TOKEN, session=session)
    yield bot
    await bot.session.close()


def keyboard(data: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Pay", callback_data=data)]]
    )


def build_dispatcher(seen: list[Any], promoted_seen: asyncio.Event) -> Dispatcher:
    router = Router()

    @router.message(CommandStart(deep_link=True))
    async def start(message: Message, command: CommandObject) -> None:
        await message.answer(f"<b>Invoice</b> {command.args}", reply_markup=keyboard("pay:1"))

    @router.callback_query(F.data == "pay:1")
    async def pay(query: CallbackQuery, bot: Bot) -> None:
        seen.append(query)
        assert isinstance(query.message, Message)
        await query.message.edit_text("Paid", reply_markup=keyboard("receipt"))
        await query.answer("thanks")
        photo = BufferedInputFile(PNG, filename="qr.png")
        await bot.send_photo(query.from_user.id, photo, caption="scan me")

    @router.chat_join_request()
    async def join(request: ChatJoinRequest) -> None:
        seen.append(request)
        await request.approve()

    @router.my_chat_member()
    async def promoted(change: ChatMemberUpdated) -> None:
        seen.append(change)
        promoted_seen.set()

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    return dispatcher


async def test_a_real_dispatcher_polls_the_fake_end_to_end(bot: Bot, fake: FakeTelegram) -> None:
    seen: list[Any] = []
    promoted_seen = asyncio.Event()
    dispatcher = build_dispatcher(seen, promoted_seen)
    polling = asyncio.create_task(dispatcher.start_polling(bot, handle_signals=False))
    ann = fake.user(77, "Ann", username="ann")

    fake.send_text(ann, "/start inv-9")
    sent = await fake.await_call("sendMessage")
    assert sent.params["chat_id"] == 77
    assert sent.params["text"] == "<b>Invoice</b> inv-9"
    assert sent.params["reply_markup"] == {
        "inline_keyboard": [[{"text": "Pay", "callback_data": "pay:1"}]]
    }
    message_id = sent.result["message_id"]
    assert message_id == 2  # the user's /start was message 1 of this chat
    stored = fake.message(77, message_id)
    assert stored["from"]["id"] == 4242
    assert stored["chat"]["first_name"] == "Ann"

    query_id = fake.press(ann, message_id, "pay:1")
    edited = await fake.await_call("editMessageText")
    assert edited.params["message_id"] == message_id
    assert edited.params["text"] == "Paid"
    answered = await fake.await_call("answerCallbackQuery")
    assert answered.params == {"callback_query_id": query_id, "text": "thanks"}
    photo = await fake.await_call("sendPhoto")
    upload = photo.file("photo")
    assert upload is not None
    assert upload["filename"] == "qr.png"
    assert upload["content_type"] == "application/octet-stream"  # aiohttp does not guess
    assert upload["data"] == PNG
    assert upload["size"] == len(PNG)
    assert photo.params["caption"] == "scan me"
    assert photo.result["photo"][-1]["file_size"] == len(PNG)
    assert fake.message(77, message_id)["text"] == "Paid"
    pressed = seen[0]
    assert isinstance(pressed, CallbackQuery)
    assert isinstance(pressed.message, Message)  # the stored message rode along, no parse_mode
    assert pressed.message.text == "<b>Invoice</b> inv-9"

    fake.set_bot_rights(CHANNEL)
    fake.add_chat(CHANNEL, title="Paid channel")
    fake.join_request(ann, CHANNEL)
    await fake.await_call("approveChatJoinRequest")
    assert fake.member(CHANNEL, 77)["status"] == "member"
    assert fake.pending_join_requests == set()
    fake.my_chat_member(-1009, status="administrator", can_post_messages=True)
    await asyncio.wait_for(promoted_seen.wait(), 5)
    change = seen[-1]
    assert isinstance(change, ChatMemberUpdated)
    assert change.new_chat_member.status == "administrator"

    started = time.monotonic()
    await dispatcher.stop_polling()
    await asyncio.wait_for(polling, 5)
    assert time.monotonic() - started < 2
    assert [c.method for c in fake.calls() if c.status != 200] == []


async def test_errors_map_to_the_exceptions_aiogram_raises_for_telegram(
    bot: Bot, fake: FakeTelegram
) -> None:
    fake.fail_next("sendMessage", status=429, retry_after=3)
    with pytest.raises(TelegramRetryAfter) as limited:
        await bot.send_message(1, "hi")
    assert limited.value.retry_after == 3
    assert fake.last("sendMessage").response == {
        "ok": False,
        "error_code": 429,
        "description": "Too Many Requests: retry after 3",
        "parameters": {"retry_after": 3},
    }
    await bot.send_message(1, "hi")  # only the next call failed

    fake.block(5)
    with pytest.raises(TelegramForbiddenError, match="bot was blocked by the user"):
        await bot.send_message(5, "hi")
    fake.unblock(5)
    await bot.send_message(5, "hi")

    message = await bot.send_message(1, "same", reply_markup=keyboard("a"))
    with pytest.raises(TelegramBadRequest) as unchanged:
        await bot.edit_message_text(
            "same", chat_id=1, message_id=message.message_id, reply_markup=keyboard("a")
        )
    assert unchanged.value.message == NOT_MODIFIED
    # Dropping the keyboard is a change; the edited message then has none.
    edited = await bot.edit_message_text("same", chat_id=1, message_id=message.message_id)
    assert isinstance(edited, Message)
    assert edited.reply_markup is None
    assert edited.edit_date
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=1, message_id=999)

    photo = await bot.send_photo(1, BufferedInputFile(PNG, "a.png"), caption="c")
    assert photo.photo
    assert photo.caption == "c"
    with pytest.raises(TelegramBadRequest, match="there is no text in the message to edit"):
        await bot.edit_message_text("x", chat_id=1, message_id=photo.message_id)
    recaptioned = await bot.edit_message_caption(
        chat_id=1, message_id=photo.message_id, caption="d"
    )
    assert isinstance(recaptioned, Message)
    assert recaptioned.caption == "d"
    swapped = await bot.edit_message_media(
        InputMediaPhoto(media=BufferedInputFile(b"new", "b.png"), caption="e"),
        chat_id=1,
        message_id=photo.message_id,
    )
    assert isinstance(swapped, Message)
    assert swapped.photo
    assert swapped.photo[-1].file_id != photo.photo[-1].file_id
    document = await bot.send_document(1, BufferedInputFile(b"%PDF", "invoice.pdf"))
    assert document.document
    assert document.document.file_name == "invoice.pdf"

    fake.fail_next("getChat", status=400, description="Bad Request: chat not found")
    with pytest.raises(TelegramBadRequest, match="chat not found"):
        await bot.get_chat(1)
    chat = await bot.get_chat(1)
    assert chat.type == "private"

    wrong = Bot("1:WRONG", session=AiohttpSession(api=bot.session.api))
    with pytest.raises(TelegramUnauthorizedError):
        await wrong.get_me()
    await wrong.session.close()

    too_long = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="x", callback_data="d" * 65)]]
    )
    with pytest.raises(TelegramBadRequest, match="BUTTON_DATA_INVALID"):
        await bot.send_message(1, "hi", reply_markup=too_long)


async def test_html_is_rendered_into_entities(bot: Bot) -> None:
    message = await bot.send_message(
        1, 'Pay <b>10 €</b> to <a href="https://x.io">🙂 us</a>', parse_mode="HTML"
    )
    assert message.text == "Pay 10 € to 🙂 us"
    assert [(e.type, e.offset, e.length) for e in message.entities or []] == [
        ("bold", 4, 4),
        ("text_link", 12, 5),  # the emoji counts 2 UTF-16 units
    ]


async def test_chat_administration(bot: Bot, fake: FakeTelegram) -> None:
    fake.add_chat(CHANNEL, title="Paid", username="paidchan")
    fake.set_bot_rights(CHANNEL)
    fake.set_member(CHANNEL, 1, "creator")
    admins = await bot.get_chat_administrators("@paidchan")
    assert sorted(a.user.id for a in admins) == [1, 4242]

    link = await bot.create_chat_invite_link(CHANNEL, name="sub-1", creates_join_request=True)
    assert link.invite_link.startswith("https://t.me/+")
    assert link.name == "sub-1"
    assert link.creates_join_request
    assert link.creator.id == 4242
    other = await bot.create_chat_invite_link(CHANNEL, member_limit=1, expire_date=2_000_000_000)
    assert other.invite_link != link.invite_link
    assert other.member_limit == 1
    assert other.expire_date is not None

    bob = fake.user(88, "Bob")
    request = fake.join_request(bob, CHANNEL, invite_link=link.invite_link)
    assert request["invite_link"]["name"] == "sub-1"
    assert await bot.approve_chat_join_request(CHANNEL, 88)
    with pytest.raises(TelegramBadRequest, match="HIDE_REQUESTER_MISSING"):
        await bot.approve_chat_join_request(CHANNEL, 88)
    assert isinstance(await bot.get_chat_member(CHANNEL, 88), ChatMemberMember)
    assert isinstance(await bot.get_chat_member(CHANNEL, 99), ChatMemberLeft)

    assert await bot.ban_chat_member(CHANNEL, 88)
    assert isinstance(await bot.get_chat_member(CHANNEL, 88), ChatMemberBanned)
    assert await bot.unban_chat_member(CHANNEL, 88, only_if_banned=True)
    assert isinstance(await bot.get_chat_member(CHANNEL, 88), ChatMemberLeft)
    revoked = await bot.revoke_chat_invite_link(CHANNEL, link.invite_link)
    assert revoked.is_revoked
    assert fake.invite_links(CHANNEL)[0]["is_revoked"]

    fake.set_bot_rights(CHANNEL, can_invite_users=False, can_restrict_members=False)
    with pytest.raises(TelegramBadRequest, match="not enough rights"):
        await bot.create_chat_invite_link(CHANNEL)
    with pytest.raises(TelegramBadRequest, match="not enough rights"):
        await bot.ban_chat_member(CHANNEL, 88)

    commands = [BotCommand(command="start", description="Start")]
    assert await bot.set_my_commands(commands)
    ru = [BotCommand(command="start", description="Начать")]
    await bot.set_my_commands(ru, scope=BotCommandScopeAllPrivateChats(), language_code="ru")
    assert [c.command for c in await bot.get_my_commands()] == ["start"]
    assert fake.commands("ru", {"type": "all_private_chats"}) == [
        {"command": "start", "description": "Начать"}
    ]
    assert await bot.send_chat_action(1, "typing")
    assert await bot.leave_chat(CHANNEL)


async def test_webhook_mode_records_the_webhook_and_builds_updates(
    bot: Bot, fake: FakeTelegram
) -> None:
    assert await bot.set_webhook("https://bot.example/tg", secret_token="s3cr3t")
    assert fake.webhook is not None
    assert fake.webhook["secret_token"] == "s3cr3t"
    assert (await bot.get_webhook_info()).url == "https://bot.example/tg"
    update = fake.text_update(fake.user(3), "/start x")
    assert fake.pending_updates == []  # built, not queued
    assert update["message"]["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]
    later = fake.make_update(message=update["message"])
    assert later["update_id"] > update["update_id"]
    with pytest.raises(TelegramBadRequest, match="unallowed characters"):
        await bot.set_webhook("https://bot.example/tg", secret_token="no spaces")
    assert await bot.delete_webhook()
    assert fake.webhook is None


def test_raw_http_shapes_params_and_long_polling(served: tuple[str, FakeTelegram]) -> None:
    base, fake = served
    api = f"{base}/bot{TOKEN}"
    with httpx.Client(timeout=10) as http:
        missing = http.post(f"{api}/sendCarrierPigeon")
        assert missing.status_code == 404
        assert missing.json() == {"ok": False, "error_code": 404, "description": "Not Found"}
        assert http.get(f"{base}/bot1:WRONG/getMe").status_code == 401
        me = http.get(f"{api}/getMe").json()  # what chainpay.startup reads
        assert me["ok"]
        assert me["result"]["username"] == "chainpay_fake_bot"

        markup = {"inline_keyboard": [[{"text": "a", "callback_data": "b"}]]}
        http.post(
            f"{api}/sendMessage",
            data={"chat_id": "5", "text": "123", "reply_markup": json.dumps(markup)},
        )
        http.post(f"{api}/sendmessage", json={"chat_id": 5, "text": "json"})
        http.get(f"{api}/sendMessage", params={"chat_id": "5", "text": "query"})
        http.post(
            f"{api}/sendDocument",
            data={"chat_id": "5", "document": "attach://f1"},
            files={"f1": ("r.pdf", b"%PDF\r\n--x", "application/pdf")},
        )
        texts = [c.params["text"] for c in fake.calls("sendMessage")]
        assert texts == ["123", "json", "query"]
        first = fake.calls("sendMessage")[0]
        assert first.params["chat_id"] == 5
        assert first.params["reply_markup"] == markup
        document = fake.wait_for("sendDocument")
        assert document.file("document") == {
            "filename": "r.pdf",
            "content_type": "application/pdf",
            "size": 9,
            "data": b"%PDF\r\n--x",
        }

        def feed_later() -> None:
            time.sleep(0.2)
            fake.send_text(fake.user(5), "hello")

        threading.Thread(target=feed_later).start()
        started = time.monotonic()
        held = http.post(f"{api}/getUpdates", data={"timeout": "30"}).json()
        assert 0.15 < time.monotonic() - started < 1.5
        [update] = held["result"]
        assert update["message"]["text"] == "hello"
        again = http.post(f"{api}/getUpdates", data={"offset": str(update["update_id"])})
        assert again.json()["result"] == [update]  # not confirmed yet
        confirm = http.post(f"{api}/getUpdates", data={"offset": str(update["update_id"] + 1)})
        assert confirm.json() == {"ok": True, "result": []}
        assert fake.pending_updates == []

        started = time.monotonic()
        empty = http.post(f"{api}/getUpdates", data={"timeout": "30"}).json()
        assert empty == {"ok": True, "result": []}
        assert time.monotonic() - started < 1.0  # capped by max_poll_seconds

        http.post(f"{api}/setWebhook", data={"url": "https://x.example/hook"})
        conflict = http.post(f"{api}/getUpdates")
        assert conflict.status_code == 409

    def act_later() -> None:
        time.sleep(0.1)
        httpx.post(f"{api}/sendChatAction", data={"chat_id": "5", "action": "typing"})

    threading.Thread(target=act_later).start()
    assert fake.wait_for("sendChatAction", lambda c: c.params["action"] == "typing", timeout=5)
    mark = fake.mark()
    with pytest.raises(AssertionError, match=r"sendMessage\(chat_id=5, text='123'\)"):
        fake.wait_for("sendPhoto", timeout=0.05)
    with pytest.raises(AssertionError, match="after call #"):
        fake.wait_for("sendMessage", timeout=0.05, after=mark)
    assert len(fake.wait_for_count("sendMessage", 3)) == 3
    assert [name for name, _ in fake.requests][:1] == ["sendCarrierPigeon"]
    fake.clear()
    assert fake.calls() == []


def test_the_server_stops_quickly_with_a_long_poll_in_flight() -> None:
    results: list[int] = []
    with fake_telegram(TOKEN) as (base, fake):
        assert fake.max_poll_seconds == 2.0

        def poll() -> None:
            answer = httpx.post(f"{base}/bot{TOKEN}/getUpdates", data={"timeout": "50"})
            results.append(answer.status_code)

        poller = threading.Thread(target=poll)
        poller.start()
        time.sleep(0.2)
        started = time.monotonic()
    assert time.monotonic() - started < 1.0
    poller.join(5)
    assert results == [200]


async def test_await_call_does_not_block_the_loop(fake: FakeTelegram) -> None:
    async def later() -> None:
        await asyncio.sleep(0.05)
        await asyncio.to_thread(fake._record, "getMe", {}, {}, 200, {"ok": True})

    task = asyncio.create_task(later())
    call = await fake.await_call("getMe", timeout=2)
    assert isinstance(call, Call)
    assert call.method == "getMe"
    await task
    with pytest.raises(AssertionError, match="getMe"):
        await fake.await_call("sendMessage", timeout=0.05)
