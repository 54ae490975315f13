"""Signed deliveries to a real receiver, verified by standardwebhooks, qbitflow 2.1.0's verifier
and the 1.1.0 SDK's server-side check; retries on a hand-moved clock; rotation; disabling."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from qbitflow import QBitFlow
from qbitflow.dto.transaction.session import SessionWebhookResponse
from qbitflow.dto.transaction.status import TransactionStatusValue
from standardwebhooks import Webhook, WebhookVerificationError

from core.db import create_engine, create_sessionmaker
from core.webhooks.crypto import new_secret
from core.webhooks.sender import WebhookSender
from tests.harness import qbitflow21
from tests.harness.factories import (
    Api,
    Tenant,
    make_member,
    make_product,
    pay_session,
    test_settings,
)
from tests.harness.receiver import HANG, Receiver
from tests.webhooks.conftest import Clock, send_due


def new_endpoint(api: Api, url: str, **extra: Any) -> dict[str, Any]:
    response = api.post("/webhooks/endpoints", json={"url": url, **extra})
    assert response.status_code == 201, response.text
    return dict(response.json())


def queue_test(api: Api, endpoint: dict[str, Any]) -> dict[str, Any]:
    response = api.post(f"/webhooks/endpoints/{endpoint['uuid']}/test")
    assert response.status_code == 202, response.text
    return dict(response.json())


def deliveries(api: Api, endpoint: dict[str, Any]) -> list[dict[str, Any]]:
    response = api.get(f"/webhooks/endpoints/{endpoint['uuid']}/deliveries")
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def qbitflow_signature(secret: str, timestamp: str, body: bytes) -> str:
    """By hand, from QBitFlow's description (the body is already canonical)."""
    message = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


# --- management ------------------------------------------------------------------------------


def test_endpoint_lifecycle_shows_the_secret_once(sandbox: Api) -> None:
    created = new_endpoint(
        sandbox, "http://127.0.0.1:9/hook", description="orders", eventTypes=["session.completed"]
    )
    assert created["secret"].startswith("whsec_")
    assert created["test"] is True
    assert created["eventTypes"] == ["session.completed"]
    assert created["active"] is True
    uuid = created["uuid"]
    fetched = sandbox.get(f"/webhooks/endpoints/{uuid}").json()
    assert "secret" not in fetched
    assert fetched["description"] == "orders"
    listed = sandbox.get("/webhooks/endpoints").json()["items"]
    assert [e["uuid"] for e in listed] == [uuid]
    assert "secret" not in listed[0]
    assert created["secret"] not in json.dumps(listed)

    changed = sandbox.request(
        "PATCH", f"/webhooks/endpoints/{uuid}", json={"eventTypes": ["*"], "active": False}
    ).json()
    assert changed["eventTypes"] is None
    assert changed["active"] is False
    rotated = sandbox.post(f"/webhooks/endpoints/{uuid}/rotate-secret", json={"overlapHours": 2})
    assert rotated.status_code == 200, rotated.text
    assert rotated.json()["secret"] not in (created["secret"], None)
    assert rotated.json()["previousSecretExpiresAt"] is not None

    assert sandbox.delete(f"/webhooks/endpoints/{uuid}").status_code == 200
    assert sandbox.get(f"/webhooks/endpoints/{uuid}").status_code == 404


