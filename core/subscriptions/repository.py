"""Queries for subscriptions. Flush, never commit."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import lock_rows
from core.models import Subscription


async def lock_subscriptions(session: AsyncSession, ids: Iterable[int]) -> dict[int, Subscription]:
    """These subscriptions, locked in id order until the transaction ends, as last committed.

    A path that also recomputes the subscription's session locks the session first
    (`core.checkout.repository.lock_sessions`): sessions before subscriptions, always.
    """
    return await lock_rows(session, Subscription, ids)
