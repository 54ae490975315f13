"""Requests judge time by the process's clock (`app.state.clock`), not the machine's: key expiry,
signature windows, secret overlaps and redelivery move with a clock the test moves."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest

from core.checkout.context import CheckoutContext
from core.clock import ManualClock
from core.config import Settings
from core.events.canonical import canonical_json
from core.webhooks.signing import qbitflow_signature
from tests.harness.factories import Api, Tenant
from tests.harness.server import live_server

# Days ahead of the machine: anything judged by the machine's clock shows.
START = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(START)


@pytest.fixture
def clocked_url(settings: Settings, clock: ManualClock) -> Iterator[str]:
    context = CheckoutContext.from_settings(settings, clock=clock)
    with live_server(settings, checkout_context=context) as url:
        yield url


def test_key_expiry_is_judged_by_the_apps_clock(
    clocked_url: str, tenant_factory: Callable[..., Tenant], clock: ManualClock
) -> None:
    tenant = tenant_factory()
    api = Api(clocked_url, tenant.key)
    # Still in the machine's future, already in the clock's past.
    stale = api.post(
        "/api-key",
        json={
            "name": "stale",
            "userId": tenant.owner_id,
            "expiresAt": iso(START - timedelta(days=1)),
        },
    )
    assert stale.status_code == 422, stale.text
    created = api.post(
        "/api-key",
        json={
            "name": "hour",
            "userId": tenant.owner_id,
            "expiresAt": iso(START + timedelta(hours=1)),
        },
    )
    assert created.status_code == 200, created.text
    short_lived = Api(clocked_url, created.json()["key"])
    assert short_lived.get("/user").status_code == 200

    clock.advance(hours=2)
    assert short_lived.get("/user").status_code == 401
    assert api.get("/user").status_code == 200


def test_webhook_verify_rotation_and_redelivery_follow_the_apps_clock(
    clocked_url: str, tenant_factory: Callable[..., Tenant], clock: ManualClock
) -> None:
    api = Api(clocked_url, tenant_factory(test=True).key)  # test mode: plain-http loopback hooks
    rotated = api.post("/webhooks/default-secret/rotate", json={"overlapHours": 2})
    assert rotated.status_code == 200, rotated.text
    assert parse(rotated.json()["previousSecretExpiresAt"]) == START + timedelta(hours=2)
    secret = rotated.json()["secret"]

    payload = {"hello": "world"}

    def verify(timestamp: datetime) -> int:
        ts = str(int(timestamp.timestamp()))
        signature = qbitflow_signature(secret, ts, canonical_json(payload))
        body = {"payload": payload, "receivedSignature": signature, "receivedTimestamp": ts}
        return api.post("/webhooks/verify", json=body).status_code

    assert verify(START) == 200
    assert verify(datetime.now(UTC)) == 400  # days outside the clock's replay window

    endpoint = api.post("/webhooks/endpoints", json={"url": "http://127.0.0.1:9/hook"})
    assert endpoint.status_code == 201, endpoint.text
    queued = api.post(f"/webhooks/endpoints/{endpoint.json()['uuid']}/test")
    assert queued.status_code == 202, queued.text
    clock.advance(minutes=30)
    again = api.post(f"/webhooks/events/{queued.json()['eventId']}/redeliver")
    assert again.status_code == 202, again.text
    [delivery] = again.json()["items"]
    assert parse(delivery["nextAttemptAt"]) == START + timedelta(minutes=30)
