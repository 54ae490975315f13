"""Queries for checkout sessions. Flush, never commit."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import lock_rows
from core.models import CheckoutSession


async def lock_sessions(session: AsyncSession, ids: Iterable[int]) -> dict[int, CheckoutSession]:
    """These sessions, locked in id order until the transaction ends, as last committed.

    Every path that decides a session's status (or its flags, or its subscription) calls this
    before it reads what it decides from, and compares against these objects for its events.
    """
    return await lock_rows(session, CheckoutSession, ids)
