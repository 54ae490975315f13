"""Receiving wallets: register an account xpub, hand out each deposit address exactly once."""

from __future__ import annotations

from sqlalchemy import bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import DepositAddress, OrganizationWallet, WalletAccount
from core.models.base import utcnow
from core.orgs.exceptions import RoleRequired
from core.orgs.schemas import Principal
from core.wallet.derivation import InvalidXpub, account_key, derive_address
from core.wallet.exceptions import BadXpub, WalletNotConfigured, XpubTaken


async def set_xpub(session: AsyncSession, organization_id: int, xpub: str) -> WalletAccount:
    """Receive at the account behind `xpub` from now on; returns that account.

    An account is its public key and chain code, however the xpub is encoded. One that another
    organization has ever registered is refused; one of ours keeps its index, so switching
    accounts and back never hands out an address twice.
    """
    xpub = xpub.strip()
    try:
        key = account_key(xpub)
    except InvalidXpub as exc:
        raise BadXpub(str(exc), param="xpub") from exc
    account = await _claim_account(session, organization_id, key, xpub)
    now = utcnow()
    account.xpub = xpub
    account.updated_at = now
    wallet = await session.get(OrganizationWallet, organization_id)
    if wallet is None:
        session.add(OrganizationWallet(organization_id=organization_id, account_key=key))
    elif wallet.account_key != key:
        wallet.account_key = key
        wallet.updated_at = now
    await session.flush()
    return account


async def set_xpub_as(session: AsyncSession, principal: Principal, xpub: str) -> WalletAccount:
    if not principal.is_admin:
        raise RoleRequired()
    return await set_xpub(session, principal.organization_id, xpub)


async def get_wallet(session: AsyncSession, principal: Principal) -> WalletAccount:
    """The account the organization receives at now."""
    account = await session.scalar(
        select(WalletAccount)
        .join(OrganizationWallet, OrganizationWallet.account_key == WalletAccount.account_key)
        .where(OrganizationWallet.organization_id == principal.organization_id)
    )
    if account is None:
        raise WalletNotConfigured()
    return account


# Built once (every session creation runs it; building it cost more than running it).
_TAKE_INDEX = (
    update(WalletAccount)
    .where(
        WalletAccount.account_key
        == select(OrganizationWallet.account_key)
        .where(OrganizationWallet.organization_id == bindparam("org"))
        .scalar_subquery(),
        WalletAccount.organization_id == bindparam("org"),
    )
    .values(next_index=WalletAccount.next_index + 1)
    .returning(WalletAccount.next_index, WalletAccount.xpub, WalletAccount.account_key)
)


async def allocate_address(session: AsyncSession, organization_id: int) -> DepositAddress:
    """The next deposit address of the organization, never handed out before.

    The index is taken with one UPDATE ... RETURNING: PostgreSQL's row lock (and SQLite's write
    lock) make concurrent callers wait for each other, so no two get the same index.
    """
    row = (await session.execute(_TAKE_INDEX, {"org": organization_id})).first()
    if row is None:
        raise WalletNotConfigured()
    index, xpub, key = int(row[0]) - 1, str(row[1]), str(row[2])
    address = DepositAddress(
        organization_id=organization_id,
        address=derive_address(xpub, index),
        xpub_fingerprint=key,
        derivation_index=index,
    )
    session.add(address)
    await session.flush()
    return address


async def _claim_account(
    session: AsyncSession, organization_id: int, key: str, xpub: str
) -> WalletAccount:
    """The organization's row for the account, made on its first registration; XpubTaken when
    the account is another organization's (never saying whose)."""
    account = await session.get(WalletAccount, key)
    if account is None:
        start = await _after_handed_out(session, organization_id, xpub)
        try:
            async with session.begin_nested():
                account = WalletAccount(
                    account_key=key, organization_id=organization_id, xpub=xpub, next_index=start
                )
                session.add(account)
                await session.flush()
        except IntegrityError:  # registered at the same moment by another transaction
            account = await session.get(WalletAccount, key, populate_existing=True)
    if account is None or account.organization_id != organization_id:
        raise XpubTaken()
    return account


async def _after_handed_out(session: AsyncSession, organization_id: int, xpub: str) -> int:
    """The first index of a newly registered account whose addresses are not in use yet.

    Usually 0. Addresses handed out before accounts had rows (when only the xpub string was
    known) may exist: the account's indices were handed out 0, 1, 2, ... without gaps, so
    doubling and then halving finds their end in a few lookups. Any of them held by another
    organization means the account is theirs.
    """

    async def handed_out(index: int) -> bool:
        holder = await session.scalar(
            select(DepositAddress.organization_id).where(
                DepositAddress.address == derive_address(xpub, index)
            )
        )
        if holder is not None and holder != organization_id:
            raise XpubTaken()
        return holder is not None

    if not await handed_out(0):
        return 0
    low, high = 0, 1  # low is handed out; high is not known yet
    while await handed_out(high):
        low, high = high, high * 2
    while high - low > 1:
        middle = (low + high) // 2
        if await handed_out(middle):
            low = middle
        else:
            high = middle
    return high
