"""Merchants' Telegram accounts: a one-time code made by a chainpay user (API or command line),
redeemed in the bot with `/link <code>`, links that Telegram account to the user.

The link carries the mode of what made the code: a test code makes a test merchant, whose
invoices are test ones. Only the code's SHA-256 is stored; the raw code is shown once.
"""

from __future__ import annotations

import hashlib
import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import TelegramLinkCode, TelegramMerchant, User
from core.orgs.schemas import Principal, Role
from core.telegram.exceptions import LinkCodeInvalid
from core.telegram.schemas import LinkCode

LINK_CODE_TTL = timedelta(minutes=10)
# Easy to read and type: no 0/O, 1/I/L. 31 symbols, 10 of them: about 49 bits, for a code
# that lives 10 minutes and works once.
LINK_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
LINK_CODE_LENGTH = 10
# Longer input is not a code; refused before hashing anything.
_MAX_TYPED_LENGTH = 64


def _normalized(code: str) -> str:
    """What the user typed, as generated: case, spaces and dashes do not matter."""
    return "".join(code.split()).replace("-", "").upper()


def _hash(code: str) -> str:
    return hashlib.sha256(code.encode("ascii")).hexdigest()


async def create_link_code(
    session: AsyncSession, *, organization_id: int, user_id: int, test: bool, now: datetime
) -> LinkCode:
    """A new one-time code for `user_id`, valid `LINK_CODE_TTL` from `now`; shown only here."""
    code = "".join(secrets.choice(LINK_CODE_ALPHABET) for _ in range(LINK_CODE_LENGTH))
    expires_at = now + LINK_CODE_TTL
    session.add(
        TelegramLinkCode(
            code_hash=_hash(code),
            organization_id=organization_id,
            user_id=user_id,
            test=test,
            expires_at=expires_at,
            created_at=now,
        )
    )
    await session.flush()
    return LinkCode(code=code, expires_at=expires_at)


async def redeem_link_code(
    session: AsyncSession, code: str, *, telegram_user_id: int, now: datetime
) -> TelegramMerchant:
    """Link `telegram_user_id` to the code's user, organization and mode; the code works once.

    Unknown, used and expired codes raise the same `LinkCodeInvalid`. The code is marked used
    by a conditional UPDATE, so of two concurrent redeems exactly one matches a row. A Telegram
    account linked before is moved to the code's user, organization and mode.
    """
    typed = _normalized(code)
    if not typed or len(typed) > _MAX_TYPED_LENGTH or not typed.isascii():
        raise LinkCodeInvalid()
    claimed = (
        await session.execute(
            update(TelegramLinkCode)
            .where(
                TelegramLinkCode.code_hash == _hash(typed),
                TelegramLinkCode.used_at.is_(None),
                TelegramLinkCode.expires_at > now,
            )
            .values(used_at=now)
            .returning(
                TelegramLinkCode.organization_id, TelegramLinkCode.user_id, TelegramLinkCode.test
            )
            .execution_options(synchronize_session=False)
        )
    ).first()
    if claimed is None:
        raise LinkCodeInvalid()
    organization_id, user_id, test = claimed
    link = {"organization_id": organization_id, "user_id": user_id, "test": test}
    # An upsert: a second code redeemed at the same time for the same account cannot fail on
    # the primary key; the last one to commit wins.
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    await session.execute(
        insert(TelegramMerchant)
        .values(telegram_user_id=telegram_user_id, linked_at=now, **link)
        .on_conflict_do_update(index_elements=["telegram_user_id"], set_={**link, "linked_at": now})
    )
    merchant = await session.scalar(
        select(TelegramMerchant)
        .where(TelegramMerchant.telegram_user_id == telegram_user_id)
        .execution_options(populate_existing=True)
    )
    assert merchant is not None  # written just above, in this transaction
    return merchant


async def merchant_of(session: AsyncSession, telegram_user_id: int) -> TelegramMerchant | None:
    """The chainpay account a Telegram user is linked to, if any."""
    return await session.get(TelegramMerchant, telegram_user_id)


async def unlink(session: AsyncSession, telegram_user_id: int) -> bool:
    """Forget a Telegram account's link; False when it was not linked."""
    result = await session.execute(
        delete(TelegramMerchant)
        .where(TelegramMerchant.telegram_user_id == telegram_user_id)
        .execution_options(synchronize_session="fetch")
    )
    return bool(getattr(result, "rowcount", 0))


async def merchants_of_organization(
    session: AsyncSession, organization_id: int, *, test: bool
) -> list[TelegramMerchant]:
    """The Telegram accounts linked to an organization in one mode (who gets notified)."""
    result = await session.scalars(
        select(TelegramMerchant)
        .where(TelegramMerchant.organization_id == organization_id, TelegramMerchant.test == test)
        .order_by(TelegramMerchant.telegram_user_id)
    )
    return list(result.all())


def principal_for(merchant: TelegramMerchant, role: Role) -> Principal:
    """The bot acts as the linked user, in the link's mode, with `role` (the user's, read now)."""
    return Principal(
        api_key_id=0,  # no API key: the bot acts through the link
        organization_id=merchant.organization_id,
        user_id=merchant.user_id,
        role=role,
        test=merchant.test,
    )


async def merchant_principal(session: AsyncSession, telegram_user_id: int) -> Principal | None:
    """Who a Telegram user acts as: the linked user with its current role, in the link's mode;
    None when the account is not linked or its user is gone."""
    row = (
        await session.execute(
            select(TelegramMerchant, User.role)
            .join(
                User,
                (User.id == TelegramMerchant.user_id)
                & (User.organization_id == TelegramMerchant.organization_id),
            )
            .where(TelegramMerchant.telegram_user_id == telegram_user_id)
        )
    ).first()
    if row is None:
        return None
    merchant, role = row
    return principal_for(merchant, Role(role))
