"""Benchmark: webhook deliveries per second, and what one endpoint that never answers costs.

    python bench/webhook_delivery.py [--deliveries 2000] [--runs 2] [--database-url URL]

Four scenarios, each on a fresh database with the deliveries queued beforehand (not timed):
  1 endpoint;  50 endpoints;  the same two plus one endpoint that never answers (subscribed to
every event, so it has as many deliveries queued as all the healthy ones together).
Timed: from the sender's start until the receiver has answered every healthy delivery. The
receiver runs in its own process (answers 200 at once; the dead path holds the connection
open and never answers). Prints deliveries/s and the ratio with/without the dead endpoint
(goal: at least 0.9, i.e. healthy throughput drops by no more than 10 %).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import platform
import statistics
import tempfile
import time
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path

from aiohttp import web
from sqlalchemy import func, select

from chainpay.bootstrap import create_organization
from chainpay.migrations import upgrade
from core.config import Settings
from core.db import create_engine, create_sessionmaker, transaction
from core.events import service as events_service
from core.models import WebhookDelivery, WebhookEndpoint
from core.webhooks.crypto import SecretBox, new_secret
from core.webhooks.sender import WebhookSender

SECRET_KEY = "bench passphrase, not a real key"


def serve_receiver(port: int, healthy: Synchronized, ready: Synchronized) -> None:  # type: ignore[type-arg]
    async def main() -> None:
        forever = asyncio.Event()

        async def handle(request: web.Request) -> web.Response:
            await request.read()
            if request.path == "/dead":
                await forever.wait()
            with healthy.get_lock():
                healthy.value += 1
            return web.Response(text="ok")

        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=1024).start()
        ready.value = 1
        await forever.wait()

    asyncio.run(main())


async def queue_deliveries(
    settings: Settings, base: str, endpoints: int, dead: bool, deliveries: int
) -> int:
    """Endpoints and events (their delivery rows written by emit). Returns healthy deliveries."""
    created = await create_organization(
        settings, name="Bench", owner_email="bench@shop.example", test_key=True, first=False
    )
    box = SecretBox.from_settings(settings)
    engine = create_engine(settings.database_url)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            paths = [f"/h{i}" for i in range(endpoints)] + (["/dead"] if dead else [])
            for path in paths:
                session.add(
                    WebhookEndpoint(
                        organization_id=created.organization_id,
                        test=True,
                        url=base + path,
                        secret_encrypted=box.encrypt(new_secret()),
                    )
                )
        events = deliveries // endpoints
        for start in range(0, events, 500):
            async with transaction(create_sessionmaker(engine)) as session:
                for n in range(start, min(events, start + 500)):
                    await events_service.emit(
                        session,
                        organization_id=created.organization_id,
                        test=True,
                        type="webhook.test",
                        data={"n": n, "note": "benchmark delivery"},
                    )
    finally:
        await engine.dispose()
    return events * endpoints


async def deliver(settings: Settings, healthy: Synchronized, expected: int) -> float:  # type: ignore[type-arg]
    engine = create_engine(settings.database_url)
    stop = asyncio.Event()
    sender = WebhookSender(create_sessionmaker(engine), settings)
    started = time.perf_counter()
    task = asyncio.create_task(sender.run(stop))
    try:
        while healthy.value < expected:
            if task.done():
                task.result()
                raise RuntimeError("sender stopped early")
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
    finally:
        stop.set()
        await task
    try:
        async with create_sessionmaker(engine)() as session:
            done = await session.scalar(
                select(func.count(WebhookDelivery.id)).where(WebhookDelivery.status == "delivered")
            )
        if (done or 0) < expected:
            raise RuntimeError(f"only {done} of {expected} recorded as delivered")
    finally:
        await engine.dispose()
    return elapsed


def run_scenario(args: argparse.Namespace, endpoints: int, dead: bool) -> float:
    ctx = multiprocessing.get_context("spawn")
    healthy = ctx.Value("i", 0)
    ready = ctx.Value("i", 0)
    with tempfile.TemporaryDirectory() as tmp:
        database_url = args.database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        if args.database_url is None:
            upgrade(database_url)
        from tests.harness.server import free_port

        port = free_port()
        receiver = ctx.Process(target=serve_receiver, args=(port, healthy, ready), daemon=True)
        receiver.start()
        try:
            while not ready.value:
                time.sleep(0.01)
            settings = Settings(
                database_url=database_url,
                secret_key=SECRET_KEY,
                secret_key_file=Path(tmp) / "unused.key",
                webhooks_allow_private=True,
                webhook_poll_seconds=0.05,
            )
            expected = asyncio.run(
                queue_deliveries(
                    settings, f"http://127.0.0.1:{port}", endpoints, dead, args.deliveries
                )
            )
            elapsed = asyncio.run(deliver(settings, healthy, expected))
        finally:
            receiver.kill()
            receiver.join()
    return expected / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=4000, help="Healthy deliveries per run")
    parser.add_argument("--runs", type=int, default=3, help="Runs per scenario (median shown)")
    parser.add_argument(
        "--database-url",
        default=None,
        help="An EMPTY, migrated database (default: a fresh SQLite file per run)",
    )
    args = parser.parse_args()
    if args.database_url is not None and args.runs * 4 > 1:
        print("note: with --database-url every run adds rows to the same database")
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"database: {args.database_url or 'SQLite (fresh file per run)'}")
    results: dict[tuple[int, bool], list[float]] = {}
    for _ in range(args.runs):
        for endpoints in (1, 50):
            for dead in (False, True):  # alternate, so drift hits both sides alike
                rate = run_scenario(args, endpoints, dead)
                results.setdefault((endpoints, dead), []).append(rate)
                label = f"{endpoints:>2} endpoint(s){' + 1 dead' if dead else ''}"
                print(f"  {label:<26} {rate:8.0f} deliveries/s")
    print("median over runs:")
    for endpoints in (1, 50):
        plain = statistics.median(results[(endpoints, False)])
        with_dead = statistics.median(results[(endpoints, True)])
        verdict = "ok" if with_dead / plain >= 0.9 else "BELOW GOAL"
        print(
            f"  {endpoints:>2} endpoint(s): {plain:8.0f}/s alone, {with_dead:8.0f}/s with a dead "
            f"endpoint: ratio {with_dead / plain:.2f} ({verdict}, goal >= 0.90)"
        )


if __name__ == "__main__":
    main()
