"""SIGTERM (what systemd, Docker and Kubernetes send) and SIGINT (Ctrl-C) stop every role the
same clean way, as real `chainpay` processes against a real devnet: exit code 0, watcher leases
given back (so a restarted process takes over at once, not a lease TTL later), webhook posts in
flight finished or handed back."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from chain.devnet import Devnet, transfer, write_chains_file
from chainpay.roles import SHUTDOWN_GRACE_SECONDS
from core.db import create_engine
from tests.harness.chains import devnet_or_skip
from tests.harness.factories import TEST_SECRET_KEY, Api, make_tenant
from tests.harness.receiver import HANG, running_receiver
from tests.harness.rpc_proxy import Faults, rpc_proxy
from tests.harness.server import free_port

pytestmark = pytest.mark.slow

CHAINS = ((31351, 6), (31352, 18))
POLL_SECONDS = 1.0
LEASE_SECONDS = 60  # far longer than the test waits: a lease left behind shows
SLACK_SECONDS = 4.0  # a busy test machine; still far below the lease


@pytest.fixture(scope="module")
def devnet() -> Iterator[Devnet]:
    yield from devnet_or_skip(chains=CHAINS)


@pytest.fixture
def env(tmp_path: Path, devnet: Devnet, fresh_url: str) -> dict[str, str]:
    chains = write_chains_file(devnet, tmp_path / "chains.toml")
    return {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHAINPAY_")},
        "CHAINPAY_DATABASE_URL": fresh_url,
        "CHAINPAY_CHAINS_FILE": str(chains),
        "CHAINPAY_WATCHER_POLL_SECONDS": str(POLL_SECONDS),
        "CHAINPAY_WATCHER_LEASE_SECONDS": str(LEASE_SECONDS),
        "CHAINPAY_SECRET_KEY": TEST_SECRET_KEY,
        "CHAINPAY_WEBHOOKS_ALLOW_PRIVATE": "true",
        "CHAINPAY_LOG_LEVEL": "warning",
    }


@contextmanager
def running(cwd: Path, env: dict[str, str], *args: str) -> Iterator[subprocess.Popen[bytes]]:
    """`chainpay <args>` as a real process; its output goes to a file shown when a test fails."""
    log = cwd / f"{args[0]}-{time.monotonic_ns()}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "chainpay", *args],
            cwd=cwd,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield process
    except BaseException:
        print(f"--- chainpay {' '.join(args)} said:\n{log.read_text(errors='replace')}")
        raise
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def stopped(process: subprocess.Popen[bytes], sig: signal.Signals) -> int:
    """Send `sig`; the exit code (a process still running 20 s later fails the test)."""
    process.send_signal(sig)
    try:
        return process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        pytest.fail(f"still running 20 s after {sig.name}")


def wait_for(what: str, check: Callable[[], Any], timeout: float, process: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"exited with {process.returncode} while waiting for {what}")
        try:
            found = check()
        except httpx.TransportError:
            found = None
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"no {what} within {timeout} s")


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    async def run() -> list[tuple[Any, ...]]:
        engine = create_engine(url, pool=False)
        try:
            async with engine.connect() as connection:
                return [tuple(r) for r in await connection.execute(sa.text(sql))]
        finally:
            await engine.dispose()

    return asyncio.run(run())


def leases(url: str) -> list[tuple[Any, ...]]:
    """(chain id, owner) of the watcher leases; while a worker runs, a job's lease may come too."""
    watchers = [
        (int(name.removeprefix("watcher:")), owner)
        for name, owner in rows(url, "SELECT name, owner FROM leases ORDER BY name")
        if name.startswith("watcher:")
    ]
    return sorted(watchers)


def both_chains_leased(url: str) -> bool:
    return [chain_id for chain_id, _ in leases(url)] == [c for c, _ in CHAINS]


def serving(cwd: Path, env: dict[str, str]) -> tuple[Any, str]:
    port = free_port()
    return running(cwd, env, "serve", "--port", str(port)), f"http://127.0.0.1:{port}"


