"""ASGI middleware: request ids and version header, body limit, per-key rate limit, idempotency."""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import re
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import structlog

from api.errors import error_body
from api.responses import dumps
from core.idempotency import service as idempotency

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_VERSION = "2026-11-23"
_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
_IDEMPOTENCY_KEY = re.compile(r"^[\x21-\x7e]{1,255}$")
log = structlog.get_logger(__name__)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            try:
                return str(value.decode("latin-1"))
            except UnicodeDecodeError:
                return None
    return None


def presented_credential(scope: Scope) -> str | None:
    """The raw API key the caller presented: X-API-Key, or HTTP Basic username."""
    key = _header(scope, b"x-api-key")
    if key:
        return key.strip()
    auth = _header(scope, b"authorization")
    if auth and auth[:6].lower() == "basic ":
        try:
            decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        username = decoded.split(":", 1)[0]
        return username or None
    return None


async def send_json(
    send: Send, status: int, content: Any, headers: list[tuple[bytes, bytes]]
) -> None:
    body = dumps(content)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class PayloadTooLarge(Exception):
    pass


class RequestContextMiddleware:
    """Outermost: X-Request-ID and X-API-Version on every answer, and a JSON 500 for surprises."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, b"x-request-id")
        request_id = incoming if incoming and _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        extra = [(b"x-request-id", request_id.encode()), (b"x-api-version", API_VERSION.encode())]
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        structlog.contextvars.bind_contextvars(request_id=request_id)
        try:
            await self.app(scope, receive, send_with_headers)
        except PayloadTooLarge:
            if not started:
                await send_json(
                    send_with_headers,
                    413,
                    error_body("Request body too large", "payload_too_large", "body"),
                    [],
                )
        except Exception:
            log.exception("unhandled_error", path=scope.get("path"))
            if not started:
                await send_json(
                    send_with_headers,
                    500,
                    error_body("Internal server error", "internal_error", None),
                    [],
                )
        finally:
            structlog.contextvars.unbind_contextvars("request_id")


class BodyLimitMiddleware:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            raise PayloadTooLarge()
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge()
            return message

        await self.app(scope, counting_receive, send)


@dataclass
class _Window:
    started_at: float
    count: int = 0


@dataclass
class RateLimiter:
    """Fixed one-minute windows per presented key, in this process (a replica counts alone)."""

    limit_per_minute: int
    windows: dict[str, _Window] = field(default_factory=dict)

    def hit(self, key: str, now: float) -> tuple[bool, int, int]:
        window = self.windows.get(key)
        if window is None or now - window.started_at >= 60:
            if len(self.windows) > 100_000:
                self.windows = {k: w for k, w in self.windows.items() if now - w.started_at < 60}
            window = self.windows[key] = _Window(started_at=now)
        window.count += 1
        allowed = window.count <= self.limit_per_minute
        remaining = max(0, self.limit_per_minute - window.count)
        return allowed, remaining, math.ceil(window.started_at + 60)


class RateLimitMiddleware:
    def __init__(self, app: ASGIApp, limit_per_minute: int) -> None:
        self.app = app
        self.limiter = RateLimiter(limit_per_minute)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        credential = presented_credential(scope) if scope["type"] == "http" else None
        if credential is None or self.limiter.limit_per_minute <= 0:
            await self.app(scope, receive, send)
            return
        now = scope["app"].state.clock.now().timestamp()
        bucket = hashlib.sha256(credential.encode()).hexdigest()
        allowed, remaining, reset_at = self.limiter.hit(bucket, now)
        headers = [
            (b"x-ratelimit-limit", str(self.limiter.limit_per_minute).encode()),
            (b"x-ratelimit-remaining", str(remaining).encode()),
            (b"x-ratelimit-reset", str(reset_at).encode()),
        ]
        if not allowed:
            retry_after = max(1, math.ceil(reset_at - now))
            await send_json(
                send,
                429,
                error_body("Rate limit exceeded", "rate_limited", None),
                [*headers, (b"retry-after", str(retry_after).encode())],
            )
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)


class IdempotencyMiddleware:
    """Idempotency-Key on POST/PUT/DELETE: replay the stored answer, refuse a different body."""

    METHODS = {"POST", "PUT", "DELETE", "PATCH"}

    def __init__(self, app: ASGIApp, ttl: timedelta) -> None:
        self.app = app
        self.ttl = ttl

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        key = _header(scope, b"idempotency-key") if scope["type"] == "http" else None
        credential = presented_credential(scope) if key is not None else None
        if key is None or credential is None or scope["method"] not in self.METHODS:
            await self.app(scope, receive, send)
            return
        if not _IDEMPOTENCY_KEY.match(key):
            await send_json(
                send,
                400,
                error_body(
                    "Idempotency-Key must be 1-255 printable ASCII characters",
                    "invalid_idempotency_key",
                    "Idempotency-Key",
                ),
                [],
            )
            return

        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        fingerprint = hashlib.sha256(
            b"\n".join(
                [
                    scope["method"].encode(),
                    scope["path"].encode(),
                    scope.get("query_string", b""),
                    body,
                ]
            )
        ).hexdigest()
        sessionmaker = scope["app"].state.sessionmaker
        outcome = await idempotency.claim(
            sessionmaker,
            scope=hashlib.sha256(credential.encode()).hexdigest(),
            key=key,
            fingerprint=fingerprint,
            ttl=self.ttl,
            now=scope["app"].state.clock.now(),
        )
        if isinstance(outcome, idempotency.Replay):
            await send(
                {
                    "type": "http.response.start",
                    "status": outcome.status_code,
                    "headers": [
                        (b"content-type", (outcome.content_type or "application/json").encode()),
                        (b"content-length", str(len(outcome.body)).encode()),
                        (b"idempotent-replayed", b"true"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": outcome.body})
            return
        if isinstance(outcome, idempotency.Mismatch):
            await send_json(
                send,
                422,
                error_body(
                    "This Idempotency-Key was already used with a different request",
                    "idempotency_key_reused",
                    "Idempotency-Key",
                ),
                [],
            )
            return
        if isinstance(outcome, idempotency.InFlight):
            await send_json(
                send,
                409,
                error_body(
                    "A request with this Idempotency-Key is still being processed",
                    "idempotency_in_progress",
                    "Idempotency-Key",
                ),
                [],
            )
            return

        delivered = False

        async def replay_receive() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        # The answer is held back until it is stored: a retry that arrives the moment the
        # client sees this response must find it, not an in-flight claim.
        held: list[Message] = []

        async def holding_send(message: Message) -> None:
            held.append(message)

        try:
            await self.app(scope, replay_receive, holding_send)
        except BaseException:
            await idempotency.release(sessionmaker, outcome.record_id)
            raise
        start = next((m for m in held if m["type"] == "http.response.start"), None)
        status = int(start["status"]) if start else 500
        if status >= 500 or status in (401, 429):
            await idempotency.release(sessionmaker, outcome.record_id)
        else:
            content_type = next(
                (
                    value.decode("latin-1")
                    for name, value in (start or {}).get("headers", [])
                    if name.lower() == b"content-type"
                ),
                None,
            )
            await idempotency.complete(
                sessionmaker,
                outcome.record_id,
                status_code=status,
                content_type=content_type,
                body=b"".join(
                    m.get("body", b"") for m in held if m["type"] == "http.response.body"
                ),
            )
        for message in held:
            await send(message)
