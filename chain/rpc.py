"""JSON-RPC over HTTP with several URLs per chain: failover, retries with jitter, per-URL health,
and `eth_getLogs` errors that ask for a smaller range turned into RangeTooLarge (with hints).

Results are the raw JSON (dicts and hex strings): the watcher's hot path does no web3 formatting.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import random
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import orjson
import structlog

from core import safe_json

log = structlog.get_logger(__name__)

T = TypeVar("T")

_RANGE_HINTS = (
    "range",
    "too many",
    "more than",
    "limit exceeded",
    "exceed",
    "response size",
    "too large",
    "query returned",
    "block range",
)
_HEX_PAIR = re.compile(r"\[\s*(0x[0-9a-fA-F]+)\s*,\s*(0x[0-9a-fA-F]+)\s*\]")
_RETRY_AFTER_ERRORS = (httpx.TransportError, httpx.HTTPStatusError, ValueError)


@contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic GC while a (large) JSON answer is parsed: its thousands of fresh dicts and lists
    hold no cycles, and tracing them (and everything older, in a full collection) is wasted work."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _parse_fast(content: bytes) -> Any:
    """Large answers (eth_getLogs) with orjson, about 1.5x faster than the standard parser.

    Only for answers whose values are strings and booleans (quantities are hex strings): orjson
    reads an integer past 64 bits as a float, so it never parses anything that could carry an
    amount as a JSON number. What it refuses goes to the standard parser, which has the last word.
    """
    try:
        return orjson.loads(content)  # its own nesting limit (1024), no recursion on the C stack
    except orjson.JSONDecodeError:
        return safe_json.loads(content)


def _log_filter(
    from_block: int, to_block: int, addresses: list[str], topic0: str
) -> dict[str, Any]:
    return {
        "fromBlock": hex(from_block),
        "toBlock": hex(to_block),
        "address": addresses,
        "topics": [topic0],
    }


class _DigestFailed(Exception):
    def __init__(self, error: Exception) -> None:
        super().__init__(str(error))
        self.error = error


class RpcError(Exception):
    def __init__(self, message: str, *, code: int | None = None, data: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.data = data


class RangeTooLarge(RpcError):
    """The node refused the block range; `suggested_to` is the end it says would work, if any."""

    def __init__(self, message: str, *, suggested_to: int | None = None) -> None:
        super().__init__(message)
        self.suggested_to = suggested_to


class AllEndpointsFailed(RpcError):
    pass


def classify_error(error: dict[str, Any], *, is_get_logs: bool) -> RpcError:
    message = str(error.get("message", "rpc error"))
    lowered = message.lower()
    if is_get_logs and any(hint in lowered for hint in _RANGE_HINTS):
        suggested = None
        match = _HEX_PAIR.search(message) or _HEX_PAIR.search(str(error.get("data", "")))
        if match:
            suggested = int(match.group(2), 16)
        return RangeTooLarge(message, suggested_to=suggested)
    return RpcError(message, code=error.get("code"), data=error.get("data"))


@dataclass
class Endpoint:
    url: str
    failures: int = 0
    cooldown_until: float = 0.0
    calls: int = 0
    errors: int = 0

    @property
    def host(self) -> str:
        """scheme://host:port only: provider URLs often carry an API key in the path or query."""
        url = httpx.URL(self.url)
        return f"{url.scheme}://{url.host}" + (f":{url.port}" if url.port else "")

    def healthy(self, now: float) -> bool:
        return now >= self.cooldown_until

    def failed(self, now: float) -> None:
        self.failures += 1
        self.errors += 1
        self.cooldown_until = now + min(30.0, 0.5 * 2 ** min(self.failures, 6))

    def succeeded(self) -> None:
        self.failures = 0
        self.cooldown_until = 0.0


