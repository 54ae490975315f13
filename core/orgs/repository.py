"""Queries for organizations, users and API keys. Flush, never commit."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Row, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import ApiKey, Organization, User
from core.orgs.schemas import Role


async def get_user_in_org(session: AsyncSession, organization_id: int, user_id: int) -> User | None:
    return await session.scalar(
        select(User).where(User.id == user_id, User.organization_id == organization_id)
    )


async def get_owner(session: AsyncSession, organization_id: int) -> User | None:
    return await session.scalar(
        select(User).where(User.organization_id == organization_id, User.role == Role.OWNER.value)
    )


async def lock_user(session: AsyncSession, user_id: int) -> User | None:
    """The user's row, locked (FOR UPDATE on PostgreSQL; SQLite writers are serialized anyway)."""
    return await session.scalar(
        select(User)
        .where(User.id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


async def get_user_by_email(session: AsyncSession, email: str) -> User | None:
    return await session.scalar(select(User).where(User.email == email))


async def list_users(session: AsyncSession, organization_id: int) -> Sequence[User]:
    result = await session.scalars(
        select(User).where(User.organization_id == organization_id).order_by(User.id)
    )
    return result.all()


# Built once: every authenticated request runs it, and building a select costs more than
# running this one (its SQL is compiled once and cached either way).
_KEY_BY_HASH = (
    select(
        ApiKey.id,
        ApiKey.organization_id,
        ApiKey.test,
        ApiKey.revoked_at,
        ApiKey.expires_at,
        ApiKey.last_used_at,
        User.id.label("user_id"),
        User.role,
    )
    .join(User, User.id == ApiKey.user_id)
    .where(ApiKey.key_hash == bindparam("key_hash"))
)


KeyFacts = Row[int, int, bool, datetime | None, datetime | None, datetime | None, int, str]


async def get_key_facts(session: AsyncSession, key_hash: str) -> KeyFacts | None:
    """What authenticating needs of a key and its user (columns, no ORM objects): id,
    organization_id, test, revoked_at, expires_at, last_used_at, user_id, role."""
    return (await session.execute(_KEY_BY_HASH, {"key_hash": key_hash})).first()


async def list_live_keys(session: AsyncSession, user_id: int) -> Sequence[ApiKey]:
    result = await session.scalars(
        select(ApiKey)
        .where(ApiKey.user_id == user_id, ApiKey.revoked_at.is_(None))
        .order_by(ApiKey.id)
    )
    return result.all()


async def get_live_key_in_org(
    session: AsyncSession, organization_id: int, key_id: int
) -> ApiKey | None:
    return await session.scalar(
        select(ApiKey).where(
            ApiKey.id == key_id,
            ApiKey.organization_id == organization_id,
            ApiKey.revoked_at.is_(None),
        )
    )


async def add(session: AsyncSession, obj: Organization | User | ApiKey) -> None:
    session.add(obj)
    await session.flush()
