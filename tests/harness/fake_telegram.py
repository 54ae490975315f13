"""A fake Telegram Bot API server over real HTTP on loopback.

Why a server and not a mocked session: the bot's own code (aiogram 3's ``AiohttpSession``, its
form encoding, multipart uploads, ``check_response`` error mapping and the ``Dispatcher`` long
polling loop) is exactly what breaks in production, so tests drive the real client over real
HTTP and the fake answers with the shapes Telegram answers with. aiogram reaches it through
``AiohttpSession(api=TelegramAPIServer.from_base(base_url))``.

The fake keeps just enough state (sent messages, chat members, invite links, join requests,
commands, webhook) that follow-up calls behave like Telegram: edits can be "not modified",
approving a request that does not exist fails, a callback query carries the message as it is
now. Every request is recorded as a :class:`Call`; tests wait for calls from sync code
(:meth:`FakeTelegram.wait_for`) or from a running event loop (:meth:`FakeTelegram.await_call`).

Known simplifications: MarkdownV2/Markdown text is echoed unparsed (HTML is parsed into
entities); no automatic URL/mention entity detection; no file downloads (getFile); rights are
enforced only in chats where the bot's membership was told to the fake.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message as _MimeHeaders
from email.utils import collapse_rfc2231_value
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.harness.server import free_port

JSON = dict[str, Any]
Predicate = Callable[["Call"], bool]

NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
BLOCKED = "Forbidden: bot was blocked by the user"
QUERY_INVALID = "Bad Request: query is too old and response timeout expired or query ID is invalid"

# Form values always arrive as strings; these are real strings and must never be JSON-decoded
# (a message text "123" stays "123"). Everything else that parses as JSON is decoded, which turns
# chat_id "42" into 42 and reply_markup '{"inline_keyboard": ...}' into a dict.
_STRING_FIELDS = frozenset(
    {
        "text", "caption", "data", "description", "short_description", "name", "title", "url",
        "secret_token", "invite_link", "callback_query_id", "parse_mode", "action",
        "language_code", "inline_message_id", "query", "bio", "photo", "document", "video",
        "audio", "animation", "voice", "sticker", "thumbnail", "certificate", "ip_address",
        "emoji", "custom_title", "first_name", "last_name", "username", "message_effect_id",
        "business_connection_id", "file_id", "question", "explanation", "payload", "currency",
        "provider_token", "start_parameter",
    }
)  # fmt: skip

_HTML_ENTITY = {
    "b": "bold", "strong": "bold", "i": "italic", "em": "italic", "u": "underline",
    "ins": "underline", "s": "strikethrough", "strike": "strikethrough",
    "del": "strikethrough", "code": "code", "pre": "pre", "a": "text_link",
    "tg-spoiler": "spoiler", "span": "spoiler", "blockquote": "blockquote",
}  # fmt: skip

_ADMIN_RIGHTS = (
    "can_manage_chat", "can_delete_messages", "can_manage_video_chats", "can_restrict_members",
    "can_promote_members", "can_change_info", "can_invite_users", "can_post_stories",
    "can_edit_stories", "can_delete_stories", "can_send_welcome_messages",
)  # fmt: skip

_RESTRICTIONS = (
    "can_send_messages", "can_send_audios", "can_send_documents", "can_send_photos",
    "can_send_videos", "can_send_video_notes", "can_send_voice_notes", "can_send_polls",
    "can_send_other_messages", "can_add_web_page_previews", "can_react_to_messages",
    "can_edit_tag", "can_change_info", "can_invite_users", "can_pin_messages",
    "can_manage_topics",
)  # fmt: skip


def _utf16_len(text: str) -> int:
    """Telegram measures entity offsets in UTF-16 code units, not code points."""
    return len(text.encode("utf-16-le")) // 2


def _decode_value(key: str, value: Any) -> Any:
    if not isinstance(value, str) or key in _STRING_FIELDS or not value:
        return value
    if value[0] in '{["-0123456789' or value in ("true", "false", "null"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _parse_multipart(body: bytes, content_type: str) -> tuple[JSON, dict[str, JSON]]:
    """A small exact multipart/form-data parser (python-multipart is not a dependency)."""
    headers = _MimeHeaders()
    headers["content-type"] = content_type
    boundary = headers.get_param("boundary")
    if not isinstance(boundary, str):
        raise ValueError("multipart body without a boundary")
    fields: JSON = {}
    files: dict[str, JSON] = {}
    delimiter = b"\r\n--" + boundary.encode()
    for part in (b"\r\n" + body).split(delimiter)[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
        part_headers = _MimeHeaders()
        for line in head.decode("utf-8", "replace").split("\r\n"):
            name, _, value = line.partition(":")
            if name:
                part_headers[name.strip()] = value.strip()
        raw_name = part_headers.get_param("name", header="content-disposition")
        if raw_name is None:
            continue
        name = collapse_rfc2231_value(raw_name)
        filename = part_headers.get_filename()
        if filename is None:
            fields[name] = data.decode(part_headers.get_content_charset() or "utf-8")
        else:
            files[name] = {
                "filename": filename,
                "content_type": part_headers.get_content_type(),
                "size": len(data),
                "data": data,
            }
    return fields, files


async def _read_params(request: Request) -> tuple[JSON, dict[str, JSON]]:
    """Merge query string and body (JSON, urlencoded or multipart) the way Telegram does."""
    raw: JSON = dict(request.query_params.multi_items())
    files: dict[str, JSON] = {}
    body = await request.body()
    content_type = request.headers.get("content-type", "")
    mime = content_type.split(";")[0].strip().lower()
    if body:
        if mime == "application/json":
            data = json.loads(body)
            if isinstance(data, dict):
                raw.update(data)
        elif mime == "application/x-www-form-urlencoded":
            raw.update(parse_qsl(body.decode(), keep_blank_values=True))
        elif mime == "multipart/form-data":
            fields, files = _parse_multipart(body, content_type)
            raw.update(fields)
    return {key: _decode_value(key, value) for key, value in raw.items()}, files


class _HtmlText(HTMLParser):
    """Turns parse_mode=HTML text into (plain text, entities), as Telegram renders it."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0
        self.open: list[tuple[str, int, dict[str, str | None]]] = []
        self.entities: list[JSON] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open.append((tag, self.length, dict(attrs)))

    def handle_endtag(self, tag: str) -> None:
        for index in range(len(self.open) - 1, -1, -1):
            if self.open[index][0] == tag:
                _, offset, attrs = self.open.pop(index)
                kind = _HTML_ENTITY.get(tag)
                if kind and self.length > offset:
                    entity: JSON = {"type": kind, "offset": offset, "length": self.length - offset}
                    if tag == "a":
                        entity["url"] = attrs.get("href") or ""
                    self.entities.append(entity)
                return

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self.length += _utf16_len(data)


