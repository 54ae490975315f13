"""Create tenants from the command line: `chainpay init` and `chainpay org create`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from core.config import Settings
from core.db import create_engine, create_sessionmaker, transaction
from core.errors import AppError
from core.models import Organization
from core.orgs import service as orgs_service


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
            return NewOrganization(
                organization_id=org.id,
                organization_name=org.name,
                owner_user_id=owner.id,
                owner_email=owner.email,
                api_key_id=key.id,
                api_key=raw,
                test=key.test,
            )
    finally:
        await engine.dispose()
