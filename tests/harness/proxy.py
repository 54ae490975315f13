"""A small round-robin HTTP reverse proxy on loopback, in a thread: each request goes to the next
backend in turn (per request, not per connection, so one keep-alive client still reaches all).

It counts what it forwarded per backend and per status; a backend it cannot reach answers 502
(counted like any other 5xx). For tests and benchmarks of several `chainpay api` processes; a
deployment uses nginx, haproxy or traefik (see deploy/).
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.harness.server import free_port

# Hop-by-hop headers (RFC 9110 7.6.1) are the proxy's own; the rest pass through unchanged.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
    }
)


@dataclass
class Proxy:
    backends: tuple[str, ...]
    url: str = ""
    per_backend: Counter[str] = field(default_factory=Counter)
    statuses: Counter[int] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)  # backend unreachable (answered 502)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def server_errors(self) -> int:
        """Answers of 500 and above, the proxy's own 502s included."""
        with self._lock:
            return sum(n for status, n in self.statuses.items() if status >= 500)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "per_backend": dict(self.per_backend),
                "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
                "errors": list(self.errors[:10]),
            }

    def _count(self, backend: str, status: int, error: str | None = None) -> None:
        with self._lock:
            self.per_backend[backend] += 1
            self.statuses[status] += 1
            if error is not None:
                self.errors.append(f"{backend}: {error}")


@contextmanager
def running_proxy(backends: Sequence[str]) -> Iterator[Proxy]:
    """Serve on a free 127.0.0.1 port until the block ends; `backends` are base URLs
    (`http://127.0.0.1:8001`)."""
    if not backends:
        raise ValueError("a proxy needs at least one backend")
    proxy = Proxy(tuple(b.rstrip("/") for b in backends))
    port = free_port()
    proxy.url = f"http://127.0.0.1:{port}"
    started = threading.Event()
    stop: dict[str, Any] = {}
    failure: list[BaseException] = []

    async def main() -> None:
        turn = itertools.cycle(proxy.backends)
        client = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=60),
            auto_decompress=False,
            trust_env=False,
        )

        async def forward(request: web.Request) -> web.StreamResponse:
            backend = next(turn)
            headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
            peer = request.remote or "127.0.0.1"
            headers["X-Forwarded-For"] = peer
            headers["X-Forwarded-Proto"] = request.scheme
            body = await request.read()
            try:
                async with client.request(
                    request.method,
                    backend + request.rel_url.raw_path_qs,
                    headers=headers,
                    data=body,
                    allow_redirects=False,
                ) as upstream:
                    content = await upstream.read()
                    answer = web.Response(
                        status=upstream.status,
                        body=content,
                        headers={
                            k: v for k, v in upstream.headers.items() if k.lower() not in HOP_BY_HOP
                        },
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                proxy._count(backend, 502, f"{type(exc).__name__}: {exc}")
                return web.Response(status=502, text=f"bad gateway: {type(exc).__name__}")
            proxy._count(backend, upstream.status)
            return answer

        app = web.Application(client_max_size=16 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", forward)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        done = asyncio.Event()
        stop["loop"] = asyncio.get_running_loop()
        stop["done"] = done
        started.set()
        try:
            await done.wait()
        finally:
            await runner.cleanup()
            await client.close()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # seen by the caller instead of a silent thread death
            failure.append(exc)
            started.set()

    thread = threading.Thread(target=run, daemon=True, name="round-robin-proxy")
    thread.start()
    if not started.wait(10) or failure:
        raise RuntimeError(f"proxy did not start: {failure[:1]}")
    try:
        yield proxy
    finally:
        stop["loop"].call_soon_threadsafe(stop["done"].set)
        thread.join(timeout=10)
