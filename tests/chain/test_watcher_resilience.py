"""The watcher survives what production throws at it: flaky RPC endpoints, a real process kill
mid-backfill, and a second watcher process racing for the same chain."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from chain.devnet import Devnet, transfer, write_chains_file
from chain.rpc import RpcPool
from chain.watcher import ChainWatcher
from core.checkout.context import CheckoutContext
from core.db import create_engine, create_sessionmaker
from core.models import CheckoutSession, Event, Lease, Payment
from tests.harness.chains import devnet_or_skip, watcher_settings
from tests.harness.factories import Api
from tests.harness.rpc_proxy import Faults, rpc_proxy

pytestmark = pytest.mark.slow


@contextmanager
def own_devnet(chain_id: int) -> Iterator[Devnet]:
    """A chain of the test's own, so its cursor and blocks start fresh."""
    yield from devnet_or_skip(chains=((chain_id, 6),))


def make_paid_sessions(
    sandbox: Api, devnet: Devnet, chain_id: int, count: int, price: str = "1", gap_blocks: int = 0
) -> list[dict[str, Any]]:
    """`count` sessions, each paid in a block of its own (`gap_blocks` empty blocks between)."""
    node = devnet.node(chain_id)
    sessions = []
    for _ in range(count):
        created = sandbox.post(
            "/transaction/session-checkout",
            json={"productName": "R", "description": "d", "price": price},
        )
        assert created.status_code == 200
        sessions.append(created.json())
    units = int(price) * 10**6
    for session in sessions:
        transfer(node.rpc_url, devnet.tokens[chain_id][0], session["depositAddress"], units)
        if gap_blocks:
            node.mine(gap_blocks)
    node.mine(3)
    return sessions


def db_counts(database_url: str, addresses: list[str]) -> dict[str, int]:
    async def run() -> dict[str, int]:
        engine = create_engine(database_url, pool=False)
        try:
            async with create_sessionmaker(engine)() as session:
                payments = await session.scalar(
                    select(func.count(Payment.id)).where(
                        Payment.to_address.in_(addresses), Payment.status == "confirmed"
                    )
                )
                completed = await session.scalar(
                    select(func.count(CheckoutSession.id)).where(
                        CheckoutSession.deposit_address.in_(addresses),
                        CheckoutSession.status == "completed",
                    )
                )
                confirmed_events = await session.scalar(
                    select(func.count(Event.id))
                    .join(Payment, Payment.id == Event.payment_id)
                    .where(Payment.to_address.in_(addresses), Event.type == "payment.confirmed")
                )
                return {
                    "payments": int(payments or 0),
                    "completed": int(completed or 0),
                    "events": int(confirmed_events or 0),
                }
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_flaky_rpc_fails_over_and_shrinks_ranges_without_missing_anything(
    sandbox: Api, database_url: str
) -> None:
    with own_devnet(31341) as devnet:
        sessions = make_paid_sessions(sandbox, devnet, 31341, 12)
        devnet.node(31341).mine(40)
        upstream = devnet.node(31341).rpc_url
        flaky_faults = Faults(drop_every=7, stall_every=11, stall_seconds=3, max_log_range=8)
        with (
            rpc_proxy(upstream, Faults(dead=True)) as dead,
            rpc_proxy(upstream, flaky_faults) as flaky,
        ):
            settings = watcher_settings(database_url, devnet)

            async def run() -> tuple[int, int, list[int]]:
                engine = create_engine(database_url)
                try:
                    context = CheckoutContext.from_settings(settings)
                    chain = context.registry.chains[31341]
                    pool = RpcPool([dead, flaky], timeout=1.0)
                    watcher = ChainWatcher(
                        chain,
                        create_sessionmaker(engine),
                        context,
                        start_block=0,
                        chunk_blocks=64,
                        rpc=pool,
                    )
                    try:
                        for _ in range(400):
                            try:
                                if not await watcher.step():
                                    break
                            except Exception:  # an exhausted round of retries: the loop retries
                                continue
                        return (
                            watcher.sizer.size,
                            watcher.sizer.refusals,
                            [e.errors for e in pool.endpoints],
                        )
                    finally:
                        await watcher.close()
                finally:
                    await engine.dispose()

            size, refusals, errors = asyncio.run(run())
        addresses = [s["depositAddress"] for s in sessions]
        assert db_counts(database_url, addresses) == {"payments": 12, "completed": 12, "events": 12}
        assert refusals >= 1
        assert size <= 8  # shrank to what the provider accepts (its hint) and stayed there
        assert errors[0] > 0  # the dead endpoint was tried and marked
        assert flaky_faults.seen.get("eth_getLogs", 0) > 0


