"""Which messages show which session's card (one per session and chat), and who blocked the bot."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import TelegramCard, TelegramUser


async def of_session(session: AsyncSession, session_id: int) -> Sequence[TelegramCard]:
    return list(
        await session.scalars(
            select(TelegramCard)
            .where(TelegramCard.session_id == session_id)
            .order_by(TelegramCard.id)
        )
    )


async def in_chat(session: AsyncSession, session_id: int, chat_id: int) -> TelegramCard | None:
    return await session.scalar(
        select(TelegramCard).where(
            TelegramCard.session_id == session_id, TelegramCard.chat_id == chat_id
        )
    )


async def remember(
    session: AsyncSession,
    *,
    session_id: int,
    chat_id: int,
    message_id: int,
    language: str,
    fingerprint: str,
    now: datetime,
) -> TelegramCard:
    """The message that now shows this session's card in this chat (replacing an older one)."""
    card = await in_chat(session, session_id, chat_id)
    if card is None:
        card = TelegramCard(session_id=session_id, chat_id=chat_id, created_at=now)
        session.add(card)
    card.message_id = message_id
    card.is_photo = True
    card.language = language
    card.fingerprint = fingerprint
    card.updated_at = now
    await session.flush()
    return card


async def rendered(
    session: AsyncSession, card_id: int, *, fingerprint: str, message_id: int, now: datetime
) -> None:
    """What a card's message shows since an edit (or a resend gave it a new message)."""
    await session.execute(
        update(TelegramCard)
        .where(TelegramCard.id == card_id)
        .values(fingerprint=fingerprint, message_id=message_id, updated_at=now)
    )


async def mark_blocked(session: AsyncSession, telegram_user_id: int, *, now: datetime) -> None:
    """They blocked the bot (Telegram answered 403): skipped until they write to it again."""
    user = await session.get(TelegramUser, telegram_user_id)
    if user is None:
        session.add(
            TelegramUser(
                telegram_user_id=telegram_user_id, blocked_at=now, created_at=now, updated_at=now
            )
        )
    else:
        user.blocked_at = now
        user.updated_at = now
    await session.flush()


async def is_blocked(session: AsyncSession, telegram_user_id: int) -> bool:
    user = await session.get(TelegramUser, telegram_user_id)
    return user is not None and user.blocked_at is not None


async def language_of(session: AsyncSession, telegram_user_id: int) -> str | None:
    user = await session.get(TelegramUser, telegram_user_id)
    return user.language if user is not None else None
