"""The lifecycle job acts on every due subscription of a database: these tests move their clock
years ahead, so they get a database of their own (other tests' subscriptions would move too)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.harness.databases import fresh_migrated_database


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_migrated_database(tmp_path_factory.mktemp("lifecycle")) as url:
        yield url
