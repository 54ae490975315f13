"""A small JSON-RPC proxy in front of anvil that misbehaves on purpose: it drops connections,
stalls, and refuses large eth_getLogs ranges the way public providers do."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import httpx

from tests.harness.server import free_port


@dataclass
class Faults:
    drop_every: int = 0  # close the connection without answering on every Nth request
    stall_every: int = 0  # answer nothing for `stall_seconds` on every Nth request
    stall_seconds: float = 5.0
    max_log_range: int = 0  # eth_getLogs over more blocks than this gets a provider-style error
    hint: bool = True  # include "[0xfrom, 0xto]" in that error, as Infura does
    dead: bool = False  # refuse everything (connection closed at once)
    seen: dict[str, int] = field(default_factory=dict)


@contextmanager
def rpc_proxy(upstream: str, faults: Faults) -> Iterator[str]:
    port = free_port()
    loop = asyncio.new_event_loop()
    counter = {"n": 0}
    client: httpx.AsyncClient | None = None

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal client
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            body = await reader.readexactly(length)
            counter["n"] += 1
            n = counter["n"]
            request = json.loads(body)
            method = request.get("method", "")
            faults.seen[method] = faults.seen.get(method, 0) + 1
            if faults.dead or (faults.drop_every and n % faults.drop_every == 0):
                return  # closed below without a response
            if faults.stall_every and n % faults.stall_every == 0:
                await asyncio.sleep(faults.stall_seconds)
                return
            if method == "eth_getLogs" and faults.max_log_range:
                params = request["params"][0]
                start, end = int(params["fromBlock"], 16), int(params["toBlock"], 16)
                if end - start + 1 > faults.max_log_range:
                    message = "query returned more than 10000 results"
                    if faults.hint:
                        message += f". Try with this block range [{hex(start)}, {hex(start + faults.max_log_range - 1)}]."
                    payload = {
                        "jsonrpc": "2.0",
                        "id": request.get("id"),
                        "error": {"code": -32005, "message": message},
                    }
                    await _respond(writer, json.dumps(payload).encode())
                    return
            if client is None:
                client = httpx.AsyncClient(timeout=30)
            upstream_response = await client.post(
                upstream, content=body, headers={"content-type": "application/json"}
            )
            await _respond(writer, upstream_response.content)
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()

    async def _respond(writer: asyncio.StreamWriter, payload: bytes) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n"
            + f"content-length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        await writer.drain()

    ready = threading.Event()
    server_holder: dict[str, asyncio.AbstractServer] = {}

    def run() -> None:
        asyncio.set_event_loop(loop)

        async def start() -> None:
            server_holder["server"] = await asyncio.start_server(handle, "127.0.0.1", port)
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:

        async def shutdown() -> None:
            server_holder["server"].close()
            pending = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in pending:  # stalled handlers: end them while the loop still runs
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if client is not None:
                await client.aclose()

        asyncio.run_coroutine_threadsafe(shutdown(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
