"""Each page test module gets a database of its own (see `database_per_module`)."""

from __future__ import annotations

import pytest

from tests.harness.databases import database_per_module

database_url = pytest.fixture(scope="module", name="database_url")(database_per_module)