class TelegramError(Exception):
    """Raised by a method handler to answer an error exactly as Telegram shapes it."""

    def __init__(self, status: int, description: str, parameters: JSON | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.parameters = status, description, parameters

    def body(self) -> JSON:
        answer: JSON = {"ok": False, "error_code": self.status, "description": self.description}
        if self.parameters:
            answer["parameters"] = self.parameters
        return answer


def _bad(description: str) -> TelegramError:
    return TelegramError(400, f"Bad Request: {description}")


@dataclass(frozen=True)
class Call:
    """One request the fake answered: what the bot asked and what it got back.

    ``params`` are decoded (ints, bools, dicts for reply_markup); ``files`` maps multipart field
    names to ``{"filename", "content_type", "size", "data"}``; ``response`` is the JSON answered.
    """

    method: str
    params: JSON
    files: dict[str, JSON]
    at: float
    status: int = 200
    response: Any = None
    seq: int = 0

    def file(self, param: str) -> JSON | None:
        """The uploaded file a parameter refers to (``photo="attach://x"`` or a field name)."""
        value = self.params.get(param)
        if isinstance(value, str) and value.startswith("attach://"):
            return self.files.get(value.removeprefix("attach://"))
        return self.files.get(param)

    @property
    def result(self) -> Any:
        """The ``result`` of a successful answer (the Message of a send, ...)."""
        return self.response.get("result") if isinstance(self.response, dict) else None

    def __str__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.params.items() if k != "reply_markup")
        text = f"{self.method}({shown})"
        text = text if len(text) <= 100 else text[:97] + "...)"
        return text if self.status == 200 else f"{text} -> {self.status}"


@dataclass(frozen=True)
class User:
    """A Telegram user a test plays; ``as_dict`` is the User object updates carry."""

    id: int
    first_name: str = "Test"
    language_code: str | None = "en"
    username: str | None = None
    last_name: str | None = None

    def as_dict(self) -> JSON:
        user: JSON = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            if getattr(self, key) is not None:
                user[key] = getattr(self, key)
        return user

    def chat(self) -> JSON:
        """The private chat with this user, as it appears in messages."""
        chat: JSON = {"id": self.id, "type": "private", "first_name": self.first_name}
        if self.last_name is not None:
            chat["last_name"] = self.last_name
        if self.username is not None:
            chat["username"] = self.username
        return chat


@dataclass
class _Stored:
    """A message's current state; ``content`` is what "not modified" compares."""

    message: JSON
    kind: str
    content: tuple[Any, ...]
    markup: Any
    from_bot: bool


@dataclass
class _Failure:
    method: str
    error: TelegramError
    remaining: int


