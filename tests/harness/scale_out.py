"""The scale-out scenario, shared by tests/chainpay/test_scale_out.py and bench/scale_out.py.

Against one PostgreSQL database and two anvil chains, either
  roles: 2 `chainpay api` behind the round-robin proxy, 2 `chainpay worker`, 2 `chainpay watcher`;
  serve: 1 `chainpay serve` behind the same proxy (one backend), the single-process baseline;
then, through the proxy with the merchant API: two webhook endpoints, N checkout sessions
(QBitFlow-shaped `POST /v1/transaction/session-checkout`, a test key), each paid in full on one
of the chains (alternating) from anvil's funded dev account. It waits until every session is
completed and every event of the organization has reached both endpoints, watches a little
longer for late duplicates, and returns what it counted (`Outcome.problems` lists every broken
promise) and how long it took (`Outcome.figures`).
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal

import asyncpg
import httpx
from sqlalchemy import func, select
from sqlalchemy.engine import make_url
from standardwebhooks import Webhook

from chain.devnet import DEV_ACCOUNT, Devnet
from core.db import create_engine, create_sessionmaker
from core.models import CheckoutSession, Event, Payment
from core.models.chain_state import Lease
from tests.harness.chains import chain_configs
from tests.harness.factories import TEST_SECRET_KEY, make_tenant
from tests.harness.proxy import Proxy, running_proxy
from tests.harness.receiver import Receiver, running_receiver
from tests.harness.server import free_port

Mode = Literal["roles", "serve"]
SESSION_BODY = {"productName": "Ebook", "description": "PDF", "price": "19.99"}
ENDPOINTS = ("/merchant-a", "/merchant-b")
CONFIRMATIONS = 2
POLL_SECONDS = 0.2  # watcher and webhook sender idle polls, the same in both modes
SETTLE_SECONDS = 3.0  # after the last expected delivery: time for a duplicate to show up
PAY_CHUNK = 50  # transfers per JSON-RPC batch
ERC20_TRANSFER = "0xa9059cbb"


@dataclass
class Outcome:
    mode: Mode
    sessions: int
    problems: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


# --- databases ------------------------------------------------------------------------------


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A new database on the server of `admin_url` (`postgresql://user@host:port/db`), migrated
    to head, dropped afterwards; yields its SQLAlchemy (asyncpg) URL."""
    from chainpay.migrations import upgrade

    admin = make_url(admin_url)
    admin_dsn = admin.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"chainpay_scale_{secrets.token_hex(5)}"

    async def run(sql: str) -> None:
        connection = await asyncpg.connect(admin_dsn)
        try:
            await connection.execute(sql)
        finally:
            await connection.close()

    asyncio.run(run(f'CREATE DATABASE "{name}"'))
    try:
        url = admin.set(drivername="postgresql+asyncpg", database=name)
        rendered = url.render_as_string(hide_password=False)
        upgrade(rendered)
        yield rendered
    finally:
        asyncio.run(run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


def _query(database_url: str, statement: Any) -> list[Any]:
    async def go() -> list[Any]:
        engine = create_engine(database_url, pool=False)
        try:
            async with create_sessionmaker(engine)() as db:
                return list((await db.execute(statement)).all())
        finally:
            await engine.dispose()

    return asyncio.run(go())


# --- chainpay processes ---------------------------------------------------------------------


class Processes:
    """Real `python -m chainpay <role>` subprocesses, each logging to a file in `directory`."""

    def __init__(self, env: dict[str, str], directory: Path) -> None:
        self.env = env
        self.directory = directory
        self.running: dict[str, tuple[subprocess.Popen[bytes], IO[bytes], Path]] = {}
        self.exit_codes: dict[str, int] = {}

    def start(self, name: str, *args: str) -> None:
        log = self.directory / f"{name}.log"
        output = log.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "chainpay", *args],
            cwd=self.directory,
            env=self.env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        self.running[name] = (process, output, log)

    def check_alive(self) -> None:
        for name, (process, _, _) in self.running.items():
            if process.poll() is not None:
                raise ScenarioError(f"{name} exited with {process.returncode}\n{self.said()}")

    def wait_healthy(self, base_url: str, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            try:
                if httpx.get(f"{base_url}/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise ScenarioError(f"{base_url} did not answer /health within {timeout} s\n{self.said()}")

    def stop_all(self) -> None:
        """SIGTERM to all at once (they wind down in parallel), then each is waited for."""
        for process, _, _ in self.running.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, (process, output, _) in list(self.running.items()):
            try:
                self.exit_codes[name] = process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                self.exit_codes[name] = process.wait()
            finally:
                output.close()
        self.running.clear()

    def said(self, tail: int = 4000) -> str:
        parts = []
        for name, (_, _, log) in self.running.items():
            text = log.read_text(errors="replace") if log.exists() else ""
            parts.append(f"--- {name}:\n{text[-tail:]}")
        return "\n".join(parts)


class ScenarioError(RuntimeError):
    """The scenario could not run to the end (a process died, something never happened)."""


def chainpay_env(database_url: str, devnet: Devnet, start_block: int) -> dict[str, str]:
    """The settings of every process of a run (the same for each role, as in a deployment)."""
    chains = chain_configs(devnet, confirmations=CONFIRMATIONS)
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHAINPAY_")},
        "CHAINPAY_DATABASE_URL": database_url,
        "CHAINPAY_CHAINS": json.dumps(
            [c.model_dump(mode="json", exclude_none=True) for c in chains]
        ),
        "CHAINPAY_SECRET_KEY": TEST_SECRET_KEY,
        "CHAINPAY_LOG_LEVEL": "warning",
        "CHAINPAY_RATE_LIMIT_PER_MINUTE": "0",
        "CHAINPAY_WEBHOOKS_ALLOW_PRIVATE": "true",
        "CHAINPAY_PUBLIC_URL": "https://pay.shop.example",
        "CHAINPAY_TELEGRAM_BOT_USERNAME": "chainpay_test_bot",
        "CHAINPAY_WATCHER_POLL_SECONDS": str(POLL_SECONDS),
        "CHAINPAY_WEBHOOK_POLL_SECONDS": str(POLL_SECONDS),
        "CHAINPAY_WATCHER_START_BLOCK": str(start_block),
    }


@contextmanager
def cluster(
    mode: Mode, database_url: str, devnet: Devnet, directory: Path
) -> Iterator[tuple[Processes, Proxy]]:
    """The processes of `mode` and the proxy in front of their API(s); stopped on the way out
    (their exit codes are then in `processes.exit_codes`)."""
    # Scanning starts at the chains' current heads: the bench reuses its chains across runs.
    head = min(int(node.rpc("eth_blockNumber"), 16) for node in devnet.nodes)
    processes = Processes(chainpay_env(database_url, devnet, head), directory)
    try:
        ports = [free_port() for _ in range(2 if mode == "roles" else 1)]
        if mode == "roles":
            for n, port in enumerate(ports, 1):
                processes.start(f"api-{n}", "api", "--port", str(port))
            for n in (1, 2):
                processes.start(f"worker-{n}", "worker")
                processes.start(f"watcher-{n}", "watcher")
        else:
            processes.start("serve", "serve", "--port", str(ports[0]))
        backends = [f"http://127.0.0.1:{port}" for port in ports]
        for backend in backends:
            processes.wait_healthy(backend)
        with running_proxy(backends) as proxy:
            yield processes, proxy
    finally:
        processes.stop_all()


# --- the merchant's side --------------------------------------------------------------------


@dataclass
class Created:
    uuid: str
    deposit_address: str
    amounts: dict[int, tuple[str, int]]  # chain id -> (token contract, base units)


async def _create_sessions(
    base_url: str, key: str, count: int, concurrency: int
) -> tuple[list[Created], Counter[int]]:
    statuses: Counter[int] = Counter()
    created: list[Created] = []
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(
        base_url=base_url + "/v1", headers={"X-API-Key": key}, timeout=60, limits=limits
    ) as client:
        remaining = iter(range(count))

        async def one_client() -> None:
            for _ in remaining:
                try:
                    response = await client.post("/transaction/session-checkout", json=SESSION_BODY)
                except httpx.HTTPError as exc:
                    statuses[-1] += 1  # no answer at all
                    raise ScenarioError(f"session creation failed: {exc!r}") from exc
                statuses[response.status_code] += 1
                if response.status_code != 200:
                    continue
                body = response.json()
                created.append(
                    Created(
                        uuid=body["uuid"],
                        deposit_address=body["depositAddress"],
                        amounts={
                            int(a["chainId"]): (a["contract"], int(a["amountBaseUnits"]))
                            for a in body["amounts"]
                        },
                    )
                )

        await asyncio.gather(*(one_client() for _ in range(concurrency)))
    return created, statuses


def _rpc(client: httpx.Client, url: str, calls: list[tuple[str, list[Any]]]) -> list[Any]:
    """One JSON-RPC batch; the results in order (an error is raised)."""
    batch = [
        {"jsonrpc": "2.0", "id": n, "method": method, "params": params}
        for n, (method, params) in enumerate(calls)
    ]
    answers = sorted(client.post(url, json=batch, timeout=60).json(), key=lambda a: a["id"])
    errors = [a["error"] for a in answers if "error" in a]
    if errors:
        raise ScenarioError(f"JSON-RPC errors from {url}: {errors[:3]}")
    return [a["result"] for a in answers]


def _transfer_data(to: str, amount: int) -> str:
    return ERC20_TRANSFER + to.lower().removeprefix("0x").rjust(64, "0") + f"{amount:064x}"


def pay_all(devnet: Devnet, sessions: list[Created]) -> float:
    """Pay every session in full, alternating between the chains, as JSON-RPC batches of
    transfers from the dev account (explicit nonces); returns the monotonic time at which the
    last receipt was seen (every transfer succeeded, or ScenarioError)."""
    plan: dict[int, list[tuple[str, str, int]]] = {node.chain_id: [] for node in devnet.nodes}
    chain_ids = [node.chain_id for node in devnet.nodes]
    for n, created in enumerate(sessions):
        chain_id = chain_ids[n % len(chain_ids)]
        contract, amount = created.amounts[chain_id]
        plan[chain_id].append((contract, created.deposit_address, amount))
    hashes: dict[int, list[str]] = {chain_id: [] for chain_id in chain_ids}
    with httpx.Client() as client:
        nonces: dict[int, int] = {}
        for node in devnet.nodes:
            [count] = _rpc(
                client, node.rpc_url, [("eth_getTransactionCount", [DEV_ACCOUNT, "pending"])]
            )
            nonces[node.chain_id] = int(count, 16)
        longest = max(len(p) for p in plan.values())
        for offset in range(0, longest, PAY_CHUNK):
            for node in devnet.nodes:
                chunk = plan[node.chain_id][offset : offset + PAY_CHUNK]
                calls: list[tuple[str, list[Any]]] = []
                for contract, to, amount in chunk:
                    tx = {
                        "from": DEV_ACCOUNT,
                        "to": contract,
                        "data": _transfer_data(to, amount),
                        "gas": hex(120_000),
                        "nonce": hex(nonces[node.chain_id]),
                    }
                    nonces[node.chain_id] += 1
                    calls.append(("eth_sendTransaction", [tx]))
                if calls:
                    hashes[node.chain_id] += _rpc(client, node.rpc_url, calls)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            receipts = {
                node.chain_id: _rpc(
                    client,
                    node.rpc_url,
                    [("eth_getTransactionReceipt", [h]) for h in hashes[node.chain_id]],
                )
                for node in devnet.nodes
            }
            if all(r is not None for found in receipts.values() for r in found):
                mined_at = time.monotonic()
                failed = [
                    r["transactionHash"]
                    for f in receipts.values()
                    for r in f
                    if r["status"] != "0x1"
                ]
                if failed:
                    raise ScenarioError(f"{len(failed)} transfers reverted: {failed[:3]}")
                return mined_at
            time.sleep(0.02)
    raise ScenarioError("transfers not mined within 120 s")


# --- checks ---------------------------------------------------------------------------------


def _database_state(database_url: str, organization_id: int) -> tuple[int, dict[str, str]]:
    """(completed sessions, {event uuid: type}) of the organization."""
    [(completed,)] = _query(
        database_url,
        select(func.count())
        .select_from(CheckoutSession)
        .where(
            CheckoutSession.organization_id == organization_id,
            CheckoutSession.status == "completed",
        ),
    )
    events = _query(
        database_url,
        select(Event.uuid, Event.type).where(Event.organization_id == organization_id),
    )
    return int(completed), {uuid: kind for uuid, kind in events}


def _covered_at(receiver: Receiver, expected: set[str], growth: list[tuple[float, int]]) -> float:
    """When the receiver had first received every (endpoint, event) pair in `expected` x
    ENDPOINTS: the observed time of the receiver's list reaching the shortest covering prefix."""
    needed = {(path, uuid) for path in ENDPOINTS for uuid in expected}
    received = list(receiver.received)
    length = 0
    for n, item in enumerate(received, 1):
        needed.discard((item.path, item.headers.get("webhook-id", "")))
        if not needed:
            length = n
            break
    # Received after the last look at the list's length: now is the best bound.
    return next((at for at, seen in growth if seen >= length), time.monotonic())


def wait_for_everything(
    processes: Processes,
    receiver: Receiver,
    database_url: str,
    organization_id: int,
    sessions: int,
    timeout: float,
) -> float:
    """Until every session is completed and both endpoints hold every event of the
    organization; returns the monotonic time the last of those deliveries was received."""
    growth: list[tuple[float, int]] = [(time.monotonic(), 0)]
    deadline = time.monotonic() + timeout
    checked_at = 0.0
    completed, events = 0, dict[str, str]()
    while time.monotonic() < deadline:
        length = len(receiver.received)
        if length != growth[-1][1]:
            growth.append((time.monotonic(), length))
        if time.monotonic() - checked_at >= 0.5:
            processes.check_alive()
            completed, events = _database_state(database_url, organization_id)
            checked_at = time.monotonic()
            got = {
                path: {r.headers.get("webhook-id") for r in receiver.at(path)} for path in ENDPOINTS
            }
            if completed >= sessions and all(set(events) <= ids for ids in got.values()):
                return _covered_at(receiver, set(events), growth)
        time.sleep(0.02)
    raise ScenarioError(
        f"after {timeout} s: {completed}/{sessions} sessions completed, "
        f"{len(events)} events, deliveries per endpoint "
        f"{ {p: len(receiver.at(p)) for p in ENDPOINTS} }\n{processes.said()}"
    )


def check(
    outcome: Outcome,
    database_url: str,
    organization_id: int,
    receiver: Receiver,
    secrets_by_path: dict[str, str],
    created: list[Created],
) -> None:
    """Every promise of the scenario, as problems in `outcome` (none: all held)."""
    problems = outcome.problems
    uuids = {c.uuid for c in created}
    sessions = _query(
        database_url,
        select(CheckoutSession.id, CheckoutSession.uuid, CheckoutSession.status).where(
            CheckoutSession.organization_id == organization_id
        ),
    )
    statuses = Counter(status for _, _, status in sessions)
    if {uuid for _, uuid, _ in sessions} != uuids or statuses != {"completed": len(uuids)}:
        problems.append(f"sessions: {len(sessions)} in the database, statuses {dict(statuses)}")
    completed_events = Counter(
        session_id
        for (session_id,) in _query(
            database_url,
            select(Event.session_id).where(
                Event.organization_id == organization_id, Event.type == "session.completed"
            ),
        )
    )
    ids = {session_id for session_id, _, _ in sessions}
    twice = {sid: n for sid, n in completed_events.items() if n != 1}
    never = ids - set(completed_events)
    if twice or never:
        problems.append(
            f"session.completed events: {len(twice)} sessions with more than one "
            f"({dict(list(twice.items())[:5])}), {len(never)} with none"
        )
    payments = Counter(
        status
        for (status,) in _query(
            database_url,
            select(Payment.status).where(Payment.organization_id == organization_id),
        )
    )
    if payments != {"confirmed": len(uuids)}:
        problems.append(f"payments: {dict(payments)}, expected {len(uuids)} confirmed")
    _, events = _database_state(database_url, organization_id)
    for path in ENDPOINTS:
        got = receiver.at(path)
        per_event = Counter(r.headers.get("webhook-id", "") for r in got)
        duplicates = {uuid: n for uuid, n in per_event.items() if n > 1}
        missing = set(events) - set(per_event)
        unknown = set(per_event) - set(events)
        if duplicates or missing or unknown:
            problems.append(
                f"{path}: {len(got)} deliveries of {len(events)} events; duplicated "
                f"{len(duplicates)} ({ {events.get(u, u): n for u, n in list(duplicates.items())[:5]} }), "
                f"missing {len(missing)}, unknown {len(unknown)}"
            )
        verifier = Webhook(secrets_by_path[path])
        unverified = 0
        for delivery in got:
            try:
                verifier.verify(delivery.body, delivery.headers)
            except Exception:  # standardwebhooks raises its own WebhookVerificationError
                unverified += 1
        if unverified:
            problems.append(f"{path}: {unverified} deliveries fail Standard Webhooks verification")
    outcome.figures["events"] = dict(Counter(events.values()))


# --- the scenario ---------------------------------------------------------------------------


def run_scenario(
    mode: Mode,
    database_url: str,
    devnet: Devnet,
    directory: Path,
    *,
    sessions: int = 500,
    concurrency: int = 16,
    timeout: float = 150,
) -> Outcome:
    """The whole scenario on a fresh, migrated PostgreSQL database (see the module's text)."""
    outcome = Outcome(mode, sessions)
    tenant = make_tenant(database_url, test=True, name=f"Scale-out {mode}")
    with ExitStack() as stack:
        # The receiver outlives the processes: a sender stopping never posts into a closed port.
        receiver = stack.enter_context(running_receiver())
        processes, proxy = stack.enter_context(cluster(mode, database_url, devnet, directory))
        merchant = httpx.Client(
            base_url=proxy.url + "/v1", headers={"X-API-Key": tenant.key}, timeout=30
        )
        stack.callback(merchant.close)
        secrets_by_path = {}
        for path in ENDPOINTS:
            endpoint = merchant.post("/webhooks/endpoints", json={"url": receiver.url(path)})
            if endpoint.status_code != 201:
                raise ScenarioError(f"endpoint {path}: {endpoint.status_code} {endpoint.text}")
            secrets_by_path[path] = endpoint.json()["secret"]

        started = time.monotonic()
        created, statuses = asyncio.run(
            _create_sessions(proxy.url, tenant.key, sessions, concurrency)
        )
        create_seconds = time.monotonic() - started
        if statuses != {200: sessions}:
            outcome.problems.append(f"session creation answers: {dict(statuses)}")

        paying = time.monotonic()
        last_mined = pay_all(devnet, created)
        pay_seconds = last_mined - paying
        last_delivery = wait_for_everything(
            processes, receiver, database_url, tenant.organization_id, len(created), timeout
        )
        time.sleep(SETTLE_SECONDS)  # a duplicate delivery would arrive now
        processes.check_alive()
        leases = _query(database_url, select(Lease.name, Lease.owner).order_by(Lease.name))
        check(outcome, database_url, tenant.organization_id, receiver, secrets_by_path, created)
        if proxy.server_errors():
            outcome.problems.append(f"5xx through the proxy: {proxy.snapshot()}")
        if mode == "roles" and min(proxy.per_backend.get(b, 0) for b in proxy.backends) == 0:
            outcome.problems.append(f"a backend got no requests: {proxy.snapshot()}")
        outcome.figures.update(
            {
                "sessions_created": len(created),
                "create_seconds": round(create_seconds, 3),
                "sessions_created_per_second": round(len(created) / create_seconds, 1),
                "pay_seconds": round(pay_seconds, 3),
                "last_mined_to_last_delivery_seconds": round(last_delivery - last_mined, 3),
                "deliveries_received": len(receiver.received),
                "proxy": proxy.snapshot(),
                "leases": {name: owner for name, owner in leases},
            }
        )
    codes = processes.exit_codes
    if any(code != 0 for code in codes.values()):
        outcome.problems.append(f"processes did not exit cleanly on SIGTERM: {codes}")
    outcome.figures["exit_codes"] = codes
    return outcome
