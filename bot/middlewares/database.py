"""One database session per update, committed when the handler returns, rolled back if it raises.

Handlers get it as `db: AsyncSession`. A handler that calls Telegram after changing rows
commits first (`await db.commit()`): on SQLite every transaction holds the database's write
lock, which must not wait on a network round trip; the session begins a new transaction on
its next statement. The person's row is touched here (made on first contact, unblocked when
they write again) and their chosen language handed on as `language`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import Clock
from core.telegram import payer


class DatabaseMiddleware(BaseMiddleware):
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessionmaker = sessionmaker
        self.clock = clock

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        async with self.sessionmaker() as session:
            data["db"] = session
            data["now"] = now = self.clock.now()
            user: User | None = data.get("event_from_user")
            if user is not None and not user.is_bot:
                person = await payer.touch_user(session, user.id, now=now)
                data["language"] = person.language
                await session.commit()  # not held while the handler talks to Telegram
            try:
                result = await handler(event, data)
                await session.commit()
                return result
            except BaseException:
                await session.rollback()
                raise