@dataclass
class RpcPool:
    """Calls go to the healthiest URL; on a transport error, timeout or node error, to the next."""

    urls: list[str]
    timeout: float = 10.0
    attempts: int = 6
    endpoints: list[Endpoint] = field(init=False)
    _ids: itertools.count[int] = field(init=False)

    def __post_init__(self) -> None:
        if not self.urls:
            raise ValueError("an RPC pool needs at least one URL")
        self.endpoints = [Endpoint(url) for url in self.urls]
        self._ids = itertools.count(1)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.timeout), follow_redirects=False
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    def _order(self) -> list[Endpoint]:
        now = time.monotonic()
        healthy = [e for e in self.endpoints if e.healthy(now)]
        resting = sorted(
            (e for e in self.endpoints if not e.healthy(now)), key=lambda e: e.cooldown_until
        )
        return healthy + resting

    async def call(
        self, method: str, params: list[Any], *, digest: Callable[[Any], Any] | None = None
    ) -> Any:
        """The method's result; with `digest`, what `digest` makes of it, computed as soon as
        the answer is parsed (so a large answer is dropped before anything else runs)."""
        last_error: Exception | None = None
        is_get_logs = method == "eth_getLogs"
        for attempt in range(self.attempts):
            for endpoint in self._order():
                endpoint.calls += 1
                try:
                    response = await self._client.post(
                        endpoint.url,
                        json={
                            "jsonrpc": "2.0",
                            "id": next(self._ids),
                            "method": method,
                            "params": params,
                        },
                    )
                    response.raise_for_status()
                    with _gc_paused():
                        body = (
                            _parse_fast(response.content)
                            if digest
                            else safe_json.loads(response.content)
                        )
                        if digest is not None and isinstance(body, dict) and not body.get("error"):
                            try:
                                body["result"] = digest(body.get("result"))
                            except Exception as exc:
                                raise _DigestFailed(exc) from exc
                except _DigestFailed as failed:
                    # The caller's own error, not the endpoint's: no failover, no retry.
                    raise failed.error from None
                except _RETRY_AFTER_ERRORS as exc:
                    endpoint.failed(time.monotonic())
                    last_error = exc
                    log.warning(
                        "rpc_endpoint_failed",
                        url=endpoint.url,
                        method=method,
                        error=type(exc).__name__,
                    )
                    continue
                if "error" in body and body["error"] is not None:
                    error = classify_error(body["error"], is_get_logs=is_get_logs)
                    if isinstance(error, RangeTooLarge):
                        endpoint.succeeded()
                        raise error
                    endpoint.failed(time.monotonic())
                    last_error = error
                    continue
                endpoint.succeeded()
                return body.get("result")
            # Every endpoint failed this round: back off with jitter before the next.
            await asyncio.sleep(min(5.0, 0.1 * 2**attempt) * (0.5 + random.random()))
        raise AllEndpointsFailed(f"{method} failed on every endpoint: {last_error!r}")

    async def block_number(self) -> int:
        return int(await self.call("eth_blockNumber", []), 16)

    async def chain_id(self) -> int:
        return int(await self.call("eth_chainId", []), 16)

    async def get_block(self, block: int | str) -> dict[str, Any] | None:
        tag = hex(block) if isinstance(block, int) else block
        result = await self.call("eth_getBlockByNumber", [tag, False])
        return result if isinstance(result, dict) else None

    async def get_logs(
        self, from_block: int, to_block: int, addresses: list[str], topic0: str
    ) -> list[dict[str, Any]]:
        result = await self.call(
            "eth_getLogs", [_log_filter(from_block, to_block, addresses, topic0)]
        )
        return list(result or [])

    async def scan_logs(
        self,
        from_block: int,
        to_block: int,
        addresses: list[str],
        topic0: str,
        select: Callable[[list[dict[str, Any]]], list[T]],
    ) -> tuple[int, list[T]]:
        """How many logs the range has, and what `select` keeps of them.

        For ranges with thousands of logs of which few matter: `select` runs as soon as the
        answer is parsed, and the logs it does not keep are freed at once.
        """

        def digest(result: Any) -> tuple[int, list[T]]:
            logs = list(result or [])
            return len(logs), select(logs)

        counted: tuple[int, list[T]] = await self.call(
            "eth_getLogs", [_log_filter(from_block, to_block, addresses, topic0)], digest=digest
        )
        return counted

    async def eth_call(self, to: str, data: str) -> str:
        return str(await self.call("eth_call", [{"to": to, "data": data}, "latest"]))
