"""named leases: one lease table for watchers (`watcher:<chain id>`) and jobs (`job:<name>`),
and the last run of each periodic job

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28 13:00:00+00:00

`watcher_leases` (keyed by chain id) becomes `leases` keyed by name; a lease a watcher holds
while this runs is carried over as `watcher:<chain id>`, so the active watcher keeps its chain.
`job_runs` records each job's last success (and last failure) for GET /health.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import core.models.base

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("expires_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )
    op.create_table(
        "job_runs",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("last_success_at", core.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_count", sa.BigInteger(), nullable=True),
        sa.Column("last_failure_at", core.models.base.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_runs")),
    )
    op.execute(
        "INSERT INTO leases (name, owner, expires_at) "
        "SELECT 'watcher:' || CAST(chain_id AS VARCHAR(30)), owner, expires_at FROM watcher_leases"
    )
    op.drop_table("watcher_leases")


def downgrade() -> None:
    op.create_table(
        "watcher_leases",
        sa.Column("chain_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("owner", sa.String(length=100), nullable=False),
        sa.Column("expires_at", core.models.base.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("chain_id", name=op.f("pk_watcher_leases")),
    )
    op.execute(
        "INSERT INTO watcher_leases (chain_id, owner, expires_at) "
        "SELECT CAST(SUBSTR(name, 9) AS BIGINT), owner, expires_at FROM leases "
        "WHERE name LIKE 'watcher:%'"
    )
    op.drop_table("job_runs")
    op.drop_table("leases")
