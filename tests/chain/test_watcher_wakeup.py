"""The optional newHeads WebSocket only wakes the watcher: with a 30 s poll interval a payment
is still seen within seconds, and a socket that cannot connect leaves polling as it was."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import pytest
from websockets.asyncio.server import serve

from chain.devnet import Devnet, free_port, transfer
from chain.watcher import ChainWatcher
from core.chains import ChainConfig, TokenConfig
from core.checkout.context import CheckoutContext
from core.db import create_engine, create_sessionmaker
from tests.chain.test_watcher_resilience import own_devnet
from tests.harness.factories import Api, test_settings

pytestmark = pytest.mark.slow


def settings_with_socket(database_url: str, devnet: Devnet, chain_id: int, ws_url: str) -> Any:
    node = devnet.node(chain_id)
    contract, decimals = devnet.tokens[chain_id]
    chain = ChainConfig(
        id=chain_id,
        rpc_urls=(node.rpc_url,),
        ws_url=ws_url,
        confirmations=2,
        test=True,
        tokens=(TokenConfig(symbol="USDT", contract=contract, decimals=decimals),),
    )
    return test_settings(database_url, chains=[chain])


def seconds_to_complete(
    sandbox: Api, devnet: Devnet, chain_id: int, settings: Any, *, poll_interval: float
) -> float:
    """Runs the watcher's own loop; pays a fresh session; how long until it is completed."""
    node = devnet.node(chain_id)
    created = sandbox.post(
        "/transaction/session-checkout",
        json={"productName": "W", "description": "d", "price": "1"},
    ).json()

    async def run() -> float:
        engine = create_engine(settings.database_url)
        stop = asyncio.Event()
        context = CheckoutContext.from_settings(settings)
        watcher = ChainWatcher(
            context.registry.chains[chain_id],
            create_sessionmaker(engine),
            context,
            start_block=int(node.rpc("eth_blockNumber"), 16),
            poll_interval=poll_interval,
        )
        task = asyncio.create_task(watcher.run(stop))
        try:
            await asyncio.sleep(1.5)  # its first step done, now waiting
            paid_at = time.monotonic()
            await asyncio.to_thread(
                transfer, node.rpc_url, devnet.tokens[chain_id][0], created["depositAddress"], 10**6
            )
            while time.monotonic() - paid_at < 20:
                await asyncio.sleep(0.5)
                await asyncio.to_thread(node.mine, 1)  # blocks keep coming, as on a chain
                status = await asyncio.to_thread(
                    sandbox.get, f"/transaction/session-checkout/{created['uuid']}"
                )
                if status.json()["status"] == "completed":
                    return time.monotonic() - paid_at
            raise AssertionError("not completed within 20 s")
        finally:
            stop.set()
            await task
            await engine.dispose()

    return asyncio.run(run())


def test_new_heads_wake_the_watcher_long_before_its_poll_interval(
    sandbox: Api, database_url: str
) -> None:
    with own_devnet(31350) as devnet:
        settings = settings_with_socket(database_url, devnet, 31350, devnet.node(31350).ws_url)
        assert seconds_to_complete(sandbox, devnet, 31350, settings, poll_interval=30) < 5


def test_a_socket_that_never_connects_leaves_polling_as_it_was(
    sandbox: Api, database_url: str
) -> None:
    with own_devnet(31351) as devnet:
        nobody = f"ws://127.0.0.1:{free_port()}"
        settings = settings_with_socket(database_url, devnet, 31351, nobody)
        assert seconds_to_complete(sandbox, devnet, 31351, settings, poll_interval=0.3) < 5


def test_the_socket_reconnects_after_the_node_drops_it(database_url: str) -> None:
    """A node that answers the subscription, sends one head, and hangs up, every time."""
    connections = []

    async def node(ws: Any) -> None:
        request = json.loads(await ws.recv())
        connections.append(request["method"])
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": request["id"], "result": "0x1"}))
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "eth_subscription", "params": {}}))
        await ws.close()

    async def run() -> int:
        port = free_port()
        chain = ChainConfig(
            id=31352,
            rpc_urls=("http://127.0.0.1:9",),
            ws_url=f"ws://127.0.0.1:{port}",
            confirmations=2,
            test=True,
            tokens=(TokenConfig(symbol="USDT", contract="0x" + "11" * 20, decimals=6),),
        )
        context = CheckoutContext.from_settings(test_settings(database_url, chains=[chain]))
        engine = create_engine(database_url)
        watcher = ChainWatcher(context.registry.chains[31352], create_sessionmaker(engine), context)
        wake, stop = asyncio.Event(), asyncio.Event()
        wakes = 0
        async with serve(node, "127.0.0.1", port):
            listener = asyncio.create_task(
                watcher._wake_on_new_heads(f"ws://127.0.0.1:{port}", wake, stop)
            )
            deadline = time.monotonic() + 6
            while time.monotonic() < deadline and len(connections) < 3:
                await asyncio.sleep(0.05)
                if wake.is_set():
                    wakes += 1
                    wake.clear()
            stop.set()
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
        await watcher.rpc.aclose()
        await engine.dispose()
        return wakes

    wakes = asyncio.run(run())
    assert connections[:3] == ["eth_subscribe"] * 3  # dropped twice, back each time
    assert wakes >= 2
