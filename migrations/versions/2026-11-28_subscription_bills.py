"""subscription bills: one row per billing period (trial, paid, open, past due, unpaid, void)

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28 16:03:09+00:00

The subscription history (`GET /v1/transaction/subscription/history/{uuid}`) lists billing
periods with their amount, status and payments (core/subscriptions/history.py). Subscriptions
that exist before this revision get their rows at their next transition (a payment, a renewal
request, past due, expiry, cancellation): the bills are brought in line with the
subscription's state whenever it emits an event.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models.base

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "subscription_bills",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("uuid", sa.String(length=36), nullable=False),
        sa.Column(
            "subscription_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False
        ),
        sa.Column("period_start", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("period_end", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("amount_usd", core.models.base.ExactDecimal(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("opened_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("due_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.Column("closed_at", core.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["subscription_id"],
            ["subscriptions.id"],
            name=op.f("fk_subscription_bills_subscription_id_subscriptions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscription_bills")),
        sa.UniqueConstraint(
            "subscription_id",
            "period_start",
            name=op.f("uq_subscription_bills_subscription_id_period_start"),
        ),
        sa.UniqueConstraint("uuid", name=op.f("uq_subscription_bills_uuid")),
    )


def downgrade() -> None:
    op.drop_table("subscription_bills")