def watcher_process(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "chainpay", "watcher"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def process_env(database_url: str, chains_file: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINPAY_")}
    env.update(
        CHAINPAY_DATABASE_URL=database_url,
        CHAINPAY_CHAINS_FILE=str(chains_file),
        CHAINPAY_WATCHER_START_BLOCK="0",
        CHAINPAY_WATCHER_CHUNK_BLOCKS="2",
        CHAINPAY_WATCHER_MAX_CHUNK_BLOCKS="2",
        CHAINPAY_WATCHER_LEASE_SECONDS="2",
        CHAINPAY_WATCHER_POLL_SECONDS="0.2",
        CHAINPAY_AUTO_MIGRATE="false",
        CHAINPAY_LOG_LEVEL="warning",
    )
    return env


def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_killed_mid_backfill_the_restarted_watcher_credits_each_payment_once(
    sandbox: Api, database_url: str, tmp_path: Path
) -> None:
    with own_devnet(31342) as devnet:
        # Spread over ~360 blocks (2 per step): the watcher is still busy when it is killed.
        sessions = make_paid_sessions(sandbox, devnet, 31342, 60, gap_blocks=5)
        addresses = [s["depositAddress"] for s in sessions]
        env = process_env(database_url, write_chains_file(devnet, tmp_path / "chains.toml"))
        first = watcher_process(env)
        try:
            wait_for(
                lambda: db_counts(database_url, addresses)["payments"] >= 5, 60, "the first credits"
            )
            first.send_signal(signal.SIGKILL)  # a real crash, mid-backfill
            first.wait(10)
        finally:
            if first.poll() is None:
                first.kill()
        partial = db_counts(database_url, addresses)["payments"]
        assert 5 <= partial < 60, partial
        second = watcher_process(env)
        try:
            wait_for(
                lambda: db_counts(database_url, addresses)["completed"] == 60,
                90,
                "all sessions completed",
            )
        finally:
            second.terminate()
            second.wait(15)
        assert db_counts(database_url, addresses) == {"payments": 60, "completed": 60, "events": 60}


def test_two_watcher_processes_one_active_and_the_survivor_takes_over(
    sandbox: Api, database_url: str, tmp_path: Path
) -> None:
    with own_devnet(31343) as devnet:
        env = process_env(database_url, write_chains_file(devnet, tmp_path / "chains.toml"))
        env["CHAINPAY_WATCHER_MAX_CHUNK_BLOCKS"] = "500"
        processes = [watcher_process(env), watcher_process(env)]
        try:
            wait_for(lambda: lease_of(database_url, 31343) is not None, 60, "a lease")
            batch = make_paid_sessions(sandbox, devnet, 31343, 10)
            addresses = [s["depositAddress"] for s in batch]
            wait_for(
                lambda: db_counts(database_url, addresses)["completed"] == 10, 60, "the first batch"
            )
            owner = lease_of(database_url, 31343)
            assert owner is not None
            active = next(p for p in processes if f":{p.pid}:" in owner)
            active.send_signal(signal.SIGKILL)
            active.wait(10)
            later = make_paid_sessions(sandbox, devnet, 31343, 5)
            addresses += [s["depositAddress"] for s in later]
            wait_for(
                lambda: db_counts(database_url, addresses)["completed"] == 15,
                60,
                "the survivor's credits",
            )
            survivor_owner = lease_of(database_url, 31343)
            assert survivor_owner is not None
            assert survivor_owner != owner
            assert db_counts(database_url, addresses) == {
                "payments": 15,
                "completed": 15,
                "events": 15,
            }
        finally:
            for process in processes:
                if process.poll() is None:
                    process.terminate()
                    process.wait(15)


def lease_of(database_url: str, chain_id: int) -> str | None:
    async def run() -> str | None:
        engine = create_engine(database_url, pool=False)
        try:
            async with create_sessionmaker(engine)() as session:
                lease = await session.get(Lease, f"watcher:{chain_id}")
                return lease.owner if lease else None
        finally:
            await engine.dispose()

    return asyncio.run(run())
