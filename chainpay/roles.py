"""Process roles. `serve` runs every role in one process; the others run one each."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine
from typing import Any

import uvicorn

from api.app import create_app
from core.config import Settings


def run(main: Coroutine[Any, Any, None]) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main)


async def api(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """The HTTP API under uvicorn until SIGINT/SIGTERM."""
    config = uvicorn.Config(
        create_app(settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level,
        proxy_headers=True,
        server_header=False,
    )
    await uvicorn.Server(config).serve()


async def serve(settings: Settings, *, host: str | None = None, port: int | None = None) -> None:
    """Everything in one asyncio process. Today that is the API; later issues add their tasks here."""
    await api(settings, host=host, port=port)
