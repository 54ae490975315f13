"""pay as you go: PAYG sessions and subscriptions (units, free credits, bills), products' cap

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28 14:08:56+00:00

QBitFlow's `pay_as_you_go` sessions were refused until this revision. A PAYG subscription is
billed in arrears at each period end for its units (core/subscriptions/payg.py), so it keeps
the current period's units, the free credits left, the sum of its bills and the open bill's
deadline; its session keeps the PAYG flag and the free credits until the subscriber starts; a
product caps what one period may bill (null: the server's default). Existing rows are not
PAYG, with nothing used or billed: the server defaults say so for the NOT NULL columns.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models.base

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("checkout_sessions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("payg", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("free_credits_usd", core.models.base.ExactDecimal(), nullable=True)
        )

    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("max_spending_per_period_usd", core.models.base.ExactDecimal(), nullable=True)
        )

    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("payg", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column(
                "units_current_period",
                core.models.base.ExactDecimal(),
                nullable=False,
                server_default="0",
            )
        )
        batch_op.add_column(
            sa.Column(
                "free_credits_usd",
                core.models.base.ExactDecimal(),
                nullable=False,
                server_default="0",
            )
        )
        batch_op.add_column(
            sa.Column(
                "billed_usd", core.models.base.ExactDecimal(), nullable=False, server_default="0"
            )
        )
        batch_op.add_column(
            sa.Column("bill_due_at", core.models.base.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_column("bill_due_at")
        batch_op.drop_column("billed_usd")
        batch_op.drop_column("free_credits_usd")
        batch_op.drop_column("units_current_period")
        batch_op.drop_column("payg")

    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("max_spending_per_period_usd")

    with op.batch_alter_table("checkout_sessions", schema=None) as batch_op:
        batch_op.drop_column("free_credits_usd")
        batch_op.drop_column("payg")