def healthy(base: str) -> bool:
    return httpx.get(f"{base}/health", timeout=1).status_code == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_stops_cleanly_and_a_restart_sees_a_payment_within_a_poll(
    tmp_path: Path, env: dict[str, str], fresh_url: str, devnet: Devnet, sig: signal.Signals
) -> None:
    tenant = make_tenant(fresh_url, test=True)
    server, base = serving(tmp_path, env)
    with server as process:
        wait_for("API", lambda: healthy(base), 60, process)
        wait_for("watcher leases", lambda: both_chains_leased(fresh_url), 30, process)
        assert stopped(process, sig) == 0
    assert leases(fresh_url) == []

    server, base = serving(tmp_path, env)
    with server as process:
        wait_for("API", lambda: healthy(base), 60, process)
        api = Api(base, tenant.key)
        created = api.post(
            "/transaction/session-checkout",
            json={"productName": "Restart", "description": "d", "price": "5"},
        )
        assert created.status_code == 200, created.text
        session = created.json()
        chain_id, (token, _) = CHAINS[0][0], devnet.tokens[CHAINS[0][0]]
        transfer(devnet.node(chain_id).rpc_url, token, session["depositAddress"], 5_000_000)
        paid = time.monotonic()
        wait_for(
            "payment seen",
            lambda: (
                api.get(f"/transaction/session-checkout/{session['uuid']}").json()["status"]
                != "created"
            ),
            POLL_SECONDS + SLACK_SECONDS,
            process,
        )
        assert time.monotonic() - paid < POLL_SECONDS + SLACK_SECONDS < LEASE_SECONDS
        assert stopped(process, signal.SIGTERM) == 0
    assert leases(fresh_url) == []


def test_watcher_gives_back_its_leases_on_sigterm(
    tmp_path: Path, env: dict[str, str], fresh_url: str
) -> None:
    with running(tmp_path, env, "watcher") as process:
        wait_for("watcher leases", lambda: both_chains_leased(fresh_url), 60, process)
        assert stopped(process, signal.SIGTERM) == 0
    assert leases(fresh_url) == []


def test_a_watcher_stuck_on_a_stalled_node_stops_within_the_grace(
    tmp_path: Path, env: dict[str, str], fresh_url: str, devnet: Devnet
) -> None:
    """The step waiting on the node (which would retry for a minute) is cancelled, rolled back,
    and the lease still given back."""
    chain_id = CHAINS[0][0]
    token, decimals = devnet.tokens[chain_id]
    faults = Faults()
    with rpc_proxy(devnet.node(chain_id).rpc_url, faults) as url:
        chains = tmp_path / "stalled.toml"
        chains.write_text(
            f'[[chains]]\nid = {chain_id}\nname = "Stalled"\nrpc_urls = ["{url}"]\n'
            f"confirmations = 2\ntest = true\n"
            f'tokens = [{{ symbol = "USDT", contract = "{token}", decimals = {decimals} }}]\n'
        )
        stalled_env = {**env, "CHAINPAY_CHAINS_FILE": str(chains)}
        with running(tmp_path, stalled_env, "watcher") as process:
            wait_for("the lease", lambda: [c for c, _ in leases(fresh_url)] == [chain_id], 60)
            faults.stall_every, faults.stall_seconds = 1, 120
            asked = sum(faults.seen.values())
            wait_for("a stalled request", lambda: sum(faults.seen.values()) > asked, 10, process)
            signalled = time.monotonic()
            assert stopped(process, signal.SIGTERM) == 0
            assert time.monotonic() - signalled < SHUTDOWN_GRACE_SECONDS + SLACK_SECONDS
    assert leases(fresh_url) == []


def test_api_and_worker_stop_cleanly_finishing_or_handing_back_posts(
    tmp_path: Path, env: dict[str, str], fresh_url: str
) -> None:
    tenant = make_tenant(fresh_url, test=True)
    port = free_port()
    with (
        running_receiver() as receiver,
        running(tmp_path, env, "api", "--port", str(port)) as api_process,
        running(tmp_path, env, "worker") as worker,
    ):
        base = f"http://127.0.0.1:{port}"
        wait_for("API", lambda: healthy(base), 60, api_process)
        api = Api(base, tenant.key)
        receiver.delays["/slow"] = 1.0  # answers within the sender's grace on stopping
        receiver.answer("/hung", HANG)  # never answers: handed back for another sender
        for path in ("/slow", "/hung"):
            endpoint = api.post("/webhooks/endpoints", json={"url": receiver.url(path)})
            assert endpoint.status_code == 201, endpoint.text
            queued = api.post(f"/webhooks/endpoints/{endpoint.json()['uuid']}/test")
            assert queued.status_code == 202, queued.text
        wait_for(
            "both posts in flight",
            lambda: receiver.at("/slow") and receiver.at("/hung"),
            30,
            worker,
        )
        assert stopped(worker, signal.SIGTERM) == 0
        assert stopped(api_process, signal.SIGTERM) == 0
    deliveries = dict(
        (url.removeprefix(receiver.base), (status, attempts, claimed_until))
        for url, status, attempts, claimed_until in rows(
            fresh_url,
            "SELECT e.url, d.status, d.attempts, d.claimed_until FROM webhook_deliveries d"
            " JOIN webhook_endpoints e ON e.id = d.endpoint_id",
        )
    )
    assert deliveries == {
        "/slow": ("delivered", 1, deliveries["/slow"][2]),
        "/hung": ("pending", 0, None),
    }
