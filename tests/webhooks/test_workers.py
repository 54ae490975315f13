"""Two `chainpay worker` processes share one outbox: no delivery is attempted twice, none is
left behind."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from sqlalchemy import func, select

from core.db import create_engine, create_sessionmaker, transaction
from core.events import service as events_service
from core.models import WebhookDelivery
from tests.harness.factories import Api, Tenant
from tests.harness.receiver import Receiver
from tests.webhooks.test_delivery import new_endpoint

pytestmark = pytest.mark.slow


def emit_events(database_url: str, organization_id: int, count: int) -> None:
    async def run() -> None:
        engine = create_engine(database_url, pool=False)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                for n in range(count):
                    await events_service.emit(
                        session,
                        organization_id=organization_id,
                        test=True,
                        type="webhook.test",
                        data={"n": n},
                    )
        finally:
            await engine.dispose()

    asyncio.run(run())


def delivered(database_url: str, organization_id: int) -> int:
    async def run() -> int:
        engine = create_engine(database_url, pool=False)
        try:
            async with create_sessionmaker(engine)() as session:
                return int(
                    await session.scalar(
                        select(func.count(WebhookDelivery.id)).where(
                            WebhookDelivery.organization_id == organization_id,
                            WebhookDelivery.status == "delivered",
                        )
                    )
                    or 0
                )
        finally:
            await engine.dispose()

    return asyncio.run(run())


def worker(database_url: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINPAY_")}
    env.update(
        CHAINPAY_DATABASE_URL=database_url,
        CHAINPAY_SECRET_KEY=os.environ["CHAINPAY_SECRET_KEY"],
        CHAINPAY_WEBHOOKS_ALLOW_PRIVATE="true",
        CHAINPAY_WEBHOOK_POLL_SECONDS="0.05",
        CHAINPAY_WEBHOOK_MAX_IN_FLIGHT="16",
        CHAINPAY_WEBHOOK_PER_ENDPOINT_IN_FLIGHT="1",
        CHAINPAY_AUTO_MIGRATE="false",
        CHAINPAY_LOG_LEVEL="warning",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "chainpay", "worker"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def test_two_workers_deliver_everything_exactly_once(
    sandbox: Api, tenant: Tenant, receiver: Receiver, database_url: str
) -> None:
    receiver.delays["/many"] = 0.01  # slow enough that both workers have work in flight
    new_endpoint(sandbox, receiver.url("/many"))
    workers = [worker(database_url), worker(database_url)]
    try:
        for _ in range(3):
            emit_events(database_url, tenant.organization_id, 100)
        deadline = time.monotonic() + 90
        while delivered(database_url, tenant.organization_id) < 300:
            assert time.monotonic() < deadline, "deliveries still pending"
            assert all(w.poll() is None for w in workers), "a worker died"
            time.sleep(0.2)
    finally:
        for w in workers:
            w.send_signal(signal.SIGTERM)
        codes = [w.wait(timeout=30) for w in workers]
    assert codes == [0, 0], [w.stderr.read() if w.stderr else b"" for w in workers]
    ids = Counter(r.headers["webhook-id"] for r in receiver.at("/many"))
    assert len(ids) == 300
    assert max(ids.values()) == 1  # no delivery was attempted twice
    # Each worker posts one at a time to an endpoint: two at once means both were working.
    assert receiver.peak_in_flight["/many"] == 2
