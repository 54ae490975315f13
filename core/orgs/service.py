"""Organizations, users and API keys: who may do what inside a tenant."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, Forbidden, InvalidInput
from core.models import ApiKey, Organization, User
from core.models.base import utcnow
from core.orgs import repository
from core.orgs.exceptions import (
    ApiKeyNotFound,
    EmailTaken,
    InvalidApiKey,
    RoleRequired,
    UserNotFound,
)
from core.orgs.schemas import ApiKeyCreate, Principal, Role, UserCreate, UserUpdate
from core.orgs.security import generate_api_key, hash_api_key, hash_password, key_preview

LAST_USED_RESOLUTION = timedelta(minutes=1)


async def create_organization(
    session: AsyncSession,
    *,
    name: str,
    owner_email: str,
    owner_name: str = "Owner",
    owner_last_name: str = "",
    test_key: bool = False,
) -> tuple[Organization, User, ApiKey, str]:
    """A new tenant with its owner and the owner's first API key (returned raw, once)."""
    if await repository.get_user_by_email(session, owner_email) is not None:
        raise EmailTaken()
    organization = Organization(name=name)
    await repository.add(session, organization)
    owner = User(
        organization_id=organization.id,
        name=owner_name,
        last_name=owner_last_name,
        email=owner_email,
        password_hash=None,
        role=Role.OWNER.value,
        organization_fee_bps=0,
    )
    await repository.add(session, owner)
    key, raw = await _issue_key(session, owner, name="Owner key", test=test_key, expires_at=None)
    return organization, owner, key, raw


async def authenticate(session: AsyncSession, raw_key: str) -> Principal:
    """The principal behind a raw key; unknown, revoked or expired keys are all the same 401."""
    found = await repository.get_key_with_user(session, hash_api_key(raw_key))
    if found is None:
        raise InvalidApiKey()
    key, user = found
    now = utcnow()
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        raise InvalidApiKey()
    if key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION:
        key.last_used_at = now
        await session.flush()
    return Principal(
        api_key_id=key.id,
        organization_id=key.organization_id,
        user_id=user.id,
        role=Role(user.role),
        test=key.test,
    )


# --- users -------------------------------------------------------------------------------


async def get_me(session: AsyncSession, principal: Principal) -> User:
    user = await repository.get_user_in_org(session, principal.organization_id, principal.user_id)
    if user is None:  # the key's user was deleted in this very transaction
        raise UserNotFound()
    return user


async def list_users(session: AsyncSession, principal: Principal) -> Sequence[User]:
    _require_admin(principal)
    return await repository.list_users(session, principal.organization_id)


async def get_user(session: AsyncSession, principal: Principal, user_id: int) -> User:
    user = await _user_in_org(session, principal, user_id)
    if user.id != principal.user_id:
        _require_admin(principal)
    return user


async def create_user(session: AsyncSession, principal: Principal, data: UserCreate) -> User:
    _require_admin(principal)
    if data.role is Role.OWNER:
        raise Forbidden("An organization has exactly one owner", param="role", code="owner_exists")
    if data.role is Role.ADMIN and principal.role is not Role.OWNER:
        raise RoleRequired("Only the owner can create admins")
    if await repository.get_user_by_email(session, data.email) is not None:
        raise EmailTaken()
    user = User(
        organization_id=principal.organization_id,
        name=data.name,
        last_name=data.last_name,
        email=data.email,
        password_hash=hash_password(data.password),
        role=data.role.value,
        organization_fee_bps=data.organization_fee_bps,
    )
    await repository.add(session, user)
    return user


async def update_user(
    session: AsyncSession, principal: Principal, user_id: int, data: UserUpdate
) -> User:
    """Partial update. A user editing itself cannot change its own fee: the fee is ignored."""
    user = await _user_in_org(session, principal, user_id)
    editing_self = user.id == principal.user_id
    if not editing_self:
        _require_admin(principal)
        if principal.role is not Role.OWNER and user.role != Role.USER.value:
            raise RoleRequired("Only the owner can change admins and the owner")
    if data.email is not None and data.email != user.email:
        if await repository.get_user_by_email(session, data.email) is not None:
            raise EmailTaken()
        user.email = data.email
    if data.name is not None:
        user.name = data.name
    if data.last_name is not None:
        user.last_name = data.last_name
    if data.password is not None:
        user.password_hash = hash_password(data.password)
    if data.organization_fee_bps is not None and not editing_self:
        user.organization_fee_bps = data.organization_fee_bps
    user.updated_at = utcnow()
    await session.flush()
    return user


async def delete_user(session: AsyncSession, principal: Principal, user_id: int) -> None:
    _require_admin(principal)
    user = await _user_in_org(session, principal, user_id)
    if user.role == Role.OWNER.value:
        raise Conflict("The owner cannot be deleted", param="id", code="owner_required")
    if user.id == principal.user_id:
        raise Conflict("You cannot delete yourself", param="id", code="self_delete")
    if user.role == Role.ADMIN.value and principal.role is not Role.OWNER:
        raise RoleRequired("Only the owner can delete admins")
    await session.delete(user)
    await session.flush()


# --- API keys ------------------------------------------------------------------------------


async def create_api_key(
    session: AsyncSession, principal: Principal, data: ApiKeyCreate
) -> tuple[ApiKey, str, Role]:
    """A key for the caller, or (admin/owner) for any user of the organization. Raw key once."""
    user = await _user_in_org(session, principal, data.user_id)
    if user.id != principal.user_id:
        _require_admin(principal)
    if principal.test and not data.test:
        raise Forbidden("A test key can only create test keys", param="test")
    expires_at = data.expires_at
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= utcnow():
            raise InvalidInput("expiresAt must be in the future", param="expiresAt")
    key, raw = await _issue_key(
        session, user, name=data.name, test=data.test, expires_at=expires_at
    )
    return key, raw, Role(user.role)


async def list_my_keys(
    session: AsyncSession, principal: Principal
) -> tuple[Sequence[ApiKey], Role]:
    return await repository.list_live_keys(session, principal.user_id), principal.role


async def list_user_keys(
    session: AsyncSession, principal: Principal, user_id: int
) -> tuple[Sequence[ApiKey], Role]:
    user = await _user_in_org(session, principal, user_id)
    if user.id != principal.user_id:
        _require_admin(principal)
    return await repository.list_live_keys(session, user.id), Role(user.role)


async def revoke_api_key(session: AsyncSession, principal: Principal, key_id: int) -> None:
    """Revoked keys stop authenticating at once; the row stays for the audit trail."""
    key = await repository.get_live_key_in_org(session, principal.organization_id, key_id)
    if key is None or (key.user_id != principal.user_id and not principal.is_admin):
        raise ApiKeyNotFound()
    key.revoked_at = utcnow()
    await session.flush()


# --- helpers -------------------------------------------------------------------------------


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise RoleRequired()


async def _user_in_org(session: AsyncSession, principal: Principal, user_id: int) -> User:
    user = await repository.get_user_in_org(session, principal.organization_id, user_id)
    if user is None:
        raise UserNotFound()
    return user


async def _issue_key(
    session: AsyncSession, user: User, *, name: str, test: bool, expires_at: datetime | None
) -> tuple[ApiKey, str]:
    raw = generate_api_key(test=test)
    key = ApiKey(
        organization_id=user.organization_id,
        user_id=user.id,
        name=name,
        key_hash=hash_api_key(raw),
        preview=key_preview(raw),
        test=test,
        expires_at=expires_at,
    )
    await repository.add(session, key)
    return key, raw
