"""Real databases for tests: a SQLite file, or a fresh database on a real PostgreSQL server.

The suite's backend is chosen by CHAINPAY_TEST_BACKEND (sqlite, the default, or postgresql).
PostgreSQL tests need CHAINPAY_TEST_POSTGRES_URL, an admin URL of a running server
(`postgresql://user@127.0.0.1:5432/postgres`). Without it they skip with that reason, except
under CI=true, where a missing PostgreSQL is a failure.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

POSTGRES_ENV = "CHAINPAY_TEST_POSTGRES_URL"
BACKEND_ENV = "CHAINPAY_TEST_BACKEND"


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_or_skip(reason: str) -> None:
    """Skip locally when a real part is missing; in CI the same absence fails the test."""
    if in_ci():
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


def suite_backend() -> str:
    backend = os.environ.get(BACKEND_ENV, "sqlite").lower()
    if backend not in ("sqlite", "postgresql"):
        raise pytest.UsageError(f"{BACKEND_ENV} must be sqlite or postgresql, not {backend!r}")
    return backend


def postgres_admin_url() -> str | None:
    return os.environ.get(POSTGRES_ENV) or None


def sqlite_url(directory: Path) -> str:
    return f"sqlite+aiosqlite:///{directory / 'chainpay-test.db'}"


@contextmanager
def fresh_postgres_database() -> Iterator[str]:
    """A new, empty database on the configured server, dropped afterwards."""
    admin = postgres_admin_url()
    if admin is None:
        require_or_skip(f"no PostgreSQL server configured ({POSTGRES_ENV} is unset)")
        raise AssertionError("unreachable")
    admin_dsn = make_url(admin).set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"chainpay_test_{uuid.uuid4().hex[:12]}"

    async def run(sql: str) -> None:
        conn = await asyncpg.connect(admin_dsn)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    try:
        asyncio.run(run(f'CREATE DATABASE "{name}"'))
    except (OSError, asyncpg.PostgresError) as exc:
        require_or_skip(f"PostgreSQL at {POSTGRES_ENV} is not reachable: {exc}")
    url = make_url(admin).set(drivername="postgresql+asyncpg", database=name)
    try:
        yield url.render_as_string(hide_password=False)
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@contextmanager
def fresh_migrated_database(directory: Path) -> Iterator[str]:
    """A new database of the suite's backend, migrated to head (SQLite: a file in `directory`)."""
    from chainpay.migrations import upgrade

    if suite_backend() == "postgresql":
        with fresh_postgres_database() as url:
            upgrade(url)
            yield url
    else:
        url = sqlite_url(directory)
        upgrade(url)
        yield url


def database_per_module(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A test module's own database (a conftest makes it the module's `database_url`).

    Modules that start their own anvil chains (blocks from 0) and step the real watcher need
    one: the watcher's cursors live in the database, and in the suite's shared database a
    fresh chain sits below the cursor an earlier module's chain left, so its payments would
    never be scanned."""
    name = request.module.__name__.rsplit(".", 1)[-1]
    with fresh_migrated_database(tmp_path_factory.mktemp(name)) as url:
        yield url
