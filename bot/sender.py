"""The bot's sender: does the Telegram work the outbox holds (`core.telegram.outbox`).

One loop per bot process. It claims due rows in a short transaction, works on them with none
open, and marks each done. Telegram's answers:
- 429 (`TelegramRetryAfter`): a short wait is waited out and the row tried again at once; after
  a longer one the row comes back when Telegram allows, and the other rows go on meanwhile
  (every flood counts as an attempt);
- 403 (the user blocked the bot, or the bot left the chat): the person is marked and skipped,
  the row given up with the reason;
- anything else: the row is tried again later (backoff), given up after MAX_ATTEMPTS.
One bad chat never holds up the others: every row is its own try.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import datetime, timedelta

import structlog
from aiogram import Bot
from aiogram.exceptions import TelegramForbiddenError, TelegramRetryAfter
from aiogram.utils.i18n import I18n
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot import access as access_io
from bot import card_messages, notify
from core.checkout.context import CheckoutContext
from core.db import transaction
from core.events.consumers import run_consumer
from core.events.wakeup import WAKEUP
from core.models import Event
from core.telegram import cards, notifications, outbox

log = structlog.get_logger(__name__)

# While a card shows a payment confirming, it is looked at again this often.
CONFIRMING_REFRESH = timedelta(seconds=2)
# A 429 asking for at most this long is waited out in place; a longer one puts its row back.
SHORT_RETRY_AFTER_SECONDS = 5


class OutboxSender:
    def __init__(
        self,
        bot: Bot,
        i18n: I18n,
        sessionmaker: async_sessionmaker[AsyncSession],
        context: CheckoutContext,
        *,
        poll: float = 1.0,
    ) -> None:
        self.bot = bot
        self.i18n = i18n
        self.sessionmaker = sessionmaker
        self.context = context
        self.poll = poll

    def now(self) -> datetime:
        return self.context.clock.now()

    async def run(self, stop: asyncio.Event) -> None:
        with WAKEUP.listen() as wake:
            while not stop.is_set():
                wake.clear()
                try:
                    done = await self.run_once()
                except Exception:
                    log.exception("telegram_sender_failed")
                    done = 0
                if done == 0:
                    waiters = [
                        asyncio.ensure_future(stop.wait()),
                        asyncio.ensure_future(wake.wait()),
                    ]
                    try:
                        await asyncio.wait(
                            waiters, timeout=self.poll, return_when=asyncio.FIRST_COMPLETED
                        )
                    finally:
                        for waiter in waiters:
                            waiter.cancel()
                            with contextlib.suppress(asyncio.CancelledError):
                                await waiter

    async def run_once(self) -> int:
        """One claimed batch, worked through. Returns how many rows it held."""
        async with transaction(self.sessionmaker) as db:
            rows = [
                (
                    r.id,
                    r.kind,
                    r.chat_id,
                    r.session_id,
                    r.subscription_id,
                    outbox.payload_of(r),
                    r.attempts,
                )
                for r in await outbox.claim(db, now=self.now())
            ]
        for row in rows:
            await self._one(*row)
        return len(rows)

    async def _one(
        self,
        row_id: int,
        kind: str,
        chat_id: int | None,
        session_id: int | None,
        subscription_id: int | None,
        payload: dict[str, object],
        attempts: int,
    ) -> None:
        while True:
            try:
                confirming = await self._work(kind, chat_id, session_id, subscription_id, payload)
            except TelegramRetryAfter as exc:
                log.info("telegram_retry_after", seconds=exc.retry_after, kind=kind)
                if exc.retry_after <= SHORT_RETRY_AFTER_SECONDS:
                    await asyncio.sleep(exc.retry_after)
                    continue
                # A long wait (one flooded chat): the row comes back then, the others go on.
                async with transaction(self.sessionmaker) as db:
                    at = self.now() + timedelta(seconds=exc.retry_after)
                    await outbox.retry_at(db, row_id, at, error=f"retry after {exc.retry_after}s")
                return
            except TelegramForbiddenError as exc:
                async with transaction(self.sessionmaker) as db:
                    if chat_id is not None and chat_id > 0:
                        await cards.mark_blocked(db, chat_id, now=self.now())
                    await outbox.finish(
                        db, row_id, now=self.now(), error=f"forbidden: {exc.message}"
                    )
                log.info("telegram_forbidden", kind=kind, chat_id=chat_id)
                return
            except Exception as exc:  # one bad row never stops the others
                async with transaction(self.sessionmaker) as db:
                    if attempts >= outbox.MAX_ATTEMPTS:
                        await outbox.finish(db, row_id, now=self.now(), error=f"gave up: {exc}")
                    else:
                        delay = timedelta(seconds=min(600, 2**attempts))
                        await outbox.retry_at(db, row_id, self.now() + delay, error=str(exc))
                log.warning("telegram_send_failed", kind=kind, attempts=attempts, error=str(exc))
                return
            async with transaction(self.sessionmaker) as db:
                await outbox.finish(db, row_id, now=self.now())
                if confirming is not None and session_id is not None:
                    # Look again while confirmations come in (one row per count shown).
                    await outbox.enqueue(
                        db,
                        key=f"card:{session_id}:confirming:{confirming[0]}of{confirming[1]}",
                        kind=outbox.CARD,
                        session_id=session_id,
                        now=self.now(),
                        at=self.now() + CONFIRMING_REFRESH,
                    )
            return

    async def _work(
        self,
        kind: str,
        chat_id: int | None,
        session_id: int | None,
        subscription_id: int | None,
        payload: dict[str, object],
    ) -> tuple[int, int] | None:
        if kind == outbox.CARD and session_id is not None:
            return await card_messages.refresh(
                self.bot, self.i18n, self.sessionmaker, self.context, session_id, now=self.now()
            )
        if kind == outbox.NOTIFY and chat_id is not None:
            await notify.send(self.bot, self.i18n, self.sessionmaker, chat_id, payload)
        elif kind == outbox.REMINDER and chat_id is not None and subscription_id is not None:
            await notify.send_reminder(
                self.bot, self.i18n, self.sessionmaker, chat_id, subscription_id, payload
            )
        elif kind == outbox.ACCESS_GRANT and chat_id is not None and subscription_id is not None:
            await access_io.grant(
                self.bot, self.i18n, self.sessionmaker, chat_id, subscription_id, now=self.now()
            )
        elif kind == outbox.ACCESS_REVOKE and chat_id is not None and subscription_id is not None:
            await access_io.revoke(
                self.bot, self.sessionmaker, chat_id, subscription_id, now=self.now()
            )
        return None


async def run_events(
    sessionmaker: async_sessionmaker[AsyncSession], context: CheckoutContext, stop: asyncio.Event
) -> None:
    """The bot's event consumer: events -> outbox rows, with its own cursor."""

    async def handler(db: AsyncSession, events: Sequence[Event]) -> None:
        await notifications.handle(db, events, now=context.clock.now())

    await run_consumer(sessionmaker, notifications.CONSUMER, handler, stop)
