"""Suite-wide fixtures: one migrated database per run (SQLite or PostgreSQL) and a live API.

Tests stay isolated by tenancy: each test makes its own organizations, and every query the
API runs is scoped to the caller's organization, so tests never see each other's rows.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from qbitflow import QBitFlow, config

from chainpay.logs import configure_logging
from core.config import Settings
from tests.harness.databases import fresh_migrated_database
from tests.harness.factories import TEST_SECRET_KEY, Api, Tenant, make_tenant, test_settings

# Every Settings() of the run, and every chainpay process a test starts, encrypts with this key
# (instead of generating chainpay-secret.key in the working directory).
os.environ.setdefault("CHAINPAY_SECRET_KEY", TEST_SECRET_KEY)
from tests.harness.server import live_server


@pytest.fixture(scope="session", autouse=True)
def plain_logs() -> None:
    """The services log as in production (JSON lines), not with the console's rich tracebacks."""
    configure_logging("warning")


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_migrated_database(Path(tmp_path_factory.mktemp("db"))) as url:
        yield url


@pytest.fixture
def fresh_url(tmp_path: Path) -> Iterator[str]:
    """A database of its own for one test, for what is shared across organizations (job runs,
    leases, the clock's row) and so cannot be isolated by tenancy."""
    with fresh_migrated_database(tmp_path) as url:
        yield url


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return test_settings(database_url)


@pytest.fixture(scope="session")
def base_url(settings: Settings) -> Iterator[str]:
    with live_server(settings) as url:
        yield url


@pytest.fixture
def tenant_factory(database_url: str) -> Callable[..., Tenant]:
    def make(*, test: bool = False, wallet: bool = True) -> Tenant:
        return make_tenant(database_url, test=test, wallet=wallet)

    return make


@pytest.fixture
def tenant(tenant_factory: Callable[..., Tenant]) -> Tenant:
    return tenant_factory()


@pytest.fixture
def api(base_url: str, tenant: Tenant) -> Api:
    return Api(base_url, tenant.key)


@pytest.fixture
def sandbox(base_url: str, api: Api, tenant: Tenant) -> Api:
    """A test-mode key of the tenant: test chains (the devnet), http webhook endpoints."""
    created = api.post(
        "/api-key", json={"name": "sandbox", "userId": tenant.owner_id, "test": True}
    )
    assert created.status_code == 200, created.text
    return Api(base_url, created.json()["key"])


@pytest.fixture
def sdk(base_url: str) -> Iterator[Callable[[str], QBitFlow]]:
    """The real QBitFlow 1.1.0 SDK pointed at the live server: `sdk(key)` is a client."""
    previous = config.get_base_url()
    config.set_base_url(base_url + "/v1")
    try:
        yield lambda key: QBitFlow(api_key=key, max_retries=1)
    finally:
        config.set_base_url(previous)
