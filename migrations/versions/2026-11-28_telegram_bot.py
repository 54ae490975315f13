"""telegram bot: the bot's users, cards, merchant links, paid-chat access, outbox and FSM state

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-28 16:00:00+00:00

`telegram_outbox` is what the bot still has to do in Telegram, written by its event consumer
in the consumer's transaction and sent outside any transaction (claimed for a while, so bot
replicas never send a row twice). `products.telegram_chat_id` binds a product to a paid chat.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models.base

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "telegram_states",
        sa.Column("key", sa.String(length=300), nullable=False),
        sa.Column("state", sa.String(length=200), nullable=True),
        sa.Column("data", sa.Text(), nullable=False),
        sa.Column("updated_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_telegram_states")),
    )
    op.create_table(
        "telegram_users",
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=True),
        sa.Column("blocked_at", core.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("reminders", sa.Boolean(), nullable=False),
        sa.Column("created_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("telegram_user_id", name=op.f("pk_telegram_users")),
    )
    op.create_table(
        "telegram_link_codes",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("test", sa.Boolean(), nullable=False),
        sa.Column("expires_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", core.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_telegram_link_codes_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_telegram_link_codes_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_link_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_telegram_link_codes_code_hash")),
    )
    with op.batch_alter_table("telegram_link_codes", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_telegram_link_codes_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_telegram_link_codes_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "telegram_merchants",
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column(
            "organization_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("user_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("test", sa.Boolean(), nullable=False),
        sa.Column("linked_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["organization_id"],
            ["organizations.id"],
            name=op.f("fk_telegram_merchants_organization_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_telegram_merchants_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("telegram_user_id", name=op.f("pk_telegram_merchants")),
    )
    with op.batch_alter_table("telegram_merchants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_telegram_merchants_organization_id"), ["organization_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_telegram_merchants_user_id"), ["user_id"], unique=False
        )

    op.create_table(
        "telegram_cards",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("message_id", sa.BigInteger(), nullable=False),
        sa.Column("is_photo", sa.Boolean(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=True),
        sa.Column("created_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["checkout_sessions.id"],
            name=op.f("fk_telegram_cards_session_id_checkout_sessions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_cards")),
        sa.UniqueConstraint(
            "session_id", "chat_id", name=op.f("uq_telegram_cards_session_id_chat_id")
        ),
    )
    with op.batch_alter_table("telegram_cards", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_telegram_cards_session_id"), ["session_id"], unique=False
        )

    op.create_table(
        "telegram_access",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column(
            "subscription_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("chat_id", sa.BigInteger(), nullable=False),
        sa.Column("telegram_user_id", sa.BigInteger(), nullable=False),
        sa.Column("invite_link", sa.String(length=200), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("approved_at", core.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("removed_at", core.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_telegram_access_subscription_id_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_access")),
        sa.UniqueConstraint(
            "subscription_id", "chat_id", name=op.f("uq_telegram_access_subscription_id_chat_id")
        ),
    )
    with op.batch_alter_table("telegram_access", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_telegram_access_chat_id"), ["chat_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_telegram_access_subscription_id"), ["subscription_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_telegram_access_telegram_user_id"), ["telegram_user_id"], unique=False
        )

    op.create_table(
        "telegram_claims",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column(
            "subscription_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("expires_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("used_at", core.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("used_by_telegram_user_id", sa.BigInteger(), nullable=True),
        sa.Column("created_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_telegram_claims_subscription_id_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_claims")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_telegram_claims_token_hash")),
    )
    with op.batch_alter_table("telegram_claims", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_telegram_claims_subscription_id"), ["subscription_id"], unique=False
        )

    op.create_table(
        "telegram_outbox",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("dedupe_key", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("chat_id", sa.BigInteger(), nullable=True),
        sa.Column(
            "session_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column(
            "subscription_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True
        ),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("available_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", core.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("done_at", core.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.Column("created_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["session_id"],
            ["checkout_sessions.id"],
            name=op.f("fk_telegram_outbox_session_id_checkout_sessions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_telegram_outbox_subscription_id_subscriptions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_telegram_outbox")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_telegram_outbox_dedupe_key")),
    )
    with op.batch_alter_table("telegram_outbox", schema=None) as batch_op:
        batch_op.create_index(
            "ix_telegram_outbox_pending", ["done_at", "available_at"], unique=False
        )

    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("telegram_chat_id", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("telegram_chat_id")

    with op.batch_alter_table("telegram_outbox", schema=None) as batch_op:
        batch_op.drop_index("ix_telegram_outbox_pending")

    op.drop_table("telegram_outbox")
    with op.batch_alter_table("telegram_claims", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telegram_claims_subscription_id"))

    op.drop_table("telegram_claims")
    with op.batch_alter_table("telegram_access", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telegram_access_telegram_user_id"))
        batch_op.drop_index(batch_op.f("ix_telegram_access_subscription_id"))
        batch_op.drop_index(batch_op.f("ix_telegram_access_chat_id"))

    op.drop_table("telegram_access")
    with op.batch_alter_table("telegram_cards", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telegram_cards_session_id"))

    op.drop_table("telegram_cards")
    with op.batch_alter_table("telegram_merchants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telegram_merchants_user_id"))
        batch_op.drop_index(batch_op.f("ix_telegram_merchants_organization_id"))

    op.drop_table("telegram_merchants")
    with op.batch_alter_table("telegram_link_codes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_telegram_link_codes_user_id"))
        batch_op.drop_index(batch_op.f("ix_telegram_link_codes_organization_id"))

    op.drop_table("telegram_link_codes")
    op.drop_table("telegram_users")
    op.drop_table("telegram_states")
