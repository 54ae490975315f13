"""Paid-chat access: who may join a product's Telegram chat, and whom to remove when it ends.

A subscriber gets an invite link that asks to join (`creates_join_request`); the bot approves
a join request only from the Telegram account the subscription belongs to, while the
subscription grants access. When access ends the removal service queues the subscriber's
removal (`request_removal`), which the bot carries out as ban + unban (never a permanent ban).
A removal under way is `removing` from just before the ban until it is marked `removed`, so a
retry after a failed unban knows the ban is the bot's own and lifts it.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import Product, Subscription, TelegramAccess
from core.subscriptions.lifecycle import grants_access
from core.telegram import outbox

INVITED = "invited"
MEMBER = "member"
REMOVING = "removing"
REMOVED = "removed"


async def record_invite(
    session: AsyncSession,
    subscription: Subscription,
    chat_id: int,
    invite_link: str | None,
    *,
    now: datetime,
    member: bool = False,
) -> TelegramAccess:
    """Remember the invite sent for this subscription and chat (one row each, updated);
    `member`: no invite was needed, the subscriber is in the chat already."""
    assert subscription.telegram_user_id is not None
    access = await session.scalar(
        select(TelegramAccess).where(
            TelegramAccess.subscription_id == subscription.id, TelegramAccess.chat_id == chat_id
        )
    )
    if access is None:
        access = TelegramAccess(
            subscription_id=subscription.id,
            chat_id=chat_id,
            telegram_user_id=subscription.telegram_user_id,
            created_at=now,
        )
        session.add(access)
    if member:
        access.status = MEMBER
        access.approved_at = access.approved_at or now
    elif access.status != MEMBER:
        access.status = INVITED
    if invite_link is not None or access.invite_link is None:
        access.invite_link = invite_link
    access.removed_at = None
    access.updated_at = now
    await session.flush()
    return access


async def admit(
    session: AsyncSession, chat_id: int, telegram_user_id: int, *, now: datetime
) -> bool:
    """Whether a join request to `chat_id` from this account is to be approved (and note it)."""
    rows = await session.execute(
        select(TelegramAccess, Subscription)
        .join(Subscription, Subscription.id == TelegramAccess.subscription_id)
        .where(
            TelegramAccess.chat_id == chat_id,
            TelegramAccess.telegram_user_id == telegram_user_id,
            Subscription.telegram_user_id == telegram_user_id,
        )
    )
    for access, subscription in rows:
        if grants_access(subscription, now):
            access.status = MEMBER
            access.approved_at = now
            access.updated_at = now
            await session.flush()
            return True
    return False


async def is_paid_chat(session: AsyncSession, chat_id: int) -> bool:
    """Whether a product is bound to this chat (other chats' join requests are not ours)."""
    found = await session.scalar(
        select(Product.id).where(Product.telegram_chat_id == chat_id).limit(1)
    )
    return found is not None


async def request_removal(
    session: AsyncSession, subscription: Subscription, *, now: datetime, reason: str
) -> int:
    """Queue the removal of the subscriber from every chat the subscription let them into
    (what the subscription-expiry path calls). `reason` names the decision (one removal per
    reason and chat, however often it is requested). Returns how many removals were queued."""
    rows = list(
        await session.scalars(
            select(TelegramAccess).where(
                TelegramAccess.subscription_id == subscription.id,
                TelegramAccess.status != REMOVED,
            )
        )
    )
    for access in rows:
        await outbox.enqueue(
            session,
            key=f"remove:{access.id}:{reason}",
            kind=outbox.ACCESS_REVOKE,
            chat_id=access.chat_id,
            subscription_id=subscription.id,
            payload={"telegram_user_id": access.telegram_user_id},
            now=now,
        )
    return len(rows)


async def removal_of(
    session: AsyncSession, subscription_id: int, chat_id: int, *, now: datetime
) -> TelegramAccess | None:
    """The access row a queued removal is about, unless access was granted again since
    (a renewal between the decision and the removal keeps the member)."""
    subscription = await session.get(Subscription, subscription_id)
    if subscription is None or grants_access(subscription, now):
        return None
    return await session.scalar(
        select(TelegramAccess).where(
            TelegramAccess.subscription_id == subscription_id,
            TelegramAccess.chat_id == chat_id,
            TelegramAccess.status != REMOVED,
        )
    )


async def start_removal(session: AsyncSession, access_id: int, *, now: datetime) -> None:
    """Note that the bot is about to ban (then unban) this member."""
    access = await session.get(TelegramAccess, access_id)
    if access is not None and access.status != REMOVED:
        access.status = REMOVING
        access.updated_at = now
        await session.flush()


async def mark_removed(session: AsyncSession, access_id: int, *, now: datetime) -> None:
    """The member is out of the chat (or was already)."""
    access = await session.get(TelegramAccess, access_id)
    if access is not None:
        access.status = REMOVED
        access.removed_at = now
        access.updated_at = now
        await session.flush()
