"""The chain watcher: a restartable loop of small committed steps, one task per chain.

Each step reads the chain (JSON-RPC, raw results), then commits in ONE database transaction the
lease renewal, the payments, their sessions and subscriptions, the outbox events, the block
ledger and the cursor. A crash between steps repeats work but never loses or double-counts it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from websockets.asyncio.client import connect as ws_connect

from chain import reorg
from chain.rpc import AllEndpointsFailed, Endpoint, RangeTooLarge, RpcError, RpcPool
from core.chains import Chain
from core.chainstate import service as chainstate
from core.checkout.context import CheckoutContext
from core.cursor import IdCursor
from core.db import transaction
from core.models import ChainHead
from core.payments import ingest
from core.payments.schemas import Transfer

log = structlog.get_logger(__name__)

TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
_TOPIC_PADDING = "0x" + "0" * 24  # an address as an indexed topic: 12 zero bytes, then 20
# Reconnecting a failed newHeads socket: first after ~1 s, doubling up to ~1 min (with jitter).
WS_RETRY_FIRST = 1.0
WS_RETRY_MAX = 60.0


@dataclass(frozen=True, slots=True)
class DecodedTransfer:
    block_number: int
    block_hash: str
    tx_hash: str
    log_index: int
    token: str
    from_address: str
    to_address: str  # lower-case hex
    amount: int


def decode_transfer(raw: dict[str, Any]) -> DecodedTransfer | None:
    """A raw `eth_getLogs` entry as an ERC-20 Transfer, or None (ERC-721 style, removed, malformed)."""
    topics = raw.get("topics") or []
    if len(topics) != 3 or str(topics[0]).lower() != TRANSFER_TOPIC or raw.get("removed"):
        return None
    data = str(raw.get("data") or "0x")
    if len(data) != 66:
        return None
    try:
        return DecodedTransfer(
            block_number=int(raw["blockNumber"], 16),
            block_hash=str(raw["blockHash"]).lower(),
            tx_hash=str(raw["transactionHash"]).lower(),
            log_index=int(raw["logIndex"], 16),
            token=str(raw["address"]).lower(),
            from_address="0x" + str(topics[1])[-40:].lower(),
            to_address="0x" + str(topics[2])[-40:].lower(),
            amount=int(data, 16),
        )
    except (KeyError, ValueError, TypeError):
        return None


# A log to one of our addresses, and its block's timestamp when the node sends it with the log.
Matched = tuple[DecodedTransfer, int | None]


def address_topic(address: str) -> str:
    """An address as the indexed topic of a Transfer to it (12 zero bytes, then 20), lower-case."""
    return _TOPIC_PADDING + address[2:].lower()


def match_transfers(
    logs: list[dict[str, Any]], address_topics: set[str], tokens: set[str]
) -> list[Matched]:
    """The Transfers (of `tokens`, nonzero) to one of `address_topics`, with their block times.

    Hot path, once per log: a set lookup on the raw topic before anything is decoded.
    """
    matched = []
    for raw in logs:
        topics = raw.get("topics")
        if topics and len(topics) == 3 and str(topics[2]).lower() in address_topics:
            decoded = decode_transfer(raw)
            if decoded is not None and decoded.token in tokens and decoded.amount > 0:
                matched.append((decoded, _quantity(raw.get("blockTimestamp"))))
    return matched


def _quantity(value: Any) -> int | None:
    """A JSON-RPC hex quantity ("0x1a"), or None when absent or malformed."""
    if not isinstance(value, str) or not value.startswith("0x"):
        return None
    try:
        return int(value, 16)
    except ValueError:
        return None


def _discard(task: asyncio.Task[Any]) -> None:
    """Cancel a fetch nobody will wait for (and mark a failure it already had as seen)."""
    if task.done():
        if not task.cancelled():
            task.exception()
    else:
        task.cancel()


async def _first_of(*events: asyncio.Event, seconds: float) -> None:
    """Return when one of `events` is set, or after `seconds`."""
    waiters = [asyncio.create_task(event.wait()) for event in events]
    try:
        await asyncio.wait(waiters, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()


def final_block_of(chain: Chain, head: int, tagged: int | None) -> int:
    """The highest block that counts as final under the chain's policy."""
    if chain.finality is not None:
        return tagged if tagged is not None else -1
    confirmations = chain.confirmations or 0
    return head - max(confirmations, 1) + 1


