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
from tests.harness.databases import database_per_module
from tests.harness.factories import test_settings
from tests.harness.server import live_server

database_url = pytest.fixture(scope="module", name="database_url")(database_per_module)


@pytest.fixture(scope="module")
def settings(database_url: str) -> Settings:
    return test_settings(database_url)


@pytest.fixture(scope="module")
def base_url(settings: Settings) -> Iterator[str]:
    with live_server(settings) as url:
        yield url
