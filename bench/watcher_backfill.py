"""Benchmark: the watcher's backfill against a plain eth_getLogs fetch, and detection latency.

    python bench/watcher_backfill.py [--database-url URL] [--logs 20000] [--open 100000]
                                     [--matching 200] [--rounds 5] [--payments 200]
                                     [--no-latency | --no-scan] [--json PATH]

(a) baseline: one eth_getLogs over the range with httpx + JSON parse, nothing else (best of 6:
    three just before (b), three just after);
(b) the watcher's full scan of the same range: fetch, decode, match against the open deposit
    addresses, persist the payments (with sessions, events, cursor) in its transactions.
    Two ways, in alternate rounds: "one request" forces the whole range into one eth_getLogs,
    exactly what (a) fetches; "its own ranges" leaves the range sizes to the watcher's adaptive
    sizer (about 10,000 logs a request on a dense chain), which persists each part while the
    node serves the next, as a backfill runs in production.
    `--matching N` of the logs pay an open session (0: none do; the scan then only filters).
    The watcher is a running one: before the timed scans it has loaded the deposit addresses,
    scanned a small earlier range with a few payments (its first step compiles the SQL
    statements and opens the connections; that one-time cost is printed, not timed) and one
    dense range without payments (so its sizer knows the chain's density).
    Each timed section starts after a full garbage collection, so that neither pays for the
    set-up's garbage.
Each of --rounds rounds per way makes a new range (its own paying logs) and times (a) and (b) on
it; prints logs/s for both, b/a per round and its median per way (goal >= 0.5), and the CPU time
the hypervisor took meanwhile (steal): on a shared virtual machine single rounds move by +-30 %.
Then the detection latency on a devnet with 1 s blocks, the watcher and the webhook sender in one
process as `chainpay serve` runs them: from the block that makes a payment final appearing, to
its session `completed` in the database, and to its `session.completed` webhook received and
verified (standardwebhooks) by a local HTTP receiver (p50, p99 over --payments payments).
`--json PATH` writes the figures machine-readably (for `python -m bench`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import secrets
import socket
import statistics
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web
from eth_utils import to_checksum_address
from machine import steal_seconds  # bench/machine.py
from sqlalchemy import insert, select, text
from standardwebhooks import Webhook, WebhookVerificationError
from web3 import Web3

from chain.devnet import DEV_ACCOUNT, running_devnet, token_contract, transfer
from chain.watcher import TRANSFER_TOPIC, ChainWatcher
from chainpay.bootstrap import create_organization
from chainpay.logs import configure_logging
from chainpay.migrations import upgrade
from core.chains import ChainConfig, TokenConfig
from core.checkout.context import CheckoutContext
from core.config import Settings
from core.db import create_engine, create_sessionmaker, transaction
from core.models import CheckoutSession, DepositAddress, WebhookEndpoint
from core.wallet import service as wallet_service
from core.wallet.derivation import account_xpub_from_mnemonic, generate_dev_mnemonic
from core.webhooks.crypto import SecretBox, new_secret
from core.webhooks.sender import WebhookSender

CHAIN = 31337
# The latency devnet is a new chain: on PostgreSQL it shares the database with the backfill
# run, whose cursor for CHAIN is far past the new chain's head.
LATENCY_CHAIN = 31340
ONE_REQUEST = "one request"
OWN_RANGES = "its own ranges"
SECRET_KEY = "bench passphrase, not a real key"


def settings_for(
    database_url: str,
    rpc_url: str,
    token: str,
    confirmations: int = 2,
    chain_id: int = CHAIN,
    **overrides: Any,
) -> Settings:
    chain = ChainConfig(
        id=chain_id,
        rpc_urls=(rpc_url,),
        confirmations=confirmations,
        test=True,
        tokens=(TokenConfig(symbol="USDT", contract=token, decimals=6),),
    )
    return Settings(database_url=database_url, chains=[chain], **overrides)


async def open_sessions(database_url: str, count: int) -> list[str]:
    """`count` open sessions with random deposit addresses, inserted in bulk."""
    created = await create_organization(
        Settings(database_url=database_url),
        name="Bench",
        owner_email=f"bench-{secrets.token_hex(4)}@shop.example",
        test_key=True,
        first=False,
    )
    engine = create_engine(database_url)
    addresses: list[str] = [to_checksum_address("0x" + secrets.token_hex(20)) for _ in range(count)]
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            await wallet_service.set_xpub(
                session,
                created.organization_id,
                account_xpub_from_mnemonic(generate_dev_mnemonic()),
            )
            now = datetime.now(UTC)
            for start in range(0, count, 5000):
                chunk = addresses[start : start + 5000]
                ids = []
                for offset, address in enumerate(chunk):
                    ids.append(
                        {
                            "organization_id": created.organization_id,
                            "address": address,
                            "xpub_fingerprint": "bench",
                            "derivation_index": start + offset,
                        }
                    )
                await session.execute(insert(DepositAddress), ids)
                rows = (
                    await session.execute(
                        select(DepositAddress.id, DepositAddress.address).where(
                            DepositAddress.address.in_(chunk)
                        )
                    )
                ).all()
                await session.execute(
                    insert(CheckoutSession),
                    [
                        {
                            "uuid": secrets.token_hex(16),
                            "organization_id": created.organization_id,
                            "test": True,
                            "kind": "payment",
                            "product_name": "Bench",
                            "description": "bench",
                            "price_usd": Decimal("1"),
                            "deposit_address_id": row_id,
                            "deposit_address": address,
                            "bot_token": secrets.token_urlsafe(24),
                            "status": "created",
                            "underpaid": False,
                            "overpaid": False,
                            "late": False,
                            "other_token": False,
                            "paid_usd": Decimal(0),
                            "expires_at": now + timedelta(days=1),
                            "source": "api",
                            "created_at": now,
                            "updated_at": now,
                        }
                        for row_id, address in rows
                    ],
                )
    finally:
        await engine.dispose()
    return addresses


async def analyze(database_url: str) -> None:
    """Table statistics, as a database that grew over time has them (autovacuum on PostgreSQL):
    right after a bulk load the planner would guess, and pick full scans for indexed lookups."""
    engine = create_engine(database_url)
    try:
        async with engine.connect() as connection:
            await connection.execute(text("ANALYZE"))
            await connection.commit()
    finally:
        await engine.dispose()


def make_logs(
    rpc_url: str, token: str, targets: list[str], total: int, per_tx: int = 250
) -> tuple[int, int]:
    """`total` Transfer logs via batchTransfer; `targets` receive one each, the rest go elsewhere."""
    w3 = Web3(Web3.HTTPProvider(rpc_url))
    contract = token_contract(w3, token)
    recipients = list(targets) + [
        to_checksum_address("0x" + secrets.token_hex(20)) for _ in range(total - len(targets))
    ]
    recipients.sort(key=lambda _: secrets.randbits(32))
    first = w3.eth.block_number + 1
    for start in range(0, total, per_tx):
        batch = recipients[start : start + per_tx]
        tx = contract.functions.batchTransfer(batch, [1_000_000] * len(batch)).transact(
            {"from": DEV_ACCOUNT, "gas": 29_000_000}
        )
        w3.eth.wait_for_transaction_receipt(tx)
    return first, w3.eth.block_number


async def baseline(rpc_url: str, token: str, first: int, last: int) -> tuple[int, float]:
    async with httpx.AsyncClient(timeout=120) as client:
        started = time.perf_counter()
        response = await client.post(
            rpc_url,
            json={
                "jsonrpc": "2.0",
                "id": 1,
                "method": "eth_getLogs",
                "params": [
                    {
                        "fromBlock": hex(first),
                        "toBlock": hex(last),
                        "address": [token],
                        "topics": [TRANSFER_TOPIC],
                    }
                ],
            },
        )
        logs = response.json()["result"]
        return len(logs), time.perf_counter() - started


async def baselines(rpc_url: str, token: str, first: int, last: int) -> list[tuple[int, float]]:
    """Three timings of (a), each after a full garbage collection."""
    timings = []
    for _ in range(3):
        gc.collect()
        timings.append(await baseline(rpc_url, token, first, last))
    return timings


async def scan(watcher: ChainWatcher) -> tuple[float, int]:
    """Seconds until the watcher has nothing left to scan, and the steps it took."""
    started = time.perf_counter()
    steps = 1
    while await watcher.step():
        steps += 1
    return time.perf_counter() - started, steps


class VerifyingReceiver:
    """The merchant: an HTTP server on loopback in a thread of its own (own event loop), which
    verifies every delivery with standardwebhooks and notes when each session's
    `session.completed` was received and verified (time.time(), the clock of `appeared`)."""

    def __init__(self, secret: str) -> None:
        self.webhook = Webhook(secret)
        self.completed: dict[str, float] = {}  # session uuid -> verified at
        self.received = 0
        self.rejected = 0
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/merchant"
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._serve()), daemon=True)

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            payload = self.webhook.verify(body, dict(request.headers))
        except WebhookVerificationError:
            with self._lock:
                self.rejected += 1
            return web.Response(status=400, text="bad signature")
        verified_at = time.time()
        with self._lock:
            self.received += 1
            if payload.get("type") == "session.completed":
                self.completed.setdefault(str(payload["uuid"]), verified_at)
        return web.Response(text="ok")

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        self._started.set()
        await self._done.wait()
        await runner.cleanup()

    def __enter__(self) -> VerifyingReceiver:
        self._thread.start()
        if not self._started.wait(10):
            raise RuntimeError("webhook receiver did not start")
        return self

    def __exit__(self, *_: object) -> None:
        assert self._loop is not None
        assert self._done is not None
        self._loop.call_soon_threadsafe(self._done.set)
        self._thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentiles(samples: list[float]) -> dict[str, Any]:
    """count, p50 and p99 in seconds (None without samples)."""
    ordered = sorted(samples)
    if not ordered:
        return {"count": 0, "p50_s": None, "p99_s": None}
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return {
        "count": len(ordered),
        "p50_s": round(statistics.median(ordered), 4),
        "p99_s": round(p99, 4),
    }


async def latency(database_url: str, payments: int) -> dict[str, Any]:
    """Detection latency, to the database row and to the verified webhook, in seconds."""
    with running_devnet(((LATENCY_CHAIN, 6),), block_time=1) as devnet:
        node = devnet.node(LATENCY_CHAIN)
        token = devnet.tokens[LATENCY_CHAIN][0]
        settings = settings_for(
            database_url,
            node.rpc_url,
            token,
            confirmations=2,
            chain_id=LATENCY_CHAIN,
            secret_key=SECRET_KEY,
            secret_key_file=Path(tempfile.mkdtemp()) / "unused.key",
            webhooks_allow_private=True,  # the receiver is on loopback
        )
        addresses = await open_sessions(database_url, payments)
        engine = create_engine(database_url)
        sessionmaker = create_sessionmaker(engine)
        async with sessionmaker() as session:
            rows = (
                await session.execute(
                    select(
                        CheckoutSession.uuid,
                        CheckoutSession.deposit_address,
                        CheckoutSession.organization_id,
                    ).where(CheckoutSession.deposit_address.in_(addresses))
                )
            ).all()
        uuid_of = {address: uuid for uuid, address, _ in rows}
        secret = new_secret()
        receiver = VerifyingReceiver(secret)
        async with transaction(sessionmaker) as session:
            session.add(
                WebhookEndpoint(
                    organization_id=rows[0][2],
                    test=True,
                    url=receiver.url,
                    secret_encrypted=SecretBox.from_settings(settings).encrypt(secret),
                )
            )
        stop = asyncio.Event()
        context = CheckoutContext.from_settings(settings)
        start_block = int(node.rpc("eth_blockNumber"), 16)
        watcher = ChainWatcher(
            context.registry.chains[LATENCY_CHAIN],
            sessionmaker,
            context,
            start_block=start_block,
            poll_interval=0.1,
            owner=f"bench-{secrets.token_hex(3)}",
        )
        sender = WebhookSender(sessionmaker, settings)
        appeared: dict[int, float] = {}
        done: dict[str, float] = {}

        async def watch_blocks() -> None:
            # When each block appears, seen every 10 ms (the reference clock for latency).
            async with httpx.AsyncClient(timeout=5) as client:
                while not stop.is_set():
                    body = (
                        await client.post(
                            node.rpc_url,
                            json={
                                "jsonrpc": "2.0",
                                "id": 1,
                                "method": "eth_blockNumber",
                                "params": [],
                            },
                        )
                    ).json()
                    head = int(body["result"], 16)
                    now = time.time()
                    for number in range(max(appeared, default=start_block) + 1, head + 1):
                        appeared[number] = now
                    await asyncio.sleep(0.01)

        with receiver:
            task = asyncio.create_task(watcher.run(stop))
            sending = asyncio.create_task(sender.run(stop))
            blocks_task = asyncio.create_task(watch_blocks())
            w3 = Web3(Web3.HTTPProvider(node.rpc_url))
            for i, address in enumerate(addresses):
                transfer(node.rpc_url, token, address, 1_000_000, wait=False)
                if i % 5 == 4:
                    await asyncio.sleep(1.0)  # about five payments per block
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and (
                len(done) < len(addresses) or len(receiver.completed) < len(addresses)
            ):
                async with sessionmaker() as session:
                    completed = (
                        await session.execute(
                            select(
                                CheckoutSession.deposit_address, CheckoutSession.completed_at
                            ).where(
                                CheckoutSession.deposit_address.in_(
                                    [a for a in addresses if a not in done]
                                ),
                                CheckoutSession.status == "completed",
                            )
                        )
                    ).all()
                for address, completed_at in completed:
                    if completed_at is not None:
                        done[address] = completed_at.timestamp()
                await asyncio.sleep(0.2)
            stop.set()
            await task
            await sending
            await blocks_task
        to_row: list[float] = []
        to_webhook: list[float] = []
        for address in addresses:
            logs = w3.eth.get_logs(
                {
                    "fromBlock": start_block,
                    "toBlock": "latest",
                    "address": to_checksum_address(token),
                    "topics": [TRANSFER_TOPIC, None, "0x" + "00" * 12 + address[2:].lower()],
                }
            )
            if not logs:
                continue
            final_block = logs[0]["blockNumber"] + 2 - 1
            if final_block not in appeared:
                continue
            if address in done:
                to_row.append(done[address] - appeared[final_block])
            verified_at = receiver.completed.get(uuid_of[address])
            if verified_at is not None:
                to_webhook.append(verified_at - appeared[final_block])
        await engine.dispose()
        return {
            "payments": len(addresses),
            "block_time_s": 1,
            "confirmations": 2,
            "to_database": percentiles(to_row),
            "to_webhook_verified": percentiles(to_webhook),
            "webhooks_received": receiver.received,
            "webhooks_rejected": receiver.rejected,
        }


async def backfill(args: argparse.Namespace, database_url: str) -> dict[str, Any]:
    """The timed scans: b/a per round and way, with the figures behind each."""
    with running_devnet(((CHAIN, 6),)) as devnet:
        node = devnet.node(CHAIN)
        token = devnet.tokens[CHAIN][0]
        t0 = time.perf_counter()
        open_addresses = await open_sessions(database_url, args.open)
        opened_s = time.perf_counter() - t0
        print(f"opened {len(open_addresses)} sessions in {opened_s:.1f} s")
        await analyze(database_url)
        settings = settings_for(database_url, node.rpc_url, token, confirmations=1)
        engine = create_engine(database_url)
        context = CheckoutContext.from_settings(settings)
        # A running watcher: addresses loaded, one small range (5 payments) already scanned.
        warm_first, warm_last = make_logs(node.rpc_url, token, open_addresses[-5:], 250)
        watcher = ChainWatcher(
            context.registry.chains[CHAIN],
            create_sessionmaker(engine),
            context,
            start_block=warm_first,
            chunk_blocks=warm_last - warm_first + 1,
            max_chunk_blocks=10_000,
        )
        rounds: dict[str, list[dict[str, Any]]] = {ONE_REQUEST: [], OWN_RANGES: []}
        try:
            t0 = time.perf_counter()
            loaded = await watcher.warm_up()
            print(f"watcher loaded {loaded} deposit addresses in {time.perf_counter() - t0:.3f} s")
            first_step, _ = await scan(watcher)
            print(
                f"watcher's first step (250 logs, 5 payments; compiles its SQL): {first_step:.3f} s"
            )
            make_logs(node.rpc_url, token, [], args.logs)
            dense, steps = await scan(watcher)
            print(
                f"dense range without payments ({args.logs} logs, untimed): {dense:.3f} s in "
                f"{steps} steps; the sizer now asks for {watcher.sizer.size} blocks at a time"
            )
            for round_ in range(2 * args.rounds):
                way = ONE_REQUEST if round_ % 2 == 0 else OWN_RANGES
                matching = open_addresses[round_ * args.matching : (round_ + 1) * args.matching]
                t0 = time.perf_counter()
                first, last = make_logs(node.rpc_url, token, matching, args.logs)
                print(
                    f"round {round_ + 1} ({way}): made {args.logs} transfer logs in blocks "
                    f"{first}..{last} in {time.perf_counter() - t0:.1f} s"
                )
                before = await baselines(node.rpc_url, token, first, last)
                if way == ONE_REQUEST:
                    watcher.sizer.size = last - first + 1  # the whole range at once, as (a)
                gc.collect()
                stolen = steal_seconds()
                scanned, steps = await scan(watcher)
                stolen = steal_seconds() - stolen
                after = await baselines(node.rpc_url, token, first, last)
                n = before[0][0]
                base_times = [elapsed for _, elapsed in before + after]
                a = n / min(base_times)
                b = n / scanned
                rounds[way].append(
                    {
                        "logs": n,
                        "matching": len(matching),
                        "steps": steps,
                        "baseline_logs_per_s": round(a, 1),
                        "watcher_logs_per_s": round(b, 1),
                        "ratio": round(b / a, 4),
                        "steal_s": round(stolen, 2),
                    }
                )
                print(
                    f"  (a) plain eth_getLogs + JSON parse: {n} logs in {min(base_times):.3f} s "
                    f"= {a:,.0f} logs/s"
                )
                print(
                    f"  (b) watcher full scan ({len(matching)} matching, {args.open} open "
                    f"addresses, {steps} steps): {scanned:.3f} s = {b:,.0f} logs/s   (steal "
                    f"meanwhile {stolen:.2f} s)"
                )
                print(f"  b/a = {b / a:.2f}")
        finally:
            await watcher.close()
            await engine.dispose()
    ways: dict[str, Any] = {}
    for way, measured in rounds.items():
        if not measured:
            continue
        values = [r["ratio"] for r in measured]
        print(
            f"b/a ({way}) median over {len(values)} rounds = "
            f"{statistics.median(values):.2f}  (min {min(values):.2f}, "
            f"max {max(values):.2f}; goal >= 0.5)"
        )
        ways[way] = {
            "ratio_median": round(statistics.median(values), 4),
            "baseline_logs_per_s_median": statistics.median(
                r["baseline_logs_per_s"] for r in measured
            ),
            "watcher_logs_per_s_median": statistics.median(
                r["watcher_logs_per_s"] for r in measured
            ),
            "rounds": measured,
        }
    return {
        "open_setup_s": round(opened_s, 1),
        "warm_up_first_step_s": round(first_step, 3),
        "ways": ways,
    }


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--logs", type=int, default=20_000)
    parser.add_argument("--open", type=int, default=100_000)
    parser.add_argument("--matching", type=int, default=200, help="logs that pay an open session")
    parser.add_argument(
        "--rounds", type=int, default=5, help="timed scans per way, each of a new range"
    )
    parser.add_argument("--payments", type=int, default=200, help="payments for the latency run")
    skip = parser.add_mutually_exclusive_group()
    skip.add_argument("--no-latency", action="store_true", help="skip the latency run")
    skip.add_argument("--no-scan", action="store_true", help="only the latency run")
    parser.add_argument(
        "--log-level", default="info", help="as `chainpay serve --log-level` (its JSON lines)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here (JSON)")
    args = parser.parse_args()
    # As in production: `serve` logs one JSON line per payment and status change.
    configure_logging(args.log_level)
    workdir = Path(tempfile.mkdtemp())
    database_url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'bench.db'}"
    await asyncio.to_thread(upgrade, database_url)
    kind = "postgresql" if database_url.startswith("postgresql") else "sqlite"
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {kind}"
    )
    results: dict[str, Any] = {
        "database": kind,
        "parameters": {"log_level": args.log_level},
    }
    if not args.no_scan:
        results["parameters"] |= {
            "logs": args.logs,
            "open": args.open,
            "matching": args.matching,
            "rounds": args.rounds,
        }
        results["scan"] = await backfill(args, database_url)

    if not args.no_latency:
        latency_url = (
            database_url if args.database_url else f"sqlite+aiosqlite:///{workdir / 'latency.db'}"
        )
        if args.database_url is None:
            await asyncio.to_thread(upgrade, latency_url)
        results["parameters"]["payments"] = args.payments
        measured = await latency(latency_url, args.payments)
        results["latency"] = measured
        for label, key in (
            ("database row", "to_database"),
            ("webhook verified", "to_webhook_verified"),
        ):
            figures = measured[key]
            if figures["count"]:
                print(
                    f"latency to the {label} over {figures['count']} of {args.payments} payments "
                    f"(1 s blocks, 2 confirmations): p50 {figures['p50_s']:.3f} s, "
                    f"p99 {figures['p99_s']:.3f} s"
                )
            else:
                print(f"latency to the {label}: no payment completed in time")
        print(
            f"webhooks received and verified: {measured['webhooks_received']}, "
            f"rejected (bad signature): {measured['webhooks_rejected']}"
        )
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    asyncio.run(main())
