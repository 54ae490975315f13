"""Revision 0005 turns the xpub strings registered before it into accounts (public key + chain
code), keeping every organization's index and never letting two organizations share one."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from chainpay.migrations import upgrade
from core.db import create_engine, create_sessionmaker, transaction
from core.models.base import UTCDateTime
from core.wallet import service as wallet_service
from core.wallet.derivation import (
    account_key,
    account_xpub_from_mnemonic,
    derive_address,
    generate_dev_mnemonic,
)
from core.wallet.exceptions import XpubTaken
from tests.api.test_wallet_identity import reencoded

T0 = datetime(2026, 11, 20, tzinfo=UTC)

organizations = sa.table(
    "organizations",
    sa.column("id", sa.BigInteger),
    sa.column("name", sa.String),
    sa.column("created_at", UTCDateTime()),
)
old_wallets = sa.table(
    "organization_wallets",
    sa.column("organization_id", sa.BigInteger),
    sa.column("xpub", sa.String),
    sa.column("next_index", sa.BigInteger),
    sa.column("created_at", UTCDateTime()),
    sa.column("updated_at", UTCDateTime()),
)
addresses = sa.table(
    "deposit_addresses",
    sa.column("organization_id", sa.BigInteger),
    sa.column("address", sa.String),
    sa.column("xpub_fingerprint", sa.String),
    sa.column("derivation_index", sa.BigInteger),
    sa.column("created_at", UTCDateTime()),
)


def legacy_fingerprint(xpub: str) -> str:
    """What revision 0002's code stored for an address: the xpub string's hash, cut short."""
    return hashlib.sha256(xpub.encode()).hexdigest()[:16]


async def execute(url: str, *statements: sa.Executable) -> list[list[tuple[Any, ...]]]:
    engine = create_engine(url, pool=False)
    try:
        async with engine.begin() as connection:
            results: list[list[tuple[Any, ...]]] = []
            for statement in statements:
                result = await connection.execute(statement)
                results.append([tuple(r) for r in result] if result.returns_rows else [])
            return results
    finally:
        await engine.dispose()


def handed_out(organization_id: int, xpub: str, count: int) -> list[dict[str, object]]:
    return [
        {
            "organization_id": organization_id,
            "address": derive_address(xpub, index),
            "xpub_fingerprint": legacy_fingerprint(xpub),
            "derivation_index": index,
            "created_at": T0,
        }
        for index in range(count)
    ]


def test_registered_xpubs_become_accounts_and_keep_their_index(backend_url: str) -> None:
    x, y, old = (account_xpub_from_mnemonic(generate_dev_mnemonic()) for _ in range(3))
    upgrade(backend_url, "0004")
    asyncio.run(
        execute(
            backend_url,
            sa.insert(organizations).values(
                [{"id": n, "name": f"Shop {n}", "created_at": T0} for n in (1, 2, 3)]
            ),
            sa.insert(old_wallets).values(
                [
                    # Org 2 registered org 1's account re-encoded (the bug this revision fixes),
                    # a day later and with no address handed out: org 1 keeps the account.
                    {
                        "organization_id": 1,
                        "xpub": x,
                        "next_index": 3,
                        "created_at": T0,
                        "updated_at": T0,
                    },
                    {
                        "organization_id": 2,
                        "xpub": reencoded(x),
                        "next_index": 0,
                        "created_at": T0 + timedelta(days=1),
                        "updated_at": T0 + timedelta(days=1),
                    },
                    {
                        "organization_id": 3,
                        "xpub": y,
                        "next_index": 0,
                        "created_at": T0,
                        "updated_at": T0,
                    },
                ]
            ),
            # Org 3 used `old` before switching to y: only its addresses remember it.
            sa.insert(addresses).values(handed_out(1, x, 3) + handed_out(3, old, 5)),
        )
    )
    upgrade(backend_url)

    accounts, wallets, fingerprints = asyncio.run(
        execute(
            backend_url,
            sa.text(
                "SELECT account_key, organization_id, xpub, next_index FROM wallet_accounts"
                " ORDER BY organization_id"
            ),
            sa.text("SELECT organization_id, account_key FROM organization_wallets ORDER BY 1"),
            sa.text(
                "SELECT DISTINCT organization_id, xpub_fingerprint FROM deposit_addresses ORDER BY 1"
            ),
        )
    )
    assert [tuple(a) for a in accounts] == [
        (account_key(x), 1, x, 3),
        (account_key(y), 3, y, 0),
    ]
    assert [tuple(w) for w in wallets] == [(1, account_key(x)), (3, account_key(y))]
    assert [tuple(f) for f in fingerprints] == [
        (1, account_key(x)),
        (3, legacy_fingerprint(old)),  # its xpub string was never stored: left as it was
    ]

    async def afterwards() -> tuple[str, int, str]:
        engine = create_engine(backend_url, pool=False)
        sessionmaker = create_sessionmaker(engine)
        try:
            async with transaction(sessionmaker) as session:
                next_of_x = (await wallet_service.allocate_address(session, 1)).address
            # The account org 3 used before revision 0005 is still its own...
            with pytest.raises(XpubTaken):
                async with transaction(sessionmaker) as session:
                    await wallet_service.set_xpub(session, 2, reencoded(old))
            # ... and coming back to it continues after the five addresses it handed out.
            async with transaction(sessionmaker) as session:
                old_index = (await wallet_service.set_xpub(session, 3, reencoded(old))).next_index
                next_of_old = (await wallet_service.allocate_address(session, 3)).address
            return next_of_x, old_index, next_of_old
        finally:
            await engine.dispose()

    next_of_x, old_index, next_of_old = asyncio.run(afterwards())
    assert next_of_x == derive_address(x, 3)
    assert old_index == 5
    assert next_of_old == derive_address(old, 5)

    upgrade_down_and_up(backend_url)
    [accounts] = asyncio.run(
        execute(backend_url, sa.text("SELECT organization_id, next_index FROM wallet_accounts"))
    )
    assert sorted(tuple(a) for a in accounts) == [(1, 4), (3, 6)]


def upgrade_down_and_up(url: str) -> None:
    from alembic import command

    from chainpay.migrations import alembic_config

    command.downgrade(alembic_config(url), "0004")
    [wallets] = asyncio.run(
        execute(url, sa.text("SELECT organization_id, next_index FROM organization_wallets"))
    )
    assert sorted(tuple(w) for w in wallets) == [(1, 4), (3, 6)]
    upgrade(url)