def test_bad_endpoint_input_names_the_field(sandbox: Api, api: Api) -> None:
    cases: list[tuple[Api, dict[str, Any], str]] = [
        (
            sandbox,
            {"url": "http://127.0.0.1:9/h", "eventTypes": ["payment.teleported"]},
            "eventTypes",
        ),
        (sandbox, {"url": "http://127.0.0.1:9/h", "eventTypes": []}, "eventTypes"),
        (sandbox, {"url": "ftp://127.0.0.1/h"}, "url"),
        (sandbox, {"url": "not a url"}, "url"),
        (sandbox, {"url": "http://user:pw@127.0.0.1:9/h"}, "url"),
        (api, {"url": "http://127.0.0.1:9/h"}, "url"),  # live keys need https
        (sandbox, {}, "url"),
    ]
    for client, body, param in cases:
        response = client.post("/webhooks/endpoints", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["param"] == param, (body, response.json())
    assert sandbox.get("/webhooks/endpoints").json()["items"] == []


def test_endpoints_are_private_to_their_organization_mode_and_admins(
    sandbox: Api, api: Api, base_url: str, tenant_factory: Callable[..., Tenant]
) -> None:
    endpoint = new_endpoint(sandbox, "http://127.0.0.1:9/hook")
    path = f"/webhooks/endpoints/{endpoint['uuid']}"
    stranger = Api(base_url, tenant_factory(test=True).key)
    for client in (stranger, api):  # another organization; the same one in live mode
        assert client.get(path).status_code == 404
        assert client.request("PATCH", path, json={"active": False}).status_code == 404
        assert client.post(path + "/rotate-secret").status_code == 404
        assert client.delete(path).status_code == 404
        assert client.get("/webhooks/endpoints").json()["items"] == []
    _, user_key = make_member(api, "user")
    user = Api(base_url, user_key)
    forbidden = user.post("/webhooks/endpoints", json={"url": "https://hooks.example/x"})
    assert forbidden.status_code == 403
    assert sandbox.get(path).json()["active"] is True


def test_event_types_are_listed_with_descriptions(api: Api) -> None:
    items = api.get("/webhooks/event-types").json()["items"]
    types = {item["type"] for item in items}
    for required in [
        "session.completed",
        "session.expired",
        "session.underpaid",
        "session.overpaid",
        "payment.detected",
        "payment.confirmed",
        "payment.orphaned",
        "payment.late",
        "subscription.created",
        "subscription.renewed",
        "subscription.renewal_due",
        "subscription.past_due",
        "subscription.expired",
        "subscription.cancelled",
        "webhook.test",
    ]:
        assert required in types
    assert all(item["description"] for item in items)


# --- signatures ------------------------------------------------------------------------------


def test_delivery_verifies_with_all_three_verifiers_and_tampering_fails_all(
    sandbox: Api,
    receiver: Receiver,
    database_url: str,
    settings: Any,
    sdk: Callable[[str], QBitFlow],
) -> None:
    endpoint = new_endpoint(sandbox, receiver.url("/hook"))
    secret = endpoint["secret"]
    queued = queue_test(sandbox, endpoint)
    assert send_due(database_url, settings) == 1
    [got] = receiver.at("/hook")
    body, headers = got.body, got.headers
    event = json.loads(body)
    assert event["id"] == queued["eventId"] == headers["webhook-id"]
    assert event["type"] == "webhook.test"
    assert headers["x-webhook-id"] == "test-webhook-id"
    ts, signature = headers["x-webhook-timestamp"], headers["x-webhook-signature-256"]

    client = sdk(sandbox.client.headers["X-API-Key"])
    assert Webhook(secret).verify(body, headers) == event
    assert qbitflow21.verify(secret, ts, signature, body) is True
    assert client.webhooks.verify(payload=body, signature=signature, timestamp=ts) is True
    # QBitFlow's scheme signs canonical JSON: re-serialized with spaces it still verifies.
    spaced = json.dumps(event, indent=2).encode()
    assert client.webhooks.verify(payload=spaced, signature=signature, timestamp=ts) is True

    changed = body.replace(b"chainpay test delivery", b"chainpay test deliverY")
    assert changed != body
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(changed, headers)
    assert qbitflow21.verify(secret, ts, signature, changed) is not True
    assert client.webhooks.verify(payload=changed, signature=signature, timestamp=ts) is False

    wrong = new_secret()
    with pytest.raises(WebhookVerificationError):
        Webhook(wrong).verify(body, headers)
    assert qbitflow21.verify(wrong, ts, signature, body) is not True
    forged = qbitflow_signature(wrong, ts, body)
    assert client.webhooks.verify(payload=body, signature=forged, timestamp=ts) is False

    old = str(int(time.time()) - 600)
    old_signature = qbitflow_signature(secret, old, body)
    old_headers = {
        **headers,
        "webhook-timestamp": old,
        "webhook-signature": Webhook(secret).sign(
            headers["webhook-id"], datetime_of(int(old)), body.decode()
        ),
    }
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, old_headers)
    assert "expired" in str(qbitflow21.verify(secret, old, old_signature, body))
    assert client.webhooks.verify(payload=body, signature=old_signature, timestamp=old) is False


def datetime_of(seconds: int) -> Any:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(seconds, tz=UTC)


