"""Revision 0007 turns the per-chain watcher leases into named leases, keeping who holds them."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command

from chainpay.migrations import alembic_config, upgrade
from core.db import create_engine
from tests.harness.databases import fresh_postgres_database, sqlite_url, suite_backend

UNTIL = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)


@pytest.fixture
def empty_url(tmp_path: Path) -> Iterator[str]:
    if suite_backend() == "postgresql":
        with fresh_postgres_database() as url:
            yield url
    else:
        yield sqlite_url(tmp_path)


def run(url: str, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    async def go() -> list[tuple[Any, ...]]:
        engine = create_engine(url, pool=False)
        try:
            async with engine.begin() as connection:
                result = await connection.execute(sa.text(sql), params)
                return [tuple(r) for r in result] if result.returns_rows else []
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_a_held_watcher_lease_survives_the_upgrade_and_the_downgrade(empty_url: str) -> None:
    upgrade(empty_url, "0005")
    run(
        empty_url,
        "INSERT INTO watcher_leases (chain_id, owner, expires_at) VALUES (31337, 'host:1:abc', :t)",
        t=UNTIL,
    )
    upgrade(empty_url, "0006")
    assert run(empty_url, "SELECT name, owner FROM leases") == [("watcher:31337", "host:1:abc")]
    assert run(empty_url, "SELECT name FROM job_runs") == []
    command.downgrade(alembic_config(empty_url), "0005")
    assert run(empty_url, "SELECT chain_id, owner FROM watcher_leases") == [(31337, "host:1:abc")]
