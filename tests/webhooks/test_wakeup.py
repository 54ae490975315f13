"""A request that queues a delivery wakes this process's sender when its transaction commits:
the test delivery and a redelivery go out at once, not at the sender's next poll."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from api.app import create_app
from core.db import create_engine, create_sessionmaker
from core.webhooks.sender import WebhookSender
from tests.harness.factories import Tenant, test_settings
from tests.harness.receiver import Receiver

SENDER_POLL_SECONDS = 30.0  # far longer than any wait below


@pytest.fixture
def test_tenant(tenant_factory: Callable[..., Tenant]) -> Tenant:
    return tenant_factory(test=True)  # test mode: http endpoints on loopback


async def test_test_delivery_and_redelivery_wake_the_sender_in_this_process(
    database_url: str, test_tenant: Tenant, receiver: Receiver
) -> None:
    settings = test_settings(database_url, webhook_poll_seconds=SENDER_POLL_SECONDS)
    engine = create_engine(database_url)
    sessionmaker = create_sessionmaker(engine)
    app = create_app(settings, sessionmaker)
    stop = asyncio.Event()
    sender = asyncio.create_task(WebhookSender(sessionmaker, settings).run(stop))
    try:
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=app),
                base_url="http://chainpay.test/v1",
                headers={"X-API-Key": test_tenant.key},
            ) as client,
        ):
            await asyncio.sleep(0.2)  # the sender's first (empty) round is over: it waits
            created = await client.post("/webhooks/endpoints", json={"url": receiver.url("/woken")})
            assert created.status_code == 201, created.text
            queued = await client.post(f"/webhooks/endpoints/{created.json()['uuid']}/test")
            assert queued.status_code == 202, queued.text
            await _received(receiver, "/woken", 1)

            again = await client.post(f"/webhooks/events/{queued.json()['eventId']}/redeliver")
            assert again.status_code == 202, again.text
            await _received(receiver, "/woken", 2)
        got = receiver.at("/woken")
        assert [r.headers["webhook-id"] for r in got] == [queued.json()["eventId"]] * 2
    finally:
        stop.set()
        await asyncio.wait_for(sender, timeout=10)
        await engine.dispose()


async def _received(receiver: Receiver, path: str, count: int, seconds: float = 3.0) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while len(receiver.at(path)) < count:
        assert asyncio.get_running_loop().time() < deadline, "the sender was not woken"
        await asyncio.sleep(0.02)
