"""Each bot test module gets a database of its own (and, when a test asks for the API, a live
server on it).

Every module starts its own anvil chains (blocks from 0), while the watcher's cursors live in
the database: in the suite's shared database a later module's fresh chain would sit below the
cursor an earlier module's chain left, and its payments would never be scanned.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from core.config import Settings
from tests.harness.databases import fresh_migrated_database
from tests.harness.factories import test_settings
from tests.harness.server import live_server


@pytest.fixture(scope="module")
def database_url(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[str]:
    name = request.module.__name__.rsplit(".", 1)[-1]
    with fresh_migrated_database(tmp_path_factory.mktemp(name)) as url:
        yield url


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return test_settings(database_url)


@pytest.fixture(scope="module")
def base_url(settings: Settings) -> Iterator[str]:
    with live_server(settings) as url:
        yield url
