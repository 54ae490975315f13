"""watcher indexes: the expiry job's open sessions, each step's newly final payments

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 23:55:00+00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_checkout_sessions_status_expires_at",
        "checkout_sessions",
        ["status", "expires_at"],
        unique=False,
    )
    op.create_index(
        "ix_payments_chain_status_block",
        "payments",
        ["chain_id", "status", "block_number"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_payments_chain_status_block", table_name="payments")
    op.drop_index("ix_checkout_sessions_status_expires_at", table_name="checkout_sessions")
