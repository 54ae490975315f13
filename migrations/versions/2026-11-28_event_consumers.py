"""event consumers: a named cursor over the outbox for each reader besides webhooks

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 14:00:00+00:00

`event_consumers` holds, per consumer name, the id up to which every event was handled and the
ids it skipped because their transaction had not committed yet (JSON: id -> Unix time first
missed). A consumer's batch locks its row and moves both in the transaction of its handler.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models.base

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "event_consumers",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("after_id", sa.BigInteger(), nullable=False),
        sa.Column("holes", sa.Text(), nullable=False),
        sa.Column("updated_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_event_consumers")),
    )


def downgrade() -> None:
    op.drop_table("event_consumers")
