"""A fake Telegram Bot API server over HTTP on loopback. It answers the methods chainpay uses
and records every request (the bot issue grows it; aiogram reaches it through
TelegramAPIServer.from_base)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.harness.server import free_port


@dataclass
class FakeTelegram:
    token: str
    username: str = "chainpay_fake_bot"
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def app(self) -> Starlette:
        async def method(request: Request) -> JSONResponse:
            token, name = request.path_params["token"], request.path_params["method"]
            payload: dict[str, Any] = dict(request.query_params)
            if request.method == "POST":
                form = await request.form()
                payload.update({k: v for k, v in form.items() if isinstance(v, str)})
            self.requests.append((name, payload))
            if token != self.token:
                return JSONResponse(
                    {"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401
                )
            if name == "getMe":
                return JSONResponse(
                    {
                        "ok": True,
                        "result": {
                            "id": 4242,
                            "is_bot": True,
                            "first_name": "Fake",
                            "username": self.username,
                        },
                    }
                )
            return JSONResponse(
                {"ok": False, "error_code": 404, "description": "Not Found"}, status_code=404
            )

        return Starlette(routes=[Route("/bot{token}/{method}", method, methods=["GET", "POST"])])


@contextmanager
def fake_telegram(token: str = "4242:TEST-TOKEN") -> Iterator[tuple[str, FakeTelegram]]:
    fake = FakeTelegram(token)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(fake.app(), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=lambda: asyncio.run(server.serve()), daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            httpx.get(f"{base}/botx/getMe", timeout=1)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    fake.requests.clear()  # forget the readiness probe
    try:
        yield base, fake
    finally:
        server.should_exit = True
        thread.join(10)