def test_rotation_overlap_signs_with_both_secrets_then_only_the_new_one(
    sandbox: Api,
    receiver: Receiver,
    database_url: str,
    settings: Any,
    sdk: Callable[[str], QBitFlow],
) -> None:
    endpoint = new_endpoint(sandbox, receiver.url("/rot"))
    old = endpoint["secret"]
    path = f"/webhooks/endpoints/{endpoint['uuid']}"
    new = sandbox.post(path + "/rotate-secret").json()["secret"]
    queue_test(sandbox, endpoint)
    send_due(database_url, settings)
    [got] = receiver.at("/rot")
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(old).verify(got.body, got.headers)
    assert Webhook(new).verify(got.body, got.headers)
    ts = got.headers["x-webhook-timestamp"]
    assert qbitflow21.verify(new, ts, got.headers["x-webhook-signature-256"], got.body) is True
    client = sdk(sandbox.client.headers["X-API-Key"])
    for secret in (old, new):
        signature = qbitflow_signature(secret, ts, got.body)
        assert client.webhooks.verify(payload=got.body, signature=signature, timestamp=ts)

    newest = sandbox.post(path + "/rotate-secret", json={"overlapHours": 0}).json()["secret"]
    queue_test(sandbox, endpoint)
    send_due(database_url, settings)
    latest = receiver.at("/rot")[-1]
    assert len(latest.headers["webhook-signature"].split(" ")) == 1
    assert Webhook(newest).verify(latest.body, latest.headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(new).verify(latest.body, latest.headers)
    ts = latest.headers["x-webhook-timestamp"]
    stale = qbitflow_signature(new, ts, latest.body)
    assert client.webhooks.verify(payload=latest.body, signature=stale, timestamp=ts) is False


# --- what a payment sends --------------------------------------------------------------------


def test_paid_session_reaches_its_webhook_url_and_filtered_endpoints(
    sandbox: Api, tenant: Tenant, receiver: Receiver, database_url: str, settings: Any
) -> None:
    only_completed = new_endpoint(
        sandbox, receiver.url("/completed"), eventTypes=["session.completed"]
    )
    everything = new_endpoint(sandbox, receiver.url("/all"))
    created = sandbox.post(
        "/transaction/session-checkout",
        json={
            "productName": "Course",
            "description": "Video <course> & notes",
            "price": "19.99",
            "webhookUrl": receiver.url("/session"),
        },
    )
    assert created.status_code == 200, created.text
    session = created.json()
    pay_session(database_url, session["depositAddress"], 19_990_000)
    send_due(database_url, settings)

    own = receiver.at("/session")
    types = [json.loads(r.body)["type"] for r in own]
    assert sorted(types) == ["payment.confirmed", "payment.detected", "session.completed"]
    for received in own:  # the session's own URL is signed with the organization's secret
        assert Webhook(tenant.webhook_secret).verify(received.body, received.headers)
    [completed] = [r for r in own if json.loads(r.body)["type"] == "session.completed"]
    parsed = SessionWebhookResponse.model_validate_json(completed.body)
    assert parsed.uuid == session["uuid"] == parsed.session.uuid
    assert parsed.status.status is TransactionStatusValue.COMPLETED
    assert parsed.status.tx_hash
    assert parsed.session.price == 19.99
    assert parsed.session.description == "Video <course> & notes"
    body = json.loads(completed.body)
    assert body["data"]["price"] == "19.99"
    assert body["data"]["paidUsd"] == "19.99"
    assert b"\\u003ccourse\\u003e \\u0026" in completed.body

    [only] = receiver.at("/completed")
    assert json.loads(only.body)["type"] == "session.completed"
    assert Webhook(only_completed["secret"]).verify(only.body, only.headers)
    assert len(receiver.at("/all")) == 3
    confirmed = next(r for r in receiver.at("/all") if b"payment.confirmed" in r.body)
    data = json.loads(confirmed.body)["data"]
    assert data["amountBaseUnits"] == "19990000"
    assert data["amountUsd"] == "19.99"
    assert Webhook(everything["secret"]).verify(confirmed.body, confirmed.headers)


# --- retries on a controllable clock ---------------------------------------------------------


def test_failing_receiver_is_retried_until_it_recovers(
    sandbox: Api, receiver: Receiver, database_url: str, settings: Any
) -> None:
    receiver.answer("/flaky", 500, (502, {}, "é" * 3000), 200)
    endpoint = new_endpoint(sandbox, receiver.url("/flaky"))
    queue_test(sandbox, endpoint)
    clock = Clock()
    assert send_due(database_url, settings, clock=clock) == 1
    assert send_due(database_url, settings, clock=clock) == 0  # not due yet
    clock.now += timedelta(seconds=6)
    assert send_due(database_url, settings, clock=clock) == 1
    clock.now += timedelta(minutes=4)
    assert send_due(database_url, settings, clock=clock) == 0
    clock.now += timedelta(minutes=2)
    assert send_due(database_url, settings, clock=clock) == 1
    [delivery] = deliveries(sandbox, endpoint)
    assert delivery["status"] == "delivered"
    assert delivery["attempts"] == 3
    log = delivery["attemptLog"]
    assert [a["attempt"] for a in log] == [1, 2, 3]
    assert [a["statusCode"] for a in log] == [500, 502, 200]
    assert log[0]["response"] == "answer 500"
    assert log[0]["error"] == "HTTP 500"
    assert len(log[1]["response"].encode()) <= 2048  # the first 2 KiB of a 6 KB answer
    assert log[1]["response"].startswith("éé")
    assert all(a["durationMs"] >= 0 for a in log)
    bodies = {r.body for r in receiver.at("/flaky")}
    ids = {r.headers["webhook-id"] for r in receiver.at("/flaky")}
    assert len(bodies) == 1
    assert len(ids) == 1


def test_retry_after_is_honoured(
    sandbox: Api, receiver: Receiver, database_url: str, settings: Any
) -> None:
    receiver.answer("/busy", (503, {"Retry-After": "3600"}), 200)
    endpoint = new_endpoint(sandbox, receiver.url("/busy"))
    queue_test(sandbox, endpoint)
    clock = Clock()
    assert send_due(database_url, settings, clock=clock) == 1
    clock.now += timedelta(minutes=30)
    assert send_due(database_url, settings, clock=clock) == 0
    clock.now += timedelta(minutes=31)
    assert send_due(database_url, settings, clock=clock) == 1
    assert deliveries(sandbox, endpoint)[0]["status"] == "delivered"


def test_gone_disables_the_endpoint_and_tells_the_owner(
    sandbox: Api, receiver: Receiver, database_url: str, settings: Any
) -> None:
    receiver.answer("/gone", 410)
    gone = new_endpoint(sandbox, receiver.url("/gone"))
    watcher = new_endpoint(sandbox, receiver.url("/ops"), eventTypes=["webhook.endpoint_disabled"])
    queue_test(sandbox, gone)
    send_due(database_url, settings)
    state = sandbox.get(f"/webhooks/endpoints/{gone['uuid']}").json()
    assert state["active"] is False
    assert state["disabledReason"] == "410 Gone"
    assert deliveries(sandbox, gone)[0]["status"] == "failed"
    [notice] = receiver.at("/ops")
    assert json.loads(notice.body)["data"]["endpointUUID"] == gone["uuid"]
    assert Webhook(watcher["secret"]).verify(notice.body, notice.headers)
    queue_test(sandbox, gone)  # a disabled endpoint is not posted to
    assert send_due(database_url, settings) == 0
    assert len(receiver.at("/gone")) == 1
    # Re-enabling sends what is still pending.
    receiver.answer("/gone", 200)
    sandbox.request("PATCH", f"/webhooks/endpoints/{gone['uuid']}", json={"active": True})
    assert send_due(database_url, settings) == 1


def test_events_that_keep_exhausting_retries_disable_the_endpoint(
    sandbox: Api, receiver: Receiver, database_url: str
) -> None:
    settings = test_settings(database_url, webhook_disable_after_exhausted=2)
    receiver.answer("/down", 500)
    endpoint = new_endpoint(sandbox, receiver.url("/down"))
    queue_test(sandbox, endpoint)
    queue_test(sandbox, endpoint)
    clock = Clock()
    total = 0
    for _ in range(12):
        total += send_due(database_url, settings, clock=clock)
        clock.now += timedelta(hours=27)
    assert total == 20  # ten attempts each: the first and nine retries
    for delivery in deliveries(sandbox, endpoint):
        assert delivery["status"] == "failed"
        assert delivery["attempts"] == 10
    state = sandbox.get(f"/webhooks/endpoints/{endpoint['uuid']}").json()
    assert state["active"] is False
    assert state["disabledReason"] == "2 events in a row failed every retry"


def test_a_dead_endpoint_does_not_hold_up_a_healthy_one(
    sandbox: Api, receiver: Receiver, database_url: str
) -> None:
    settings = test_settings(
        database_url,
        webhook_timeout_seconds=60,
        webhook_max_in_flight=8,
        webhook_per_endpoint_in_flight=2,
        webhook_poll_seconds=0.05,
    )
    receiver.answer("/dead", HANG)
    dead = new_endpoint(sandbox, receiver.url("/dead"))
    healthy = new_endpoint(sandbox, receiver.url("/ok"))
    for _ in range(10):
        queue_test(sandbox, dead)
    for _ in range(20):
        queue_test(sandbox, healthy)

    stop_holder: dict[str, Any] = {}

    def run_sender() -> None:
        async def main() -> None:
            stop = asyncio.Event()
            stop_holder["stop"], stop_holder["loop"] = stop, asyncio.get_running_loop()
            engine = create_engine(database_url)
            try:
                await WebhookSender(create_sessionmaker(engine), settings).run(stop)
            finally:
                await engine.dispose()

        asyncio.run(main())

    thread = threading.Thread(target=run_sender, daemon=True)
    thread.start()
    try:

        def healthy_done() -> bool:
            # The receiver answers before the sender records: wait for both.
            return len(receiver.at("/ok")) == 20 and all(
                d["status"] == "delivered" for d in deliveries(sandbox, healthy)
            )

        deadline = time.monotonic() + 60
        while not healthy_done() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(receiver.at("/ok")) == 20
        assert all(d["status"] == "delivered" for d in deliveries(sandbox, healthy))
        # Meanwhile the dead endpoint holds no more than its share and nothing has come back.
        assert receiver.peak_in_flight["/dead"] <= 2
        assert len(receiver.at("/dead")) <= 2
        assert all(d["attempts"] == 0 for d in deliveries(sandbox, dead))
    finally:
        stop_holder["loop"].call_soon_threadsafe(stop_holder["stop"].set)
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_subscription_events_carry_status_transitions(
    sandbox: Api, receiver: Receiver, database_url: str, settings: Any
) -> None:
    endpoint = new_endpoint(
        sandbox,
        receiver.url("/subs"),
        eventTypes=["subscription.created", "subscription.renewed", "subscription.cancelled"],
    )
    product = make_product(sandbox, price="7.5")
    created = sandbox.post(
        "/transaction/session-checkout",
        json={
            "productId": product["id"],
            "options": {
                "subscriptionType": "subscription",
                "frequency": {"value": 1, "unit": "months"},
            },
        },
    )
    assert created.status_code == 200, created.text
    address = created.json()["depositAddress"]
    tx = pay_session(database_url, address, 7_500_000)
    pay_session(database_url, address, 7_500_000)  # the next period, paid ahead
    send_due(database_url, settings)
    bodies = [json.loads(r.body) for r in receiver.at("/subs")]
    assert [b["type"] for b in bodies] == ["subscription.created", "subscription.renewed"]
    first, renewed = (b["data"] for b in bodies)
    assert first["previousStatus"] is None
    assert first["currentStatus"] == "active"
    assert first["tx"] == tx
    assert first["priceUsd"] == "7.5"
    assert renewed["subscriptionUUID"] == first["subscriptionUUID"]
    assert renewed["previousStatus"] == "active"
    assert renewed["periodsPaid"] == 2

    uuid = first["subscriptionUUID"]
    cancelled = sandbox.get(f"/transaction/subscription/processing/force-cancel/{uuid}")
    assert cancelled.status_code == 200, cancelled.text
    send_due(database_url, settings)
    last = json.loads(receiver.at("/subs")[-1].body)
    assert last["type"] == "subscription.cancelled"
    assert last["data"]["previousStatus"] == "active"
    assert last["data"]["currentStatus"] == "cancelled"
    for received in receiver.at("/subs"):
        assert Webhook(endpoint["secret"]).verify(received.body, received.headers)


def test_rotating_the_default_secret_keeps_the_old_one_for_the_overlap(
    sandbox: Api, tenant: Tenant, receiver: Receiver, database_url: str, settings: Any
) -> None:
    rotated = sandbox.post("/webhooks/default-secret/rotate", json={"overlapHours": 1})
    assert rotated.status_code == 200, rotated.text
    new = rotated.json()["secret"]
    assert new != tenant.webhook_secret
    created = sandbox.post(
        "/transaction/session-checkout",
        json={
            "productName": "Pass",
            "description": "Day pass",
            "price": "3",
            "webhookUrl": receiver.url("/own"),
        },
    ).json()
    pay_session(database_url, created["depositAddress"], 3_000_000)
    send_due(database_url, settings)
    received = receiver.at("/own")
    assert len(received) == 3
    for got in received:
        assert Webhook(new).verify(got.body, got.headers)
        assert Webhook(tenant.webhook_secret).verify(got.body, got.headers)
        ts = got.headers["x-webhook-timestamp"]
        assert qbitflow21.verify(new, ts, got.headers["x-webhook-signature-256"], got.body) is True
