"""One database session per update, committed when the handler returns, rolled back if it raises.

Handlers get it as `db: AsyncSession`. A handler that calls Telegram after changing rows
commits first (`await db.commit()`): on SQLite every transaction holds the database's write
lock, which must not wait on a network round trip; the session begins a new transaction on
its next statement. The person's row is touched here (made on first contact, unblocked when
they write again) and their chosen language handed on as `language`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, User
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.clock import Clock
from core.db import read_only_sessionmaker, transaction
from core.models import TelegramUser
from core.telegram import payer


class DatabaseMiddleware(BaseMiddleware):
    def __init__(self, sessionmaker: async_sessionmaker[AsyncSession], clock: Clock) -> None:
        self.sessionmaker = sessionmaker
        # Most updates come from someone already known: looking them up takes no write lock.
        self.readers = read_only_sessionmaker(sessionmaker)
        self.clock = clock

    async def _language(self, telegram_user_id: int, now: datetime) -> str | None:
        """The person's chosen language; their row is made on first contact (and a blocked
        mark cleared when they write again) in a short write of its own."""
        async with self.readers() as reader:
            person = await reader.get(TelegramUser, telegram_user_id)
            if person is not None and person.blocked_at is None:
                return person.language
        async with transaction(self.sessionmaker) as writer:
            return (await payer.touch_user(writer, telegram_user_id, now=now)).language

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        data["now"] = now = self.clock.now()
        user: User | None = data.get("event_from_user")
        if user is not None and not user.is_bot:
            data["language"] = await self._language(user.id, now)
        async with self.sessionmaker() as session:
            data["db"] = session
            try:
                result = await handler(event, data)
                await session.commit()
                return result
            except BaseException:
                await session.rollback()
                raise
