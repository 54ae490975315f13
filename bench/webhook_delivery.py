"""Benchmark: webhook deliveries per second, and what one endpoint that never answers costs.

    python bench/webhook_delivery.py [--deliveries 4000] [--runs 5] [--postgres URL] [--json PATH]

Four scenarios, each on a fresh database with the deliveries queued beforehand (not timed):
  1 endpoint;  50 endpoints;  the same two plus one endpoint that never answers (subscribed to
every event, so it has as many deliveries queued as all the healthy ones together).
Timed: from the sender's start until the receiver has answered every healthy delivery. The
receiver runs in its own process (answers 200 at once; the dead path holds the connection
open and never answers). Prints deliveries/s and the ratio with/without the dead endpoint
(goal: at least 0.9, i.e. healthy throughput drops by no more than 10 %).

Each run also prints the CPU time the hypervisor took from this machine meanwhile ("steal",
from /proc/stat): on a shared virtual machine that, not the scenario, moves single runs by
+-20 %, hence alternated scenarios and medians over several runs. `--json PATH` writes the
figures machine-readably (for `python -m bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import platform
import secrets
import socket
import statistics
import tempfile
import time
from multiprocessing.sharedctypes import Synchronized
from pathlib import Path
from typing import Any

from aiohttp import web
from machine import steal_seconds  # bench/machine.py
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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve_receiver(port: int, healthy: Synchronized, ready: Synchronized) -> None:
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
) -> tuple[int, int]:
    """Endpoints and events (delivery rows written by emit): (healthy deliveries, organization)."""
    created = await create_organization(
        settings,
        name="Bench",
        owner_email=f"bench-{secrets.token_hex(4)}@shop.example",
        test_key=True,
        first=False,
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
    return events * endpoints, created.organization_id


async def deliver(
    settings: Settings,
    healthy: Synchronized,
    expected: int,
    organization_id: int,
) -> float:
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
                select(func.count(WebhookDelivery.id)).where(
                    WebhookDelivery.status == "delivered",
                    WebhookDelivery.organization_id == organization_id,
                )
            )
        if (done or 0) < expected:
            raise RuntimeError(f"only {done} of {expected} recorded as delivered")
    finally:
        await engine.dispose()
    return elapsed


async def fresh_postgres_database(server_url: str) -> str:
    """CREATE DATABASE on the server; returns its SQLAlchemy URL (left for inspection)."""
    import asyncpg

    name = f"chainpay_bench_{secrets.token_hex(4)}"
    connection = await asyncpg.connect(server_url)
    try:
        await connection.execute(f'CREATE DATABASE "{name}"')
    finally:
        await connection.close()
    base = server_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://", 1)
    return f"{base}/{name}"


def run_scenario(args: argparse.Namespace, endpoints: int, dead: bool) -> float:
    ctx = multiprocessing.get_context("spawn")
    healthy = ctx.Value("i", 0)
    ready = ctx.Value("i", 0)
    with tempfile.TemporaryDirectory() as tmp:
        if args.postgres:
            database_url = asyncio.run(fresh_postgres_database(args.postgres))
        else:
            database_url = f"sqlite+aiosqlite:///{Path(tmp) / 'bench.db'}"
        upgrade(database_url)
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
            expected, organization_id = asyncio.run(
                queue_deliveries(
                    settings, f"http://127.0.0.1:{port}", endpoints, dead, args.deliveries
                )
            )
            elapsed = asyncio.run(deliver(settings, healthy, expected, organization_id))
        finally:
            receiver.kill()
            receiver.join()
    return expected / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deliveries", type=int, default=4000, help="Healthy deliveries per run")
    parser.add_argument("--runs", type=int, default=5, help="Runs per scenario (median shown)")
    parser.add_argument(
        "--postgres",
        default=None,
        help="A PostgreSQL server (postgresql://user@host:port/db): a fresh database per run "
        "(default: a fresh SQLite file per run)",
    )
    parser.add_argument("--json", type=Path, default=None, help="Write the figures here (JSON)")
    args = parser.parse_args()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
    )
    print(f"database: {'PostgreSQL' if args.postgres else 'SQLite'} (a fresh one per run)")
    results: dict[tuple[int, bool], list[float]] = {}
    steal: dict[tuple[int, bool], list[float]] = {}
    for _ in range(args.runs):
        for endpoints in (1, 50):
            for dead in (False, True):  # alternate, so drift hits both sides alike
                stolen = steal_seconds()
                rate = run_scenario(args, endpoints, dead)
                stolen = steal_seconds() - stolen
                results.setdefault((endpoints, dead), []).append(rate)
                steal.setdefault((endpoints, dead), []).append(round(stolen, 2))
                label = f"{endpoints:>2} endpoint(s){' + 1 dead' if dead else ''}"
                print(f"  {label:<26} {rate:8.0f} deliveries/s   (steal {stolen:4.1f} s)")
    print("median over runs:")
    scenarios: list[dict[str, Any]] = []
    for endpoints in (1, 50):
        plain = statistics.median(results[(endpoints, False)])
        with_dead = statistics.median(results[(endpoints, True)])
        verdict = "ok" if with_dead / plain >= 0.9 else "BELOW GOAL"
        print(
            f"  {endpoints:>2} endpoint(s): {plain:8.0f}/s alone, {with_dead:8.0f}/s with a dead "
            f"endpoint: ratio {with_dead / plain:.2f} ({verdict}, goal >= 0.90)"
        )
        scenarios.append(
            {
                "endpoints": endpoints,
                "alone_per_s_median": round(plain, 1),
                "with_dead_per_s_median": round(with_dead, 1),
                "ratio": round(with_dead / plain, 4),
                "alone_per_s": [round(r, 1) for r in results[(endpoints, False)]],
                "with_dead_per_s": [round(r, 1) for r in results[(endpoints, True)]],
                "steal_s": steal[(endpoints, False)] + steal[(endpoints, True)],
            }
        )
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "database": "postgresql" if args.postgres else "sqlite",
                    "parameters": {"deliveries": args.deliveries, "runs": args.runs},
                    "scenarios": scenarios,
                },
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