@dataclass
class ChunkSizer:
    """Adaptive eth_getLogs ranges of about `target_logs` logs each.

    Grows while answers stay under half the target; an answer over the target shrinks the
    range in proportion, so a dense backfill is read in several requests (each one persisted
    while the next is fetched) and no single answer grows without bound (providers commonly
    refuse more than 10,000 logs). A refused range also lowers the ceiling: a provider's limit
    does not go away, so the watcher stops probing above it.
    """

    size: int = 500
    minimum: int = 1
    maximum: int = 10_000
    target_logs: int = 10_000
    refusals: int = 0

    def observed(self, logs: int, blocks: int) -> None:
        """A range of `blocks` blocks held `logs` logs."""
        if logs > self.target_logs:
            self.size = max(self.minimum, min(self.size, blocks * self.target_logs // logs))
        elif logs < self.target_logs // 2:
            self.size = min(self.maximum, self.size * 2)

    def refused(self, suggested: int | None = None) -> None:
        self.refusals += 1
        self.size = max(self.minimum, suggested if suggested else self.size // 2)
        self.maximum = max(self.minimum, self.size)


def default_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class ChainWatcher:
    def __init__(
        self,
        chain: Chain,
        sessionmaker: async_sessionmaker[AsyncSession],
        context: CheckoutContext,
        *,
        owner: str | None = None,
        poll_interval: float = 1.0,
        lease_ttl: timedelta = timedelta(seconds=15),
        start_block: int | None = None,
        initial_lookback: int = 1_000,
        chunk_blocks: int = 500,
        max_chunk_blocks: int = 10_000,
        rpc: RpcPool | None = None,
    ) -> None:
        if not chain.rpc_urls and rpc is None:
            raise ValueError(f"chain {chain.id} has no RPC URLs")
        self.chain = chain
        self.sessionmaker = sessionmaker
        self.context = context
        self.owner = owner or default_owner()
        self.lease = chainstate.watcher_lease(chain.id)
        self.poll_interval = poll_interval
        self.lease_ttl = lease_ttl
        self.start_block = start_block
        self.initial_lookback = initial_lookback
        self.rpc = rpc or RpcPool(list(chain.rpc_urls))
        self.sizer = ChunkSizer(size=min(chunk_blocks, max_chunk_blocks), maximum=max_chunk_blocks)
        self.tokens = [t.contract for t in chain.tokens]
        self.token_set = {t.contract.lower() for t in chain.tokens}
        self._block_cache: dict[int, dict[str, Any]] = {}
        # Every deposit address as the 32-byte topic a Transfer to it carries, lower-case.
        self._address_topics: set[str] = set()
        self._address_cursor = IdCursor()  # over session ids, with the ones that commit late
        self._prefetch: tuple[int, int, asyncio.Task[tuple[int, list[Matched]]]] | None = None
        self.active = False

    async def run(self, stop: asyncio.Event) -> None:
        """Step until `stop` is set; errors are logged and retried, never fatal.

        Between steps it waits `poll_interval`, or less when the chain's WebSocket (if one is
        configured) announces a new head: the socket only wakes the loop, the step still reads
        everything over HTTP, and without the socket polling goes on as before.
        """
        wake = asyncio.Event()
        listener = (
            asyncio.create_task(self._wake_on_new_heads(self.chain.ws_url, wake, stop))
            if self.chain.ws_url
            else None
        )
        try:
            while not stop.is_set():
                try:
                    busy = await self.step()
                except (RpcError, OSError) as exc:
                    log.warning("watcher_rpc_error", chain_id=self.chain.id, error=str(exc)[:200])
                    busy = False
                except Exception:
                    log.exception("watcher_step_failed", chain_id=self.chain.id)
                    busy = False
                if not busy:
                    await _first_of(stop, wake, seconds=self.poll_interval)
                    wake.clear()  # heads announced from here on wake the next pause
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener
            await self.close()

    async def _wake_on_new_heads(self, url: str, wake: asyncio.Event, stop: asyncio.Event) -> None:
        """Set `wake` on every `newHeads` notification; reconnect with backoff when it fails."""
        host = Endpoint(url).host  # provider URLs often carry API keys: log the host only
        delay = WS_RETRY_FIRST
        while not stop.is_set():
            try:
                async with ws_connect(url, open_timeout=10, max_size=2**20) as ws:
                    await ws.send(
                        json.dumps(
                            {
                                "jsonrpc": "2.0",
                                "id": 1,
                                "method": "eth_subscribe",
                                "params": ["newHeads"],
                            }
                        )
                    )
                    answer = json.loads(await asyncio.wait_for(ws.recv(), timeout=10))
                    if (
                        not isinstance(answer, dict)
                        or answer.get("error")
                        or not answer.get("result")
                    ):
                        raise RpcError(f"eth_subscribe refused: {str(answer)[:200]}")
                    log.info("watcher_ws_subscribed", chain_id=self.chain.id, url=host)
                    delay = WS_RETRY_FIRST
                    async for _ in ws:
                        wake.set()
                raise ConnectionError("the node closed the socket")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "watcher_ws_failed",
                    chain_id=self.chain.id,
                    url=host,
                    error=type(exc).__name__,
                    retry_in=round(delay, 1),
                )
            await _first_of(stop, seconds=delay * (0.5 + random.random()))
            delay = min(WS_RETRY_MAX, delay * 2)

    async def close(self) -> None:
        """Give up the lease (a successor takes over at once) and close the RPC pool."""
        self._drop_prefetch()
        await self._release()
        await self.rpc.aclose()

    async def _release(self) -> None:
        try:
            async with transaction(self.sessionmaker) as session:
                await chainstate.release_lease(session, self.lease, self.owner)
        except Exception:
            log.warning("watcher_lease_release_failed", chain_id=self.chain.id)

    async def _fetch_block(self, number: int) -> dict[str, Any]:
        block = self._block_cache.get(number)
        if block is None:
            block = await self.rpc.get_block(number)
            if block is None:
                raise RpcError(f"block {number} not available yet")
            self._block_cache[number] = block
            if len(self._block_cache) > 4_096:
                for key in sorted(self._block_cache)[:2_048]:
                    self._block_cache.pop(key, None)
        return block

    async def step(self) -> bool:
        """One unit of work. Returns True when more work is waiting (backfill), else False."""
        self._block_cache.clear()
        head_block = await self.rpc.get_block("latest")
        if head_block is None:
            return False
        head = int(head_block["number"], 16)
        tagged = None
        if self.chain.finality is not None:
            tagged_block = await self.rpc.get_block(self.chain.finality)
            tagged = int(tagged_block["number"], 16) if tagged_block else None
        final = final_block_of(self.chain, head, tagged)

        async with self.sessionmaker() as session:
            scanned = await chainstate.cursor(session, self.chain.id)
            ledger = list(await chainstate.ledger_desc(session, self.chain.id))
        if scanned is None:
            scanned = (
                self.start_block - 1
                if self.start_block is not None
                else max(-1, head - self.initial_lookback)
            )

        # 1. Reorg: is the newest block we scanned still on the chain?
        if ledger:
            fork = await reorg.find_fork(ledger, self._hash_at)
            if fork is not None:
                self._drop_prefetch()
                await self._rewind(fork, head, head_block)
                return True

        # 2. Scan the next range (unfinal blocks too, so payments show up as "seen").
        start = scanned + 1
        if start > head:
            self._drop_prefetch()
            await self._commit(head, head_block, final, scanned, transfers=[], blocks=[])
            return False
        # Logs are matched as they arrive, so every address that can have been paid in the
        # range must be known first: one made after this step saw its head cannot have been.
        await self._refresh_addresses()
        fetching = self._take_prefetch(start, final)
        if fetching is not None:
            end, logs_task = fetching
        else:
            end = min(head, start + self.sizer.size - 1)
            logs_task = self._fetch_logs(start, end)
        try:
            count, matched = await logs_task
        except AllEndpointsFailed:
            # Timeouts and dropped answers on a big range: ask for less next time.
            self.sizer.size = max(self.sizer.minimum, self.sizer.size // 2)
            raise
        except RangeTooLarge as exc:
            suggested = (
                exc.suggested_to - start + 1
                if exc.suggested_to and exc.suggested_to >= start
                else None
            )
            self.sizer.refused(suggested)
            log.info("watcher_range_shrunk", chain_id=self.chain.id, size=self.sizer.size)
            return True
        finally:
            if not logs_task.done():
                logs_task.cancel()
        self.sizer.observed(count, end - start + 1)
        # Backfill: ask for the next range now, so the node works on it while this step's
        # transaction runs. Only final blocks, and only up to the head this step saw: a reorg
        # cannot touch them, the next step still checks the ledger before using them, and
        # every address paid in them was made before that head, so is in the set already.
        if end < final:
            next_end = min(final, end + self.sizer.size)
            self._prefetch = (end + 1, next_end, self._fetch_logs(end + 1, next_end))

        # Unfinal heights of this range go into the ledger; their logs must agree with it.
        unfinal_from = max(start, final + 1)
        await self._fetch_blocks(range(unfinal_from, end + 1))
        blocks: list[tuple[int, str, str]] = []
        for number in range(unfinal_from, end + 1):
            block = self._block_cache[number]
            blocks.append((number, str(block["hash"]).lower(), str(block["parentHash"]).lower()))
        if reorg.breaks_ledger(ledger, blocks):
            return True  # the chain moved under us; the next step's reorg check sorts it out
        if reorg.replaced_while_reading(
            ((d.block_number, d.block_hash) for d, _ in matched), blocks
        ):
            return True  # logs from a block that was replaced while we were reading

        # A final block's time comes with its logs where the node includes it (anvil, geth,
        # reth, erigon); otherwise, and for unfinal blocks, from the block itself.
        await self._fetch_blocks(
            sorted(
                {
                    d.block_number
                    for d, timestamp in matched
                    if d.block_number > final or timestamp is None
                }
            )
        )
        transfers = []
        for d, timestamp in matched:
            fetched = self._block_cache.get(d.block_number)
            if fetched is not None:
                if str(fetched["hash"]).lower() != d.block_hash:
                    return True
                timestamp = int(fetched["timestamp"], 16)
            assert timestamp is not None
            transfers.append(
                Transfer(
                    chain_id=self.chain.id,
                    tx_hash=d.tx_hash,
                    log_index=d.log_index,
                    block_number=d.block_number,
                    block_hash=d.block_hash,
                    block_timestamp=datetime.fromtimestamp(timestamp, tz=UTC),
                    from_address=d.from_address,
                    to_address=d.to_address,
                    token_contract=d.token,
                    amount_base_units=d.amount,
                    final=d.block_number <= final,
                )
            )
        await self._commit(head, head_block, final, end, transfers=transfers, blocks=blocks)
        return end < head

    def _fetch_logs(self, start: int, end: int) -> asyncio.Task[tuple[int, list[Matched]]]:
        """The range's Transfer logs to our addresses (and how many logs it has), in a task."""
        return asyncio.create_task(
            self.rpc.scan_logs(start, end, self.tokens, TRANSFER_TOPIC, self._match)
        )

    def _match(self, logs: list[dict[str, Any]]) -> list[Matched]:
        return match_transfers(logs, self._address_topics, self.token_set)

    def _take_prefetch(
        self, start: int, final: int
    ) -> tuple[int, asyncio.Task[tuple[int, list[Matched]]]] | None:
        """The range fetched ahead by the previous step, if it begins where this one does."""
        prefetch, self._prefetch = self._prefetch, None
        if prefetch is None:
            return None
        first, last, task = prefetch
        if first != start or last > final:
            _discard(task)  # the cursor moved elsewhere, or this step's provider is behind
            return None
        return last, task

    def _drop_prefetch(self) -> None:
        if self._prefetch is not None:
            _discard(self._prefetch[2])
            self._prefetch = None

    async def _fetch_blocks(self, numbers: range | list[int]) -> None:
        """Every block in `numbers` into the step's cache, requested concurrently."""
        missing = [n for n in numbers if n not in self._block_cache]
        for start in range(0, len(missing), 50):
            await asyncio.gather(*(self._fetch_block(n) for n in missing[start : start + 50]))

    async def warm_up(self) -> int:
        """Load every deposit address now (otherwise the first step does it). Returns how many."""
        await self._refresh_addresses()
        return len(self._address_topics)

    async def _refresh_addresses(self) -> None:
        """New deposit addresses into the in-memory set, and any that showed up late.

        Ids are handed out at INSERT but rows appear at COMMIT, so (on PostgreSQL, with several
        API processes) a session can become visible below the cursor after it moved on. The
        recent ids the cursor skipped are asked for again until they appear, or until they are
        old enough to be rollbacks; otherwise a payment to such a session would never match.
        """
        now = time.monotonic()
        cursor = self._address_cursor
        async with self.sessionmaker() as session:
            cursor.expire(now)
            if cursor.holes:
                found = await chainstate.deposit_addresses_by_id(session, cursor.pending())
                self._address_topics.update(address_topic(address) for _, address in found)
                cursor.filled(number for number, _ in found)
            while True:
                rows = await chainstate.deposit_addresses_since(session, cursor.position)
                if not rows:
                    return
                self._address_topics.update(address_topic(address) for _, address in rows)
                cursor.advance([number for number, _ in rows], now)

    async def _hash_at(self, number: int) -> str | None:
        block = await self.rpc.get_block(number)
        return str(block["hash"]).lower() if block is not None else None

    async def _rewind(self, fork: int, head: int, head_block: dict[str, Any]) -> None:
        async with transaction(self.sessionmaker) as session:
            if not await chainstate.hold_lease(
                session, self.lease, self.owner, self.lease_ttl, now=self.context.clock.now()
            ):
                self.active = False
                return
            orphaned = await reorg.rewind(session, self.context, self.chain.id, fork)
            await chainstate.set_head(session, self.chain.id, head, str(head_block["hash"]).lower())
        log.warning("watcher_reorg", chain_id=self.chain.id, fork=fork, orphaned=len(orphaned))

    async def _commit(
        self,
        head: int,
        head_block: dict[str, Any],
        final: int,
        scanned_through: int,
        *,
        transfers: list[Transfer],
        blocks: list[tuple[int, str, str]],
    ) -> None:
        async with transaction(self.sessionmaker) as session:
            if not await chainstate.hold_lease(
                session, self.lease, self.owner, self.lease_ttl, now=self.context.clock.now()
            ):
                if self.active:
                    log.info("watcher_standby", chain_id=self.chain.id, owner=self.owner)
                self.active = False
                return
            if not self.active:
                log.info("watcher_active", chain_id=self.chain.id, owner=self.owner)
            self.active = True
            await chainstate.set_head(session, self.chain.id, head, str(head_block["hash"]).lower())
            # Held for the whole step (no query: set_head loaded it). The session's identity map
            # keeps only changed objects for sure; once a flush has written the head, every
            # payment event's look-up of it (`session.get`) would read it again.
            head_row = await session.get(ChainHead, self.chain.id)
            # Every session this step settles, locked in one ordered pass (no deadlock with
            # another chain's step or the expiry job), before either call below decides one.
            locks = await ingest.lock_step_sessions(session, self.chain.id, transfers, final)
            await ingest.apply_transfers(
                session, self.context, transfers, sessions_by_address=locks.sessions_by_address
            )
            await chainstate.record_blocks(session, self.chain.id, blocks)
            await chainstate.forget_blocks(session, self.chain.id, through=final)
            await chainstate.set_cursor(session, self.chain.id, scanned_through)
            await ingest.confirm_through(
                session, self.context, self.chain.id, final, now_final=locks.now_final
            )
            del head_row
