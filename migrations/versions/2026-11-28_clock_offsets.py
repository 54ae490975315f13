"""clock offsets: the shared offset of CHAINPAY_CLOCK=database

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 15:00:00+00:00

`clock_offsets` holds, per clock name, the milliseconds a `DatabaseClock` adds to the machine's
time. Without a row (every production database) the offset is zero.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models.base

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "clock_offsets",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("offset_ms", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_clock_offsets")),
    )


def downgrade() -> None:
    op.drop_table("clock_offsets")
