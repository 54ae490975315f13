"""SSRF guard: private targets are refused when an endpoint is saved and again at connect time,
and the connection goes to the address that was checked (DNS rebinding cannot move it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.factories import Api, Tenant, test_settings
from tests.harness.receiver import Receiver
from tests.harness.server import live_server
from tests.webhooks.conftest import send_due
from tests.webhooks.test_delivery import deliveries, new_endpoint, queue_test

PUBLIC = "93.184.216.34"
# Stand-in DNS: names for the cases the machine's resolver cannot produce offline.
ANSWERS = {
    "localhost": ["127.0.0.1", "::1"],
    "intranet.test": ["10.1.2.3"],
    "metadata.test": ["169.254.169.254"],
    "mixed.test": [PUBLIC, "192.168.0.5"],
    "rebind.test": [PUBLIC],
    "hooks.example": [PUBLIC],
}


async def fixed_dns(host: str, port: int) -> list[str]:
    if host not in ANSWERS:
        raise OSError(f"{host}: no such name")
    return ANSWERS[host]


@pytest.fixture(scope="module")
def guarded_base_url(database_url: str) -> Iterator[str]:
    """The API as production runs it: private targets not allowed."""
    settings = test_settings(database_url, webhooks_allow_private=False)
    with live_server(settings, resolve=fixed_dns) as url:
        yield url


@pytest.fixture
def guarded(guarded_base_url: str, api: Api, tenant: Tenant) -> Api:
    created = api.post("/api-key", json={"name": "t", "userId": tenant.owner_id, "test": True})
    return Api(guarded_base_url, created.json()["key"])


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://127.1/hook",
        "http://2130706433/hook",
        "http://10.0.0.1/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://localhost:8000/hook",
        "http://intranet.test/hook",
        "http://metadata.test/hook",
        "http://mixed.test/hook",
        "http://no-such-name.test/hook",
    ],
)
def test_private_targets_are_refused_when_saving(guarded: Api, url: str) -> None:
    response = guarded.post("/webhooks/endpoints", json={"url": url})
    assert response.status_code == 422, response.text
    assert response.json()["param"] == "url"
    endpoint = new_endpoint(guarded, "http://hooks.example/ok")
    moved = guarded.request("PATCH", f"/webhooks/endpoints/{endpoint['uuid']}", json={"url": url})
    assert moved.status_code == 422
    assert moved.json()["param"] == "url"
    assert guarded.get(f"/webhooks/endpoints/{endpoint['uuid']}").json()["url"].endswith("/ok")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://10.0.0.1/hook",
        "http://metadata.test/hook",
        "http://no-such-name.test/hook",
    ],
)
def test_a_sessions_own_webhook_url_is_checked_when_the_session_is_made(
    guarded: Api, url: str
) -> None:
    session = {"productName": "Item", "description": "d", "price": "10"}
    response = guarded.post("/transaction/session-checkout", json={**session, "webhookUrl": url})
    assert response.status_code == 422, response.text
    assert response.json()["param"] == "webhookUrl"
    accepted = guarded.post(
        "/transaction/session-checkout", json={**session, "webhookUrl": "http://hooks.example/s"}
    )
    assert accepted.status_code == 200, accepted.text


def test_a_live_sessions_webhook_url_must_use_https(guarded_base_url: str, tenant: Tenant) -> None:
    live = Api(guarded_base_url, tenant.key)
    session = {"productName": "Item", "description": "d", "price": "10"}
    response = live.post(
        "/transaction/session-checkout", json={**session, "webhookUrl": "http://hooks.example/s"}
    )
    assert response.status_code == 422, response.text
    assert response.json()["param"] == "webhookUrl"
    assert "https" in response.json()["error"]


def test_public_targets_are_accepted(guarded: Api) -> None:
    for url in ("http://hooks.example/a", f"http://{PUBLIC}/b", "http://rebind.test/c"):
        assert guarded.post("/webhooks/endpoints", json={"url": url}).status_code == 201


@pytest.mark.parametrize("host", ["127.0.0.1", "[::ffff:127.0.0.1]", "localhost"])
def test_private_targets_are_refused_at_connect_time(
    sandbox: Api, receiver: Receiver, database_url: str, settings: Any, host: str
) -> None:
    port = receiver.base.rsplit(":", 1)[1]
    # Saved while private targets were allowed (a changed setting, a record from before).
    endpoint = new_endpoint(sandbox, f"http://{host}:{port}/inside")
    queue_test(sandbox, endpoint)
    guarded = test_settings(database_url, webhooks_allow_private=False)
    assert send_due(database_url, guarded) == 1
    [delivery] = deliveries(sandbox, endpoint)
    assert delivery["attemptLog"][0]["error"].startswith("blocked"), delivery
    assert delivery["attemptLog"][0]["statusCode"] is None
    assert receiver.at("/inside") == []


def test_dns_rebinding_is_caught_and_the_checked_address_is_the_one_used(
    guarded: Api, sandbox: Api, receiver: Receiver, database_url: str, settings: Any
) -> None:
    port = receiver.base.rsplit(":", 1)[1]
    # Saved while the name answered with a public address.
    endpoint = new_endpoint(guarded, f"http://rebind.test:{port}/rebound")
    queue_test(sandbox, endpoint)

    async def rebound(host: str, port: int) -> list[str]:
        return ["127.0.0.1"] if host == "rebind.test" else await fixed_dns(host, port)

    # The name now answers with a loopback address: refused at connect time.
    guarded = test_settings(database_url, webhooks_allow_private=False)
    send_due(database_url, guarded, resolve=rebound)
    [delivery] = deliveries(sandbox, endpoint)
    assert delivery["attemptLog"][0]["error"].startswith("blocked")
    assert receiver.at("/rebound") == []
    # Where private targets are allowed, the post reaches the address our resolver returned:
    # `rebind.test` exists in no real DNS, so the connection was pinned to the checked answer.
    sandbox.post(f"/webhooks/events/{delivery['eventId']}/redeliver")
    send_due(database_url, settings, resolve=rebound)
    [got] = receiver.at("/rebound")
    assert got.headers["host"] == f"rebind.test:{port}"