@dataclass
class FakeTelegram:
    """State and behaviour of the fake Bot API; all public methods are thread-safe."""

    token: str
    username: str = "chainpay_fake_bot"
    first_name: str = "Fake"
    max_poll_seconds: float = 2.0
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _cond: threading.Condition = field(init=False, repr=False)

    def __post_init__(self) -> None:
        prefix = self.token.split(":", 1)[0]
        self.bot_id = int(prefix) if prefix.isdigit() else 4242
        self._cond = threading.Condition(self._lock)
        self._calls: list[Call] = []
        self._updates: list[JSON] = []
        self._update_ids = itertools.count(100_001)
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._messages: dict[tuple[int, int], _Stored] = {}
        self._users: dict[int, User] = {}
        self._chats: dict[int, JSON] = {}
        self._members: dict[tuple[int, int], JSON] = {}
        self._pending_joins: set[tuple[int, int]] = set()
        self._invite_links: dict[str, tuple[int, JSON]] = {}
        self._callbacks: set[str] = set()
        self._callback_ids = itertools.count(4_610_000_000_000_000_001)
        self._commands: dict[tuple[str, str], list[JSON]] = {}
        self._failures: list[_Failure] = []
        self._blocked: set[int] = set()
        self._files: dict[str, JSON] = {}
        self._webhook: JSON | None = None
        self._poll_generation = 0
        self._closing = False
        self._handlers: dict[str, Callable[[JSON, dict[str, JSON]], Any]] = {
            "getMe": lambda p, f: self.me(full=True),
            "sendMessage": self._send_message,
            "sendPhoto": self._send_photo,
            "sendDocument": self._send_document,
            "editMessageText": self._edit_text,
            "editMessageCaption": self._edit_caption,
            "editMessageReplyMarkup": self._edit_markup,
            "editMessageMedia": self._edit_media,
            "deleteMessage": self._delete_message,
            "answerCallbackQuery": self._answer_callback,
            "setMyCommands": self._set_commands,
            "getMyCommands": self._get_commands,
            "deleteMyCommands": self._delete_commands,
            "setWebhook": self._set_webhook,
            "deleteWebhook": self._delete_webhook,
            "getWebhookInfo": self._webhook_info,
            "getChat": self._get_chat,
            "getChatMember": self._get_chat_member,
            "getChatAdministrators": self._get_admins,
            "createChatInviteLink": self._create_link,
            "editChatInviteLink": self._edit_link,
            "revokeChatInviteLink": self._revoke_link,
            "exportChatInviteLink": self._export_link,
            "approveChatJoinRequest": self._approve,
            "declineChatJoinRequest": self._decline,
            "banChatMember": self._ban,
            "unbanChatMember": self._unban,
            "leaveChat": self._leave,
        }
        for name in (
            "sendChatAction", "setMyDescription", "setMyShortDescription", "setMyName",
            "setChatMenuButton", "setMyDefaultAdministratorRights", "pinChatMessage",
            "unpinChatMessage",
        ):  # fmt: skip
            self._handlers[name] = self._true
        self._canonical = {name.lower(): name for name in [*self._handlers, "getUpdates"]}

    # ----------------------------------------------------------------------- recorded calls

    @property
    def requests(self) -> list[tuple[str, JSON]]:
        """``(method, params)`` pairs: the original, minimal view (kept for older tests)."""
        return [(call.method, call.params) for call in self.calls()]

    def calls(self, method: str | None = None) -> list[Call]:
        """Every recorded call, oldest first, optionally only one method's."""
        with self._lock:
            return [c for c in self._calls if method is None or c.method == method]

    def last(self, method: str) -> Call:
        """The newest call of a method; AssertionError if there is none."""
        found = self.calls(method)
        if not found:
            raise AssertionError(f"no {method} call; recorded: {self._summary()}")
        return found[-1]

    def mark(self) -> int:
        """A position in the call log, for ``after=``: "only calls made from now on"."""
        with self._lock:
            return len(self._calls)

    def clear(self) -> None:
        """Forget recorded calls (state such as messages and members is kept)."""
        with self._lock:
            self._calls.clear()

    def _matching(self, method: str, predicate: Predicate | None, after: int) -> list[Call]:
        found = []
        for call in self._calls[after:]:
            if call.method != method:
                continue
            try:
                if predicate is None or predicate(call):
                    found.append(call)
            except (KeyError, IndexError, TypeError, AttributeError):
                continue  # a predicate reading a parameter this call does not have
        return found

    def _summary(self) -> str:
        parts: list[str] = []
        for method, group in itertools.groupby(self._calls, key=lambda c: c.method):
            calls = list(group)
            if method == "getUpdates":
                parts.append(f"getUpdates x{len(calls)}")
            else:
                parts.extend(f"#{c.seq} {c}" for c in calls)
        return "[" + "; ".join(parts) + "]" if parts else "[] (no calls at all)"

    def _timeout(self, what: str, timeout: float, after: int) -> AssertionError:
        since = f" after call #{after}" if after else ""
        return AssertionError(
            f"timed out after {timeout}s waiting for {what}{since}; recorded: {self._summary()}"
        )

    def wait_for(
        self,
        method: str,
        predicate: Predicate | None = None,
        timeout: float = 10.0,
        *,
        after: int = 0,
    ) -> Call:
        """Block until a matching call is recorded (or already was); returns the first one.

        For sync tests only: called on the event loop that runs the bot it would freeze the
        bot, so async tests use :meth:`await_call`.
        """
        return self.wait_for_count(method, 1, predicate, timeout, after=after)[0]

    def wait_for_count(
        self,
        method: str,
        n: int,
        predicate: Predicate | None = None,
        timeout: float = 10.0,
        *,
        after: int = 0,
    ) -> list[Call]:
        """Block until at least ``n`` matching calls are recorded; returns all of them."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = self._matching(method, predicate, after)
                if len(found) >= n:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise self._timeout(f"{n} x {method}", timeout, after)
                self._cond.wait(remaining)

    async def await_call(
        self,
        method: str,
        predicate: Predicate | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - the same signature as wait_for
        *,
        after: int = 0,
    ) -> Call:
        """Like :meth:`wait_for`, but yields to the event loop while waiting."""
        return (await self.await_count(method, 1, predicate, timeout, after=after))[0]

    async def await_count(
        self,
        method: str,
        n: int,
        predicate: Predicate | None = None,
        timeout: float = 10.0,  # noqa: ASYNC109 - the same signature as wait_for_count
        *,
        after: int = 0,
    ) -> list[Call]:
        """Like :meth:`wait_for_count`, without blocking the loop (polls every 10 ms)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                found = self._matching(method, predicate, after)
                if len(found) >= n:
                    return found
                if time.monotonic() >= deadline:
                    raise self._timeout(f"{n} x {method}", timeout, after)
            await asyncio.sleep(0.01)

    def _record(
        self, method: str, params: JSON, files: dict[str, JSON], status: int, body: Any
    ) -> None:
        with self._cond:
            call = Call(method, params, files, time.time(), status, body, len(self._calls))
            self._calls.append(call)
            self._cond.notify_all()

    # ------------------------------------------------------------------ configuration, state

    def me(self, *, full: bool = False) -> JSON:
        """The bot's User object (``full``: as getMe answers, with the capability flags)."""
        user: JSON = {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.first_name,
            "username": self.username,
        }
        if full:
            user.update(
                can_join_groups=True,
                can_read_all_group_messages=False,
                supports_inline_queries=False,
                can_connect_to_business=False,
                has_main_web_app=False,
            )
        return user

    def user(
        self,
        id: int,
        first_name: str = "Test",
        language_code: str | None = "en",
        username: str | None = None,
        last_name: str | None = None,
    ) -> User:
        """A user to play; remembered so the bot's private chat with them has their name."""
        user = User(id, first_name, language_code, username, last_name)
        with self._lock:
            self._users[id] = user
        return user

    def add_chat(
        self,
        chat_id: int,
        type: str = "channel",
        title: str | None = None,
        username: str | None = None,
    ) -> JSON:
        """Declare a group/supergroup/channel (its title, type, @username) for messages/getChat."""
        chat: JSON = {"id": chat_id, "type": type, "title": title or f"Chat {chat_id}"}
        if username is not None:
            chat["username"] = username
        with self._lock:
            self._chats[chat_id] = chat
        return dict(chat)

    def chat(self, chat_id: int) -> JSON:
        """The Chat object messages in ``chat_id`` carry (declared, a known user, or guessed)."""
        with self._lock:
            if chat_id in self._chats:
                return dict(self._chats[chat_id])
            if chat_id > 0:
                return (self._users.get(chat_id) or User(chat_id)).chat()
            kind = "supergroup" if str(chat_id).startswith("-100") else "group"
            return {"id": chat_id, "type": kind, "title": f"Chat {chat_id}"}

    def _user_dict(self, user_id: int) -> JSON:
        if user_id == self.bot_id:
            return self.me()
        return (self._users.get(user_id) or User(user_id, language_code=None)).as_dict()

    def _member(self, user_id: int, status: str, **extra: Any) -> JSON:
        member: JSON = {"status": status, "user": self._user_dict(user_id)}
        if status == "creator":
            member["is_anonymous"] = False
        elif status == "administrator":
            member.update(can_be_edited=False, is_anonymous=False)
            member.update(dict.fromkeys(_ADMIN_RIGHTS, False), can_manage_chat=True)
        elif status == "restricted":
            member.update(dict.fromkeys(_RESTRICTIONS, False), is_member=True, until_date=0)
        elif status == "kicked":
            member["until_date"] = 0
        elif status not in ("member", "left"):
            raise ValueError(f"unknown chat member status {status!r}")
        member.update(extra)
        return member

    def set_member(self, chat_id: int, user_id: int, status: str, **fields: Any) -> None:
        """What getChatMember answers for a user ("creator", "administrator", "member",
        "restricted", "left", "kicked"); extra fields (rights, until_date) override defaults."""
        with self._lock:
            self._members[(chat_id, user_id)] = self._member(user_id, status, **fields)

    def set_bot_rights(
        self,
        chat_id: int,
        can_invite_users: bool = True,
        can_restrict_members: bool = True,
        status: str = "administrator",
        **rights: Any,
    ) -> None:
        """The bot's own membership in a chat. Once set, the fake enforces it: creating invite
        links and approving requests need can_invite_users, bans need can_restrict_members."""
        if status == "administrator":
            rights.update(
                can_invite_users=can_invite_users, can_restrict_members=can_restrict_members
            )
        self.set_member(chat_id, self.bot_id, status, **rights)

    def member(self, chat_id: int, user_id: int) -> JSON:
        """The ChatMember object getChatMember would answer now."""
        with self._lock:
            return dict(self._members.get((chat_id, user_id)) or self._member(user_id, "left"))

    def message(self, chat_id: int, message_id: int) -> JSON:
        """A message's current state (after edits); KeyError if unknown or deleted."""
        with self._lock:
            return json.loads(json.dumps(self._messages[(chat_id, message_id)].message))

    def messages(self, chat_id: int) -> list[JSON]:
        """Current state of every live message in a chat, both directions, oldest first."""
        with self._lock:
            keys = sorted(key for key in self._messages if key[0] == chat_id)
            return [self.message(*key) for key in keys]

    def commands(self, language_code: str = "", scope: JSON | None = None) -> list[JSON]:
        """The commands last set for a language and scope (as getMyCommands answers them)."""
        with self._lock:
            return list(self._commands.get((self._scope_key(scope), language_code), []))

    def invite_links(self, chat_id: int | None = None) -> list[JSON]:
        """Invite links the bot created (current state: revoked or not), oldest first."""
        with self._lock:
            return [dict(link) for c, link in self._invite_links.values() if chat_id in (None, c)]

    @property
    def pending_join_requests(self) -> set[tuple[int, int]]:
        """``(chat_id, user_id)`` pairs fed as join requests and not yet approved/declined."""
        with self._lock:
            return set(self._pending_joins)

    @property
    def webhook(self) -> JSON | None:
        """The last setWebhook parameters (url, secret_token, ...), None when none is set."""
        with self._lock:
            return dict(self._webhook) if self._webhook else None

    @property
    def pending_updates(self) -> list[JSON]:
        """Queued updates not yet confirmed by a getUpdates offset."""
        with self._lock:
            return list(self._updates)

    def block(self, user_id: int) -> None:
        """The user blocked the bot: sends/edits to their chat answer 403."""
        with self._lock:
            self._blocked.add(user_id)

    def unblock(self, user_id: int) -> None:
        """The user unblocked the bot again."""
        with self._lock:
            self._blocked.discard(user_id)

    def fail_next(
        self,
        method: str,
        status: int = 429,
        retry_after: int = 1,
        description: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` with an error. 429 carries
        ``parameters.retry_after`` (aiogram raises TelegramRetryAfter); other statuses take
        a description such as "Bad Request: chat not found" ("*" matches any method)."""
        defaults = {
            400: "Bad Request: injected failure",
            403: "Forbidden: injected failure",
            409: "Conflict: injected failure",
            429: f"Too Many Requests: retry after {retry_after}",
        }
        text = description or defaults.get(status, "Internal Server Error")
        parameters = {"retry_after": retry_after} if status == 429 else None
        with self._lock:
            self._failures.append(_Failure(method, TelegramError(status, text, parameters), times))

    def _take_failure(self, method: str) -> TelegramError | None:
        for failure in self._failures:
            if failure.method in (method, "*"):
                failure.remaining -= 1
                if failure.remaining <= 0:
                    self._failures.remove(failure)
                return failure.error
        return None

    # ----------------------------------------------------------------------- feeding updates

    def make_update(self, **payload: Any) -> JSON:
        """Stamp an update (``message=...``, ``callback_query=...``) with the next update_id
        without queueing it: for POSTing to a webhook. Callback ids and join requests in it are
        remembered so answering/approving them works."""
        with self._lock:
            update: JSON = {"update_id": next(self._update_ids), **payload}
            if query := payload.get("callback_query"):
                self._callbacks.add(str(query["id"]))
            if join := payload.get("chat_join_request"):
                self._pending_joins.add((join["chat"]["id"], join["from"]["id"]))
            return update

    def feed(self, update: JSON) -> JSON:
        """Queue an update for getUpdates (stamping an update_id if it has none)."""
        with self._cond:
            if "update_id" not in update:
                update = self.make_update(**update)
            self._updates.append(update)
            self._cond.notify_all()
        return update

    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _chat_arg(self, user: User, chat: JSON | int | None) -> JSON:
        if chat is None:
            return user.chat()
        return self.chat(chat) if isinstance(chat, int) else dict(chat)

    def text_update(self, user: User, text: str, chat: JSON | int | None = None) -> JSON:
        """A message update from ``user`` (private chat by default); the message is stored so
        the bot can reply to it. Commands get their bot_command entity, as Telegram adds."""
        with self._lock:
            self._users.setdefault(user.id, user)
            chat_obj = self._chat_arg(user, chat)
            message: JSON = {
                "message_id": self._next_message_id(chat_obj["id"]),
                "from": user.as_dict(),
                "chat": chat_obj,
                "date": int(time.time()),
                "text": text,
            }
            if text.startswith("/"):
                command = text.split()[0] if text.split() else text
                message["entities"] = [
                    {"type": "bot_command", "offset": 0, "length": _utf16_len(command)}
                ]
            self._store(message, "text", ("text", text, None), None, from_bot=False)
            return self.make_update(message=message)

    def send_text(self, user: User, text: str, chat: JSON | int | None = None) -> JSON:
        """The user sends ``text`` (e.g. "/start payload"); returns the message dict."""
        return self.feed(self.text_update(user, text, chat))["message"]

    def callback_update(
        self, user: User, message_id: int, data: str, chat_id: int | None = None
    ) -> JSON:
        """A callback_query update: ``user`` pressed a button of a message (the message object
        is the current stored state, as Telegram sends it)."""
        chat_id = user.id if chat_id is None else chat_id
        with self._lock:
            stored = self._messages.get((chat_id, message_id))
            if stored is None:
                known = sorted(k for k in self._messages if k[0] == chat_id)
                raise LookupError(f"no message {message_id} in chat {chat_id}; known: {known}")
            query: JSON = {
                "id": str(next(self._callback_ids)),
                "from": user.as_dict(),
                "message": json.loads(json.dumps(stored.message)),
                "chat_instance": str(abs(chat_id) * 7919 + 17),
                "data": data,
            }
            return self.make_update(callback_query=query)

    def press(self, user: User, message_id: int, data: str, chat_id: int | None = None) -> str:
        """The user presses an inline button; returns the callback query id."""
        update = self.feed(self.callback_update(user, message_id, data, chat_id))
        return str(update["callback_query"]["id"])

    def join_request_update(
        self, user: User, chat_id: int, invite_link: str | JSON | None = None
    ) -> JSON:
        """A chat_join_request update; the request becomes pending (approve/decline work)."""
        with self._lock:
            self._users.setdefault(user.id, user)
            request: JSON = {
                "chat": self.chat(chat_id),
                "from": user.as_dict(),
                "user_chat_id": user.id,
                "date": int(time.time()),
            }
            if isinstance(invite_link, str):
                known = self._invite_links.get(invite_link)
                request["invite_link"] = dict(known[1]) if known else {
                    "invite_link": invite_link, "creator": self.me(), "creates_join_request": True,
                    "is_primary": False, "is_revoked": False,
                }  # fmt: skip
            elif invite_link is not None:
                request["invite_link"] = invite_link
            return self.make_update(chat_join_request=request)

    def join_request(self, user: User, chat_id: int, invite_link: str | JSON | None = None) -> JSON:
        """The user asks to join ``chat_id`` (through one of the bot's links, if given)."""
        return self.feed(self.join_request_update(user, chat_id, invite_link))["chat_join_request"]

    def my_chat_member_update(
        self,
        chat_id: int,
        status: str = "administrator",
        old_status: str = "left",
        by: User | None = None,
        **rights: Any,
    ) -> JSON:
        """A my_chat_member update (e.g. the bot made admin in a channel); also sets the
        bot's membership so later getChatMember/rights checks agree."""
        by = by or User(1, "Owner")
        with self._lock:
            old = self._member(self.bot_id, old_status)
            if status == "administrator":
                rights = {"can_invite_users": True, "can_restrict_members": True, **rights}
            self.set_member(chat_id, self.bot_id, status, **rights)
            change: JSON = {
                "chat": self.chat(chat_id),
                "from": by.as_dict(),
                "date": int(time.time()),
                "old_chat_member": old,
                "new_chat_member": self.member(chat_id, self.bot_id),
            }
            return self.make_update(my_chat_member=change)

    def my_chat_member(
        self,
        chat_id: int,
        status: str = "administrator",
        old_status: str = "left",
        by: User | None = None,
        **rights: Any,
    ) -> JSON:
        """Queue :meth:`my_chat_member_update`; returns the update."""
        return self.feed(self.my_chat_member_update(chat_id, status, old_status, by, **rights))

    # --------------------------------------------------------------------------- the server

    def app(self) -> Starlette:
        """The ASGI app; :func:`fake_telegram` serves it with uvicorn."""
        return Starlette(
            routes=[Route("/bot{token}/{method}", self._endpoint, methods=["GET", "POST"])]
        )

    async def _endpoint(self, request: Request) -> JSONResponse:
        token, name = request.path_params["token"], request.path_params["method"]
        try:
            params, files = await _read_params(request)
        except ValueError:
            params, files = {}, {}
        method = self._canonical.get(name.lower())
        if token != self.token:
            status, body = 401, TelegramError(401, "Unauthorized").body()
        elif method is None:
            status, body = 404, TelegramError(404, "Not Found").body()
        elif method == "getUpdates":
            status, body = await self._get_updates(params)
        else:
            status, body = self._dispatch(method, params, files)
        self._record(method or name, params, files, status, body)
        return JSONResponse(body, status_code=status)

    def _dispatch(self, method: str, params: JSON, files: dict[str, JSON]) -> tuple[int, JSON]:
        with self._lock:
            try:
                if error := self._take_failure(method):
                    raise error
                if method.startswith(("send", "edit", "copy", "forward")):
                    chat_id = params.get("chat_id")
                    if isinstance(chat_id, int) and chat_id in self._blocked:
                        raise TelegramError(403, BLOCKED)
                result = self._handlers[method](params, files)
            except TelegramError as error:
                return error.status, error.body()
            body: JSON = {"ok": True, "result": result}
            if method == "setWebhook":
                body["description"] = "Webhook was set" if self._webhook else "Webhook was deleted"
            elif method == "deleteWebhook":
                body["description"] = "Webhook was deleted"
            return 200, body

    async def _get_updates(self, params: JSON) -> tuple[int, JSON]:
        """Long polling: hold the request until an update arrives, the (capped) timeout ends,
        a newer getUpdates supersedes this one (409, as Telegram), or the server closes."""
        with self._lock:
            if error := self._take_failure("getUpdates"):
                return error.status, error.body()
            if self._webhook:
                return 409, TelegramError(
                    409,
                    "Conflict: can't use getUpdates method while webhook is active; "
                    "use deleteWebhook to delete the webhook first",
                ).body()
            self._poll_generation += 1
            generation = self._poll_generation
        offset = int(params.get("offset") or 0)
        limit = min(max(int(params.get("limit") or 100), 1), 100)
        timeout = min(float(params.get("timeout") or 0), self.max_poll_seconds)
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                if offset > 0:
                    self._updates = [u for u in self._updates if u["update_id"] >= offset]
                elif offset < 0:
                    self._updates = self._updates[offset:]
                if generation != self._poll_generation:
                    return 409, TelegramError(
                        409,
                        "Conflict: terminated by other getUpdates request; "
                        "make sure that only one bot instance is running",
                    ).body()
                ready = self._updates[:limit]
                if ready or self._closing or time.monotonic() >= deadline:
                    return 200, {"ok": True, "result": ready}
            await asyncio.sleep(0.01)

    # -------------------------------------------------------------------- method handlers

    @staticmethod
    def _true(params: JSON, files: dict[str, JSON]) -> bool:
        return True

    def _chat_id(self, params: JSON, key: str = "chat_id") -> int:
        value = params.get(key)
        if isinstance(value, bool) or value in (None, ""):
            raise _bad(f"{key} is empty")
        if isinstance(value, int):
            return value
        if isinstance(value, str) and value.startswith("@"):
            for chat in self._chats.values():
                if chat.get("username", "").lower() == value[1:].lower():
                    return int(chat["id"])
        raise _bad("chat not found")

    def _int(self, params: JSON, key: str) -> int:
        value = params.get(key)
        if not isinstance(value, int) or isinstance(value, bool):
            raise _bad(f"{key} is empty" if value is None else f"invalid {key} specified")
        return value

    def _render(self, text: Any, parse_mode: Any, entities: Any) -> tuple[str, list[JSON] | None]:
        text = "" if text is None else str(text)
        if isinstance(entities, list):
            return text, entities or None
        if isinstance(parse_mode, str) and parse_mode.lower() == "html":
            parser = _HtmlText()
            parser.feed(text)
            parser.close()
            found = sorted(parser.entities, key=lambda e: (e["offset"], -e["length"]))
            return "".join(parser.parts), found or None
        return text, None

    def _render_text(self, params: JSON) -> tuple[str, list[JSON] | None]:
        text, entities = self._render(
            params.get("text"), params.get("parse_mode"), params.get("entities")
        )
        if not text.strip():
            raise _bad("message text is empty")
        if _utf16_len(text) > 4096:
            raise _bad("message is too long")
        return text, entities

    def _render_caption(self, params: JSON) -> tuple[str, list[JSON] | None]:
        caption, entities = self._render(
            params.get("caption"), params.get("parse_mode"), params.get("caption_entities")
        )
        if _utf16_len(caption) > 1024:
            raise _bad("message caption is too long")
        return caption, entities

    @staticmethod
    def _check_markup(markup: Any) -> Any:
        """Reject inline keyboards Telegram rejects (the bugs worth catching in tests)."""
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            for row in markup["inline_keyboard"]:
                for button in row:
                    if len(button) < 2:
                        raise _bad(
                            "can't parse inline keyboard button: "
                            "Text buttons are unallowed in the inline keyboard"
                        )
                    data = button.get("callback_data")
                    if data is not None and not 1 <= len(str(data).encode()) <= 64:
                        raise _bad("BUTTON_DATA_INVALID")
        return markup

    def _store(
        self, message: JSON, kind: str, content: tuple[Any, ...], markup: Any, from_bot: bool
    ) -> None:
        stored = _Stored(message, kind, content, markup, from_bot)
        self._messages[(message["chat"]["id"], message["message_id"])] = stored

    def _apply(
        self, stored: _Stored, kind: str, content: tuple[Any, ...], body: JSON, markup: Any
    ) -> JSON:
        message = {k: v for k, v in stored.message.items() if k not in _BODY_KEYS}
        message.update(body)
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup
        message["edit_date"] = int(time.time())
        stored.message, stored.kind, stored.content, stored.markup = message, kind, content, markup
        return json.loads(json.dumps(message))

    def _new_message(self, params: JSON, kind: str, content: tuple[Any, ...], body: JSON) -> JSON:
        chat = self.chat(self._chat_id(params))
        markup = self._check_markup(params.get("reply_markup"))
        message: JSON = {"message_id": self._next_message_id(chat["id"])}
        if chat["type"] == "channel":
            message["sender_chat"] = chat
        else:
            message["from"] = self.me()
        message.update(chat=chat, date=int(time.time()), **body)
        if isinstance(markup, dict) and "inline_keyboard" in markup:
            message["reply_markup"] = markup  # only inline keyboards are echoed by Telegram
        self._store(message, kind, content, markup, from_bot=True)
        return json.loads(json.dumps(message))

    @staticmethod
    def _text_body(text: str, entities: list[JSON] | None, key: str = "text") -> JSON:
        body: JSON = {key: text}
        if entities:
            body["entities" if key == "text" else "caption_entities"] = entities
        return body

    def _send_message(self, params: JSON, files: dict[str, JSON]) -> JSON:
        text, entities = self._render_text(params)
        return self._new_message(
            params, "text", ("text", text, entities), self._text_body(text, entities)
        )

    def _upload(self, value: Any, files: dict[str, JSON], kind: str) -> JSON:
        """The stored file a media parameter names: a new upload, a known file_id, or a URL."""
        if isinstance(value, str) and value.startswith("attach://"):
            upload = files.get(value.removeprefix("attach://"))
            if upload is None:
                raise _bad("wrong file identifier/HTTP URL specified")
            upload = {k: v for k, v in upload.items() if k != "data"}
        elif isinstance(value, str) and value in self._files:
            return self._files[value]
        elif isinstance(value, str) and value.startswith(("http://", "https://")):
            upload = {"filename": value.rsplit("/", 1)[-1], "content_type": None, "size": 4096}
        else:
            raise _bad("wrong file identifier/HTTP URL specified")
        file_id = ("AgACAgIAAxk" if kind == "photo" else "BQACAgIAAxk") + secrets.token_urlsafe(24)
        entry = {"file_id": file_id, "file_unique_id": secrets.token_urlsafe(8), **upload}
        self._files[file_id] = entry
        return entry

    @staticmethod
    def _media_body(kind: str, entry: JSON) -> JSON:
        if kind == "photo":
            size = int(entry.get("size") or 0)
            small = {
                "file_id": entry["file_id"] + "-s", "file_unique_id": entry["file_unique_id"] + "s",
                "width": 90, "height": 90, "file_size": min(size, 1500),
            }  # fmt: skip
            big = {
                "file_id": entry["file_id"], "file_unique_id": entry["file_unique_id"],
                "width": 800, "height": 800, "file_size": size,
            }  # fmt: skip
            return {"photo": [small, big]}
        document: JSON = {"file_id": entry["file_id"], "file_unique_id": entry["file_unique_id"]}
        if entry.get("filename"):
            document["file_name"] = entry["filename"]
        if entry.get("content_type"):
            document["mime_type"] = entry["content_type"]
        if entry.get("size"):
            document["file_size"] = entry["size"]
        return {"document": document}

    def _send_media(self, kind: str, params: JSON, files: dict[str, JSON]) -> JSON:
        self._chat_id(params)  # a missing chat is reported before a missing file
        caption, entities = self._render_caption(params)
        entry = self._upload(params.get(kind), files, kind)
        body = self._media_body(kind, entry)
        if caption:
            body.update(self._text_body(caption, entities, "caption"))
        content = (kind, entry["file_id"], caption, entities)
        return self._new_message(params, kind, content, body)

    def _send_photo(self, params: JSON, files: dict[str, JSON]) -> JSON:
        return self._send_media("photo", params, files)

    def _send_document(self, params: JSON, files: dict[str, JSON]) -> JSON:
        return self._send_media("document", params, files)

    def _edit_target(self, params: JSON) -> _Stored | None:
        if params.get("inline_message_id"):
            return None
        chat_id = self._chat_id(params)
        message_id = self._int(params, "message_id")
        stored = self._messages.get((chat_id, message_id))
        if stored is None:
            raise _bad("message to edit not found")
        if not stored.from_bot:
            raise _bad("message can't be edited")
        return stored

    def _edit(
        self, stored: _Stored, kind: str, content: tuple[Any, ...], body: JSON, params: JSON
    ) -> JSON:
        markup = self._check_markup(params.get("reply_markup"))
        if content == stored.content and markup == stored.markup:
            raise TelegramError(400, NOT_MODIFIED)
        return self._apply(stored, kind, content, body, markup)

    def _edit_text(self, params: JSON, files: dict[str, JSON]) -> JSON | bool:
        text, entities = self._render_text(params)
        stored = self._edit_target(params)
        if stored is None:
            return True
        if stored.kind != "text":
            raise _bad("there is no text in the message to edit")
        content = ("text", text, entities)
        return self._edit(stored, "text", content, self._text_body(text, entities), params)

    def _edit_caption(self, params: JSON, files: dict[str, JSON]) -> JSON | bool:
        caption, entities = self._render_caption(params)
        stored = self._edit_target(params)
        if stored is None:
            return True
        if stored.kind == "text":
            raise _bad("there is no caption in the message to edit")
        body = {stored.kind: stored.message[stored.kind]}
        if caption:
            body.update(self._text_body(caption, entities, "caption"))
        content = (stored.kind, stored.content[1], caption, entities)
        return self._edit(stored, stored.kind, content, body, params)

    def _edit_markup(self, params: JSON, files: dict[str, JSON]) -> JSON | bool:
        stored = self._edit_target(params)
        if stored is None:
            return True
        body = {k: v for k, v in stored.message.items() if k in _BODY_KEYS - {"reply_markup"}}
        return self._edit(stored, stored.kind, stored.content, body, params)

    def _edit_media(self, params: JSON, files: dict[str, JSON]) -> JSON | bool:
        media = params.get("media")
        if not isinstance(media, dict) or media.get("type") not in ("photo", "document"):
            raise _bad("can't parse InputMedia: media type not supported by the fake")
        kind = str(media["type"])
        caption, entities = self._render(
            media.get("caption"), media.get("parse_mode"), media.get("caption_entities")
        )
        entry = self._upload(media.get("media"), files, kind)
        stored = self._edit_target(params)
        if stored is None:
            return True
        body = self._media_body(kind, entry)
        if caption:
            body.update(self._text_body(caption, entities, "caption"))
        return self._edit(stored, kind, (kind, entry["file_id"], caption, entities), body, params)

    def _delete_message(self, params: JSON, files: dict[str, JSON]) -> bool:
        key = (self._chat_id(params), self._int(params, "message_id"))
        if self._messages.pop(key, None) is None:
            raise _bad("message to delete not found")
        return True

    def _answer_callback(self, params: JSON, files: dict[str, JSON]) -> bool:
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self._callbacks:
            raise TelegramError(400, QUERY_INVALID)
        self._callbacks.discard(query_id)
        return True

    @staticmethod
    def _scope_key(scope: Any) -> str:
        if not scope or scope == {"type": "default"}:
            return "default"
        return json.dumps(scope, sort_keys=True)

    def _set_commands(self, params: JSON, files: dict[str, JSON]) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise _bad('parameter "commands" is required')
        key = (self._scope_key(params.get("scope")), str(params.get("language_code") or ""))
        self._commands[key] = commands
        return True

    def _get_commands(self, params: JSON, files: dict[str, JSON]) -> list[JSON]:
        key = (self._scope_key(params.get("scope")), str(params.get("language_code") or ""))
        return list(self._commands.get(key, []))

    def _delete_commands(self, params: JSON, files: dict[str, JSON]) -> bool:
        key = (self._scope_key(params.get("scope")), str(params.get("language_code") or ""))
        self._commands.pop(key, None)
        return True

    def _set_webhook(self, params: JSON, files: dict[str, JSON]) -> bool:
        secret = params.get("secret_token")
        if secret is not None and not (
            1 <= len(str(secret)) <= 256
            and all(ch.isascii() and (ch.isalnum() or ch in "_-") for ch in str(secret))
        ):
            raise _bad("secret token contains unallowed characters")
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self._webhook = dict(params) if params.get("url") else None
        return True

    def _delete_webhook(self, params: JSON, files: dict[str, JSON]) -> bool:
        if params.get("drop_pending_updates"):
            self._updates.clear()
        self._webhook = None
        return True

    def _webhook_info(self, params: JSON, files: dict[str, JSON]) -> JSON:
        info: JSON = {
            "url": (self._webhook or {}).get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }
        if self._webhook:
            info["max_connections"] = self._webhook.get("max_connections", 40)
            if self._webhook.get("allowed_updates"):
                info["allowed_updates"] = self._webhook["allowed_updates"]
        return info

    def _get_chat(self, params: JSON, files: dict[str, JSON]) -> JSON:
        chat = self.chat(self._chat_id(params))
        private = chat["type"] == "private"
        gifts = dict.fromkeys(
            ("unlimited_gifts", "limited_gifts", "unique_gifts", "premium_subscription"), private
        )
        return {
            **chat,
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {**gifts, "gifts_from_channels": private},
        }

    def _get_chat_member(self, params: JSON, files: dict[str, JSON]) -> JSON:
        return self.member(self._chat_id(params), self._int(params, "user_id"))

    def _get_admins(self, params: JSON, files: dict[str, JSON]) -> list[JSON]:
        chat_id = self._chat_id(params)
        return [
            dict(member)
            for (chat, _), member in self._members.items()
            if chat == chat_id and member["status"] in ("creator", "administrator")
        ]

    def _require(self, chat_id: int, right: str, description: str) -> None:
        bot = self._members.get((chat_id, self.bot_id))
        if bot is None or bot["status"] == "creator":
            return  # not told about the bot here: permissive
        if bot["status"] != "administrator" or not bot.get(right):
            raise _bad(description)

    def _link_fields(self, params: JSON, link: JSON) -> JSON:
        for key in ("name", "expire_date", "member_limit"):
            if params.get(key) not in (None, ""):
                link[key] = params[key]
        if "creates_join_request" in params:
            link["creates_join_request"] = bool(params["creates_join_request"])
        if link["creates_join_request"]:
            link.setdefault("pending_join_request_count", 0)
        return link

    def _create_link(self, params: JSON, files: dict[str, JSON]) -> JSON:
        chat_id = self._chat_id(params)
        self._require(chat_id, "can_invite_users", "not enough rights to manage chat invite link")
        if params.get("creates_join_request") and params.get("member_limit"):
            raise _bad("member_limit can't be specified with creates_join_request")
        link = self._link_fields(
            params,
            {
                "invite_link": "https://t.me/+" + secrets.token_urlsafe(12)[:16],
                "creator": self.me(),
                "creates_join_request": False,
                "is_primary": False,
                "is_revoked": False,
            },
        )
        self._invite_links[link["invite_link"]] = (chat_id, link)
        return dict(link)

    def _known_link(self, params: JSON) -> tuple[int, JSON]:
        chat_id = self._chat_id(params)
        self._require(chat_id, "can_invite_users", "not enough rights to manage chat invite link")
        known = self._invite_links.get(str(params.get("invite_link")))
        if known is None or known[0] != chat_id:
            raise _bad("INVITE_HASH_EXPIRED")
        return known

    def _edit_link(self, params: JSON, files: dict[str, JSON]) -> JSON:
        return dict(self._link_fields(params, self._known_link(params)[1]))

    def _revoke_link(self, params: JSON, files: dict[str, JSON]) -> JSON:
        link = self._known_link(params)[1]
        link["is_revoked"] = True
        return dict(link)

    def _export_link(self, params: JSON, files: dict[str, JSON]) -> str:
        chat_id = self._chat_id(params)
        self._require(chat_id, "can_invite_users", "not enough rights to manage chat invite link")
        link: JSON = {
            "invite_link": "https://t.me/+" + secrets.token_urlsafe(12)[:16],
            "creator": self.me(), "creates_join_request": False, "is_primary": True,
            "is_revoked": False,
        }  # fmt: skip
        self._invite_links[link["invite_link"]] = (chat_id, link)
        return str(link["invite_link"])

    def _join_decision(self, params: JSON) -> tuple[int, int]:
        chat_id, user_id = self._chat_id(params), self._int(params, "user_id")
        self._require(chat_id, "can_invite_users", "CHAT_ADMIN_REQUIRED")
        if (chat_id, user_id) not in self._pending_joins:
            raise _bad("HIDE_REQUESTER_MISSING")
        self._pending_joins.discard((chat_id, user_id))
        return chat_id, user_id

    def _approve(self, params: JSON, files: dict[str, JSON]) -> bool:
        chat_id, user_id = self._join_decision(params)
        self._members[(chat_id, user_id)] = self._member(user_id, "member")
        return True

    def _decline(self, params: JSON, files: dict[str, JSON]) -> bool:
        self._join_decision(params)
        return True

    def _ban(self, params: JSON, files: dict[str, JSON]) -> bool:
        chat_id, user_id = self._chat_id(params), self._int(params, "user_id")
        self._require(
            chat_id, "can_restrict_members", "not enough rights to restrict/unrestrict chat member"
        )
        until = params.get("until_date")
        self._members[(chat_id, user_id)] = self._member(
            user_id, "kicked", until_date=until if isinstance(until, int) else 0
        )
        return True

    def _unban(self, params: JSON, files: dict[str, JSON]) -> bool:
        chat_id, user_id = self._chat_id(params), self._int(params, "user_id")
        self._require(
            chat_id, "can_restrict_members", "not enough rights to restrict/unrestrict chat member"
        )
        current = self._members.get((chat_id, user_id), {}).get("status", "left")
        if params.get("only_if_banned") and current != "kicked":
            return True
        self._members[(chat_id, user_id)] = self._member(user_id, "left")
        return True

    def _leave(self, params: JSON, files: dict[str, JSON]) -> bool:
        self._members[(self._chat_id(params), self.bot_id)] = self._member(self.bot_id, "left")
        return True


# The keys of a message that are its content (replaced wholesale by an edit).
_BODY_KEYS = frozenset(
    {"text", "entities", "caption", "caption_entities", "photo", "document", "reply_markup"}
)


@contextmanager
def fake_telegram(
    token: str = "4242:TEST-TOKEN",
    username: str = "chainpay_fake_bot",
    *,
    max_poll_seconds: float = 2.0,
) -> Iterator[tuple[str, FakeTelegram]]:
    """Serve a :class:`FakeTelegram` on a free loopback port for the block; yields
    ``(base_url, fake)``. Exits quickly even with a getUpdates long poll in flight."""
    fake = FakeTelegram(token, username=username, max_poll_seconds=max_poll_seconds)
    server = uvicorn.Server(
        uvicorn.Config(
            fake.app(),
            host="127.0.0.1",
            port=free_port(),
            log_level="warning",
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the fake Telegram server did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{server.config.port}", fake
    finally:
        with fake._lock:
            fake._closing = True  # releases held getUpdates at once
        server.should_exit = True
        thread.join(10)
