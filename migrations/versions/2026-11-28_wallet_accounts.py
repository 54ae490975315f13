"""wallet accounts: an xpub is identified by its public key and chain code, its index kept per account

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 12:00:00+00:00

Every registered xpub becomes a `wallet_accounts` row keyed by sha256(compressed public key ||
chain code), holding the index that was on `organization_wallets`; the organization's wallet
points at it. Deposit addresses of those accounts get the key as their fingerprint (it was
sha256 of the xpub string, cut to 16 hex digits). Should two organizations hold the same account
under two encodings (possible before), the one with its addresses keeps it, else the first to
register; the other's wallet is removed, and it is told to register one of its own when it next
creates a session.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from bip_utils import Bip32Secp256k1

import core.models.base

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


# Frozen here (not imported from core/), so this revision means the same thing forever.
def _account_key(xpub: str) -> str:
    key = Bip32Secp256k1.FromExtendedKey(xpub.strip())
    return hashlib.sha256(
        key.PublicKey().RawCompressed().ToBytes() + key.ChainCode().ToBytes()
    ).hexdigest()


def _legacy_fingerprint(xpub: str) -> str:
    return hashlib.sha256(xpub.strip().encode()).hexdigest()[:16]


_wallets = sa.table(
    "organization_wallets",
    sa.column("organization_id", sa.BigInteger),
    sa.column("xpub", sa.String),
    sa.column("next_index", sa.BigInteger),
    sa.column("account_key", sa.String),
    sa.column("created_at", core.models.base.UTCDateTime(timezone=True)),
    sa.column("updated_at", core.models.base.UTCDateTime(timezone=True)),
)
_accounts = sa.table(
    "wallet_accounts",
    sa.column("account_key", sa.String),
    sa.column("organization_id", sa.BigInteger),
    sa.column("xpub", sa.String),
    sa.column("next_index", sa.BigInteger),
    sa.column("created_at", core.models.base.UTCDateTime(timezone=True)),
    sa.column("updated_at", core.models.base.UTCDateTime(timezone=True)),
)
_addresses = sa.table(
    "deposit_addresses",
    sa.column("organization_id", sa.BigInteger),
    sa.column("xpub_fingerprint", sa.String),
)


def upgrade() -> None:
    op.create_table(
        "wallet_accounts",
        sa.Column("account_key", sa.String(length=64), nullable=False),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("xpub", sa.String(length=200), nullable=False),
        sa.Column("next_index", sa.BigInteger(), nullable=False),
        sa.Column("created_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_wallet_accounts_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_key", name=op.f("pk_wallet_accounts")),
    )
    op.create_index(
        op.f("ix_wallet_accounts_organization_id"),
        "wallet_accounts",
        ["organization_id"],
        unique=False,
    )
    with op.batch_alter_table("deposit_addresses") as batch_op:
        batch_op.alter_column(
            "xpub_fingerprint",
            existing_type=sa.String(length=16),
            type_=sa.String(length=64),
            existing_nullable=False,
        )
    with op.batch_alter_table("organization_wallets") as batch_op:
        batch_op.add_column(sa.Column("account_key", sa.String(length=64), nullable=True))

    bind = op.get_bind()
    wallets = bind.execute(
        sa.select(
            _wallets.c.organization_id,
            _wallets.c.xpub,
            _wallets.c.next_index,
            _wallets.c.created_at,
            _wallets.c.updated_at,
        )
    ).all()
    by_account: dict[str, list[Any]] = {}
    for row in wallets:
        by_account.setdefault(_account_key(row.xpub), []).append(row)
    for key, holders in by_account.items():

        def addresses(row: Any) -> int:
            return int(
                bind.scalar(
                    sa.select(sa.func.count()).where(
                        _addresses.c.organization_id == row.organization_id,
                        _addresses.c.xpub_fingerprint == _legacy_fingerprint(row.xpub),
                    )
                )
                or 0
            )

        holders.sort(key=lambda r: (-addresses(r), r.created_at, r.organization_id))
        owner, others = holders[0], holders[1:]
        bind.execute(
            _accounts.insert().values(
                account_key=key,
                organization_id=owner.organization_id,
                xpub=owner.xpub,
                next_index=owner.next_index,
                created_at=owner.created_at,
                updated_at=owner.updated_at,
            )
        )
        bind.execute(
            _wallets.update()
            .where(_wallets.c.organization_id == owner.organization_id)
            .values(account_key=key)
        )
        bind.execute(
            _addresses.update()
            .where(
                _addresses.c.organization_id == owner.organization_id,
                _addresses.c.xpub_fingerprint == _legacy_fingerprint(owner.xpub),
            )
            .values(xpub_fingerprint=key)
        )
        for other in others:
            bind.execute(
                _wallets.delete().where(_wallets.c.organization_id == other.organization_id)
            )

    with op.batch_alter_table("organization_wallets") as batch_op:
        batch_op.drop_constraint(op.f("uq_organization_wallets_xpub"), type_="unique")
        batch_op.alter_column("account_key", existing_type=sa.String(length=64), nullable=False)
        batch_op.create_foreign_key(
            op.f("fk_organization_wallets_account_key_wallet_accounts"),
            "wallet_accounts",
            ["account_key"],
            ["account_key"],
            ondelete="CASCADE",
        )
        batch_op.drop_column("next_index")
        batch_op.drop_column("xpub")


def downgrade() -> None:
    with op.batch_alter_table("organization_wallets") as batch_op:
        batch_op.add_column(sa.Column("xpub", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("next_index", sa.BigInteger(), nullable=True))
    bind = op.get_bind()
    accounts = bind.execute(
        sa.select(_accounts.c.account_key, _accounts.c.organization_id, _accounts.c.xpub)
    ).all()
    for account in accounts:
        bind.execute(
            _addresses.update()
            .where(
                _addresses.c.organization_id == account.organization_id,
                _addresses.c.xpub_fingerprint == account.account_key,
            )
            .values(xpub_fingerprint=_legacy_fingerprint(account.xpub))
        )
    current = sa.select(_accounts.c.xpub, _accounts.c.next_index).where(
        _accounts.c.account_key == _wallets.c.account_key
    )
    bind.execute(
        _wallets.update().values(
            xpub=current.with_only_columns(_accounts.c.xpub).scalar_subquery(),
            next_index=current.with_only_columns(_accounts.c.next_index).scalar_subquery(),
        )
    )
    with op.batch_alter_table("organization_wallets") as batch_op:
        batch_op.drop_constraint(
            op.f("fk_organization_wallets_account_key_wallet_accounts"), type_="foreignkey"
        )
        batch_op.drop_column("account_key")
        batch_op.alter_column("xpub", existing_type=sa.String(length=200), nullable=False)
        batch_op.alter_column("next_index", existing_type=sa.BigInteger(), nullable=False)
        batch_op.create_unique_constraint(op.f("uq_organization_wallets_xpub"), ["xpub"])
    with op.batch_alter_table("deposit_addresses") as batch_op:
        batch_op.alter_column(
            "xpub_fingerprint",
            existing_type=sa.String(length=64),
            type_=sa.String(length=16),
            existing_nullable=False,
        )
    op.drop_index(op.f("ix_wallet_accounts_organization_id"), table_name="wallet_accounts")
    op.drop_table("wallet_accounts")
