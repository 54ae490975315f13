"""Each page test module gets a database of its own.

The browser tests start their own anvil chains (blocks from 0) and step the real watcher, whose
cursors live in the database: in the suite's shared database a fresh chain sits below the
cursor an earlier module's chain left (and its stored blocks look like a reorg), so a payment
on it would never be scanned.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.databases import fresh_migrated_database


@pytest.fixture(scope="module")
def database_url(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    name = request.module.__name__.rsplit(".", 1)[-1]
    with fresh_migrated_database(tmp_path_factory.mktemp(name)) as url:
        yield url
