"""A real HTTP webhook receiver on loopback, in a thread: records every request, answers as told.

Each path is its own "merchant": `receiver.url("/a")`. Behaviour per path: a list of answers
consumed one per request (the last one repeats), where an answer is a status code, a
(status, headers) pair, or HANG (never answer until the receiver stops).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.harness.server import free_port

HANG = "hang"
Answer = int | tuple[int, dict[str, str]] | tuple[int, dict[str, str], str] | str


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    base: str = ""
    received: list[Received] = field(default_factory=list)
    answers: dict[str, list[Answer]] = field(default_factory=dict)
    in_flight: dict[str, int] = field(default_factory=dict)
    peak_in_flight: dict[str, int] = field(default_factory=dict)
    delays: dict[str, float] = field(default_factory=dict)  # seconds before answering
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _release: asyncio.Event | None = None

    def url(self, path: str) -> str:
        return self.base + path

    def answer(self, path: str, *answers: Answer) -> None:
        with self._lock:
            self.answers[path] = list(answers)

    def at(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.received if r.path == path]

    def _next_answer(self, path: str) -> Answer:
        with self._lock:
            queue = self.answers.get(path) or [200]
            return queue.pop(0) if len(queue) > 1 else queue[0]

    async def handle(self, request: web.Request) -> web.StreamResponse:
        path = request.path
        body = await request.read()
        with self._lock:
            self.received.append(
                Received(path, {k.lower(): v for k, v in request.headers.items()}, body)
            )
            self.in_flight[path] = self.in_flight.get(path, 0) + 1
            self.peak_in_flight[path] = max(self.peak_in_flight.get(path, 0), self.in_flight[path])
        try:
            if self.delays.get(path):
                await asyncio.sleep(self.delays[path])
            answer = self._next_answer(path)
            if answer == HANG:
                assert self._release is not None
                await self._release.wait()
                return web.Response(status=599)
            if isinstance(answer, tuple):
                status, headers = answer[0], answer[1]
                text = answer[2] if len(answer) == 3 else f"answer {status}"
                return web.Response(status=status, headers=headers, text=text)
            assert isinstance(answer, int)
            return web.Response(status=answer, text=f"answer {answer}")
        finally:
            with self._lock:
                self.in_flight[path] -= 1


@contextmanager
def running_receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    port = free_port()
    receiver.base = f"http://127.0.0.1:{port}"
    started = threading.Event()
    stop: dict[str, Any] = {}

    async def main() -> None:
        receiver._release = asyncio.Event()
        app = web.Application()
        app.router.add_route("POST", "/{tail:.*}", receiver.handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", port)
        await site.start()
        done = asyncio.Event()
        stop["loop"] = asyncio.get_running_loop()
        stop["done"] = done
        started.set()
        await done.wait()
        receiver._release.set()
        await runner.cleanup()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    if not started.wait(10):
        raise RuntimeError("receiver did not start")
    try:
        yield receiver
    finally:
        stop["loop"].call_soon_threadsafe(stop["done"].set)
        thread.join(timeout=10)
