"""Fixtures for tests that run the same check on both backends in one run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.databases import fresh_postgres_database, sqlite_url


@pytest.fixture(params=["sqlite", "postgresql"])
def backend_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh empty database on each backend (PostgreSQL skips, or fails in CI, without one)."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
    else:
        with fresh_postgres_database() as url:
            yield url
