"""Organizations, users and API keys: who may do what inside a tenant."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from sqlalchemy import or_, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Conflict, Forbidden, InvalidInput, NotFound
from core.models import ApiKey, Organization, User
from core.models.base import utcnow
from core.orgs import repository
from core.orgs.exceptions import (
    ApiKeyNotFound,
    EmailTaken,
    InvalidApiKey,
    LastOwnerKey,
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


async def authenticate(session: AsyncSession, raw_key: str, *, now: datetime) -> Principal:
    """The principal behind a raw key; unknown, revoked or expired keys are all the same 401."""
    principal, use_due = await identify(session, raw_key, now=now)
    if use_due:
        await record_key_use(session, principal.api_key_id, now=now)
    return principal


async def identify(session: AsyncSession, raw_key: str, *, now: datetime) -> tuple[Principal, bool]:
    """The principal behind a raw key (401 as in `authenticate`), and whether its last use is
    due to be recorded (`record_key_use`); reads only."""
    key = await repository.get_key_facts(session, hash_api_key(raw_key))
    if key is None:
        raise InvalidApiKey()
    if key.revoked_at is not None or (key.expires_at is not None and key.expires_at <= now):
        raise InvalidApiKey()
    principal = Principal(
        api_key_id=key.id,
        organization_id=key.organization_id,
        user_id=key.user_id,
        role=Role(key.role),
        test=key.test,
    )
    return principal, key.last_used_at is None or now - key.last_used_at >= LAST_USED_RESOLUTION


async def record_key_use(session: AsyncSession, api_key_id: int, *, now: datetime) -> None:
    """Set the key's last use to `now` (to the minute: a later one already written stays)."""
    await session.execute(
        update(ApiKey)
        .where(
            ApiKey.id == api_key_id,
            or_(ApiKey.last_used_at.is_(None), ApiKey.last_used_at <= now - LAST_USED_RESOLUTION),
        )
        .values(last_used_at=now)
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
    session: AsyncSession, principal: Principal, data: ApiKeyCreate, *, now: datetime
) -> tuple[ApiKey, str, Role]:
    """A key for the caller, or (admin/owner) for any user of the organization. Raw key once."""
    user = await _user_in_org(session, principal, data.user_id)
    if user.id != principal.user_id:
        _require_admin(principal)
        _require_owner_for_staff(principal, user)
    if principal.test and not data.test:
        raise Forbidden("A test key can only create test keys", param="test")
    expires_at = data.expires_at
    if expires_at is not None:
        if expires_at.tzinfo is None:
            expires_at = expires_at.replace(tzinfo=UTC)
        if expires_at <= now:
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


async def revoke_api_key(
    session: AsyncSession, principal: Principal, key_id: int, *, now: datetime
) -> None:
    """Revoked keys stop authenticating at once; the row stays for the audit trail."""
    key = await repository.get_live_key_in_org(session, principal.organization_id, key_id)
    if key is None or (key.user_id != principal.user_id and not principal.is_admin):
        raise ApiKeyNotFound()
    # Locked: two revocations of the owner's last two keys must not both pass.
    holder = await repository.lock_user(session, key.user_id)
    if holder is None:
        raise ApiKeyNotFound()
    if holder.id != principal.user_id:
        _require_owner_for_staff(principal, holder)
    await _keep_an_owner_key(session, holder, key, now)
    key.revoked_at = now
    await session.flush()


async def create_key_for_operator(
    session: AsyncSession,
    organization_id: int,
    *,
    user_email: str | None,
    name: str,
    test: bool,
) -> tuple[User, ApiKey, str]:
    """A key made on the server itself (`chainpay key create`, no API key needed): for the
    owner, or for the organization's user with `user_email`. Raw key once."""
    if user_email is None:
        user = await repository.get_owner(session, organization_id)
        if user is None:
            raise UserNotFound()
    else:
        found = await repository.get_user_by_email(session, user_email)
        if found is None:
            raise NotFound(f"No user with email {user_email}", param="user")
        if found.organization_id != organization_id:
            raise InvalidInput(
                f"{user_email} belongs to organization #{found.organization_id}, "
                f"not #{organization_id}",
                param="user",
            )
        user = found
    key, raw = await _issue_key(session, user, name=name, test=test, expires_at=None)
    return user, key, raw


# --- helpers -------------------------------------------------------------------------------


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise RoleRequired()


def _working(key: ApiKey, now: datetime) -> bool:
    return key.revoked_at is None and (key.expires_at is None or key.expires_at > now)


def _require_owner_for_staff(principal: Principal, user: User) -> None:
    """An admin minting or revoking the owner's (or another admin's) keys would be the owner."""
    if principal.role is not Role.OWNER and user.role != Role.USER.value:
        raise RoleRequired("Only the owner can manage the keys of admins and the owner")


async def _keep_an_owner_key(
    session: AsyncSession, holder: User, key: ApiKey, now: datetime
) -> None:
    """Refuse a revocation that would lock the owner out of a mode for good.

    Live keys can create test keys but not the other way round, so the owner keeps at least
    one working live key (once it has one) and, whatever its modes, one working key. Expired
    keys don't count. `holder` (the key's user) is locked by the caller.
    """
    if holder.role != Role.OWNER.value or not _working(key, now):
        return
    others = [
        k
        for k in await repository.list_live_keys(session, holder.id)
        if k.id != key.id and _working(k, now)
    ]
    if key.test and not others:
        raise LastOwnerKey(test=True)
    if not key.test and not any(not k.test for k in others):
        raise LastOwnerKey(test=False)


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
