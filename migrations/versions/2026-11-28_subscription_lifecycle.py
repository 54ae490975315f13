"""subscription lifecycle: the next step on the clock, renewal requests and reminders, past due,
expiry, access end of cancelled subscriptions, the period anchor; products' grace and late-payment
policy

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28 17:00:00+00:00

Existing subscriptions get their next step at their period end (the job works out the rest),
their period anchor at the trial end or start, and a cancelled one its access end at its
cancellation (cancelling ended access at once before this revision).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models.base

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("grace_seconds", sa.BigInteger(), nullable=True))
        batch_op.add_column(
            sa.Column(
                "reactivate_on_late_payment",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )

    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("next_action_at", core.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("renewal_due_for", core.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("reminders_sent", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(
            sa.Column("past_due_at", core.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("expired_at", core.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("ends_at", core.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column("anchor_at", core.models.base.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "anchor_paid_usd",
                core.models.base.ExactDecimal(),
                nullable=False,
                server_default="0",
            )
        )
        batch_op.create_index(
            batch_op.f("ix_subscriptions_next_action_at"), ["next_action_at"], unique=False
        )

    op.execute(
        "UPDATE subscriptions SET anchor_at = COALESCE(trial_ends_at, created_at), "
        "next_action_at = CASE WHEN status IN ('trial', 'active', 'past_due') "
        "THEN current_period_end END"
    )
    op.execute(
        "UPDATE subscriptions SET ends_at = cancelled_at, next_action_at = cancelled_at "
        "WHERE status = 'cancelled'"
    )


def downgrade() -> None:
    with op.batch_alter_table("subscriptions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_subscriptions_next_action_at"))
        batch_op.drop_column("anchor_paid_usd")
        batch_op.drop_column("anchor_at")
        batch_op.drop_column("ends_at")
        batch_op.drop_column("expired_at")
        batch_op.drop_column("past_due_at")
        batch_op.drop_column("reminders_sent")
        batch_op.drop_column("renewal_due_for")
        batch_op.drop_column("next_action_at")

    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("reactivate_on_late_payment")
        batch_op.drop_column("grace_seconds")
