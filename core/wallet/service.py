"""Receiving wallets: register an account xpub, hand out each deposit address exactly once."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import DepositAddress, OrganizationWallet
from core.models.base import utcnow
from core.orgs.exceptions import RoleRequired
from core.orgs.schemas import Principal
from core.wallet.derivation import InvalidXpub, derive_address, parse_account_xpub, xpub_fingerprint
from core.wallet.exceptions import BadXpub, WalletNotConfigured, XpubTaken


async def set_xpub(session: AsyncSession, organization_id: int, xpub: str) -> OrganizationWallet:
    """Register (or replace) the organization's account xpub. Another org's xpub is refused."""
    xpub = xpub.strip()
    try:
        parse_account_xpub(xpub)
    except InvalidXpub as exc:
        raise BadXpub(str(exc), param="xpub") from exc
    owner = await session.scalar(select(OrganizationWallet).where(OrganizationWallet.xpub == xpub))
    if owner is not None and owner.organization_id != organization_id:
        raise XpubTaken()
    wallet = await session.get(OrganizationWallet, organization_id)
    if wallet is None:
        wallet = OrganizationWallet(organization_id=organization_id, xpub=xpub, next_index=0)
        session.add(wallet)
    elif wallet.xpub != xpub:
        # A new account starts at index 0; addresses already handed out keep their sessions.
        wallet.xpub = xpub
        wallet.next_index = await _first_unused_index(session, organization_id, xpub)
        wallet.updated_at = utcnow()
    await session.flush()
    return wallet


async def set_xpub_as(session: AsyncSession, principal: Principal, xpub: str) -> OrganizationWallet:
    if not principal.is_admin:
        raise RoleRequired()
    return await set_xpub(session, principal.organization_id, xpub)


async def get_wallet(session: AsyncSession, principal: Principal) -> OrganizationWallet:
    wallet = await session.get(OrganizationWallet, principal.organization_id)
    if wallet is None:
        raise WalletNotConfigured()
    return wallet


async def allocate_address(session: AsyncSession, organization_id: int) -> DepositAddress:
    """The next deposit address of the organization, never handed out before.

    The index is taken with one UPDATE ... RETURNING: PostgreSQL's row lock (and SQLite's write
    lock) make concurrent callers wait for each other, so no two get the same index.
    """
    row = (
        await session.execute(
            update(OrganizationWallet)
            .where(OrganizationWallet.organization_id == organization_id)
            .values(next_index=OrganizationWallet.next_index + 1)
            .returning(OrganizationWallet.next_index, OrganizationWallet.xpub)
        )
    ).first()
    if row is None:
        raise WalletNotConfigured()
    index, xpub = int(row[0]) - 1, str(row[1])
    address = DepositAddress(
        organization_id=organization_id,
        address=derive_address(xpub, index),
        xpub_fingerprint=xpub_fingerprint(xpub),
        derivation_index=index,
    )
    session.add(address)
    await session.flush()
    return address


async def _first_unused_index(session: AsyncSession, organization_id: int, xpub: str) -> int:
    used = await session.scalars(
        select(DepositAddress.derivation_index).where(
            DepositAddress.organization_id == organization_id,
            DepositAddress.xpub_fingerprint == xpub_fingerprint(xpub),
        )
    )
    indices = list(used)
    return max(indices) + 1 if indices else 0
