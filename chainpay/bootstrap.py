"""Create tenants and keys from the command line: `chainpay init`, `org create`, `key create`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import Clock, DatabaseClock, SystemClock
from core.config import Settings
from core.db import create_engine, create_sessionmaker, transaction
from core.errors import AppError
from core.models import Organization
from core.orgs import repository as orgs_repository
from core.orgs import service as orgs_service
from core.orgs.schemas import Principal, Role
from core.telegram import links as telegram_links
from core.wallet import service as wallet_service
from core.wallet.derivation import account_xpub_from_mnemonic, generate_dev_mnemonic
from core.webhooks import secrets as webhook_secrets
from core.webhooks.crypto import SecretBox


class AlreadyInitialized(AppError):
    code = "already_initialized"


@dataclass(frozen=True)
class NewOrganization:
    organization_id: int
    organization_name: str
    owner_user_id: int
    owner_email: str
    api_key_id: int
    api_key: str
    test: bool
    webhook_secret: str


async def has_organizations(settings: Settings) -> bool:
    engine = create_engine(settings.database_url, pool=False)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            return bool(await session.scalar(select(func.count(Organization.id))))
    finally:
        await engine.dispose()


async def create_organization(
    settings: Settings, *, name: str, owner_email: str, test_key: bool, first: bool
) -> NewOrganization:
    """Organization + owner + first key in one transaction. `first` refuses a non-empty database."""
    engine = create_engine(settings.database_url, pool=False)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            if first and (await session.scalar(select(func.count(Organization.id)))):
                raise AlreadyInitialized(
                    "chainpay is already initialized here; add merchants with `chainpay org create`"
                )
            org, owner, key, raw = await orgs_service.create_organization(
                session, name=name, owner_email=owner_email, test_key=test_key
            )
            webhook_secret = await webhook_secrets.create_default_secret(
                session, org.id, SecretBox.from_settings(settings)
            )
            return NewOrganization(
                organization_id=org.id,
                organization_name=org.name,
                owner_user_id=owner.id,
                owner_email=owner.email,
                api_key_id=key.id,
                api_key=raw,
                test=key.test,
                webhook_secret=webhook_secret,
            )
    finally:
        await engine.dispose()


class OrganizationRequired(AppError):
    """Bad usage: several organizations and none named."""

    code = "organization_required"


async def _named_or_only_organization(
    session: AsyncSession, organization_id: int | None
) -> Organization:
    """The organization `--org` names, or the only one when it names none."""
    if organization_id is None:
        ids = list(await session.scalars(select(Organization.id).limit(2)))
        if not ids:
            raise AppError("No organization here yet: run `chainpay init` first")
        if len(ids) > 1:
            raise OrganizationRequired(
                "There are several organizations here: name one with --org ID"
            )
        organization_id = ids[0]
    organization = await session.get(Organization, organization_id)
    if organization is None:
        raise AppError(f"No organization #{organization_id}")
    return organization


async def owner_principal(
    session: AsyncSession, organization_id: int | None, *, test: bool
) -> tuple[Organization, Principal]:
    """The organization (the only one unless named) and its owner acting without an API key, in
    test or live mode: who the operator's own commands (`chainpay demo`, `dev webhook-listen`)
    act as on this server."""
    organization = await _named_or_only_organization(session, organization_id)
    owner = await orgs_repository.get_owner(session, organization.id)
    if owner is None:
        raise AppError(f"Organization #{organization.id} has no owner")
    principal = Principal(
        api_key_id=0,  # no API key: the operator acts on the server itself
        organization_id=organization.id,
        user_id=owner.id,
        role=Role.OWNER,
        test=test,
    )
    return organization, principal


@dataclass(frozen=True)
class NewApiKey:
    organization_id: int
    organization_name: str
    user_id: int
    user_email: str
    role: str
    api_key_id: int
    api_key: str
    name: str
    test: bool


async def create_api_key(
    settings: Settings,
    *,
    organization_id: int | None,
    user_email: str | None,
    name: str,
    test: bool,
) -> NewApiKey:
    """`chainpay key create`: a key for the owner (or `user_email`) of the organization (the
    only one when none is named), without an API key: how an operator recovers access."""
    engine = create_engine(settings.database_url, pool=False)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            organization = await _named_or_only_organization(session, organization_id)
            user, key, raw = await orgs_service.create_key_for_operator(
                session, organization.id, user_email=user_email, name=name, test=test
            )
            return NewApiKey(
                organization_id=organization.id,
                organization_name=organization.name,
                user_id=user.id,
                user_email=user.email,
                role=user.role,
                api_key_id=key.id,
                api_key=raw,
                name=key.name,
                test=key.test,
            )
    finally:
        await engine.dispose()


@dataclass(frozen=True)
class NewTelegramLinkCode:
    organization_id: int
    user_id: int
    user_email: str
    code: str
    expires_at: str  # ISO 8601, UTC
    test: bool


async def create_telegram_link_code(
    settings: Settings, *, user_email: str, organization_id: int | None, test: bool
) -> NewTelegramLinkCode:
    """`chainpay user link-telegram`: a one-time `/link` code for the user with `user_email`
    (of organization `organization_id` when given), made on the server without an API key."""
    engine = create_engine(settings.database_url, pool=False)
    try:
        sessionmaker = create_sessionmaker(engine)
        clock: Clock = SystemClock()
        if settings.clock == "database":  # the clock every process of a test run follows
            database_clock = DatabaseClock(sessionmaker)
            await database_clock.refresh()
            clock = database_clock
        async with transaction(sessionmaker) as session:
            user = await orgs_repository.get_user_by_email(session, user_email)
            if user is None:
                raise AppError(f"No user with email {user_email}", param="user")
            if organization_id is not None:
                organization = await _named_or_only_organization(session, organization_id)
                if user.organization_id != organization.id:
                    raise AppError(
                        f"{user_email} belongs to organization #{user.organization_id}, "
                        f"not #{organization.id}",
                        param="user",
                    )
            link = await telegram_links.create_link_code(
                session,
                organization_id=user.organization_id,
                user_id=user.id,
                test=test,
                now=clock.now(),
            )
            return NewTelegramLinkCode(
                organization_id=user.organization_id,
                user_id=user.id,
                user_email=user.email,
                code=link.code,
                expires_at=link.expires_at.isoformat(),
                test=test,
            )
    finally:
        await engine.dispose()


DEV_WALLET_FILE = "chainpay-dev-wallet.txt"
DEV_WALLET_WARNING = (
    "DEV WALLET: a fresh mnemonic was written to {path} (mode 0600). It is for local devnets "
    "ONLY. Never send real funds to its addresses; in production register an xpub from your "
    "own wallet with `chainpay wallet set-xpub`."
)


def write_dev_wallet(directory: Path) -> tuple[Path, str]:
    """Generate a devnet mnemonic, store it owner-only, and return its account xpub."""
    path = directory / DEV_WALLET_FILE
    if path.exists():
        mnemonic = path.read_text().strip()
    else:
        mnemonic = generate_dev_mnemonic()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(mnemonic + "\n")
    return path, account_xpub_from_mnemonic(mnemonic)


async def set_xpub(settings: Settings, xpub: str, organization_id: int | None) -> int:
    """Register `xpub` for an organization (the only one when none is named). Returns its id."""
    engine = create_engine(settings.database_url, pool=False)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            organization = await _named_or_only_organization(session, organization_id)
            await wallet_service.set_xpub(session, organization.id, xpub)
            return organization.id
    finally:
        await engine.dispose()
