"""The webhook sender: claims due deliveries, posts them outside any transaction, records results.

At-least-once: a delivery is marked delivered only after a 2xx; a sender that dies mid-post
leaves its claim to run out, and another sender (or itself, restarted) posts again. Each target
(an endpoint, or a session's own URL) gets at most `webhook_per_endpoint_in_flight` concurrent
posts, so a receiver that is slow or never answers only ever holds that many of the sender's
`webhook_max_in_flight` slots; everyone else keeps flowing.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import random
import time
from collections import Counter, deque
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import aiohttp
import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.config import Settings
from core.db import transaction
from core.events.wakeup import WAKEUP
from core.models.base import utcnow
from core.webhooks import queue as webhook_queue
from core.webhooks.crypto import SecretBox
from core.webhooks.queue import RESPONSE_EXCERPT_BYTES, Claim, Outcome
from core.webhooks.signing import delivery_headers
from core.webhooks.ssrf import (
    BlockedTarget,
    GuardedResolver,
    Resolve,
    checked_addresses,
    literal_address,
    system_resolve,
)

log = structlog.get_logger(__name__)

# How long a sender waits, after one post finished, for others to finish before recording.
BATCH_WINDOW_SECONDS = 0.005
SLOW_AFTER_SECONDS = 0.5
# A stopping sender waits this long for posts in flight before handing them back.
STOP_GRACE_SECONDS = 2.0


def parse_retry_after(value: str | None, now: datetime) -> timedelta | None:
    """Retry-After as seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return timedelta(seconds=int(value))
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(timedelta(0), moment - now)


class WebhookSender:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        settings: Settings,
        *,
        box: SecretBox | None = None,
        clock: Callable[[], datetime] = utcnow,
        resolve: Resolve = system_resolve,
        allow_private: bool | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.settings = settings
        self.box = box or SecretBox.from_settings(settings)
        self.clock = clock
        self.resolve = resolve
        self.allow_private = (
            settings.webhooks_allow_private if allow_private is None else allow_private
        )
        self.rng = rng or random.Random()
        self.timeout = settings.webhook_timeout_seconds
        # A claim may wait behind a hanging post before its own attempt: two timeouts and more.
        self.lease = timedelta(seconds=2 * settings.webhook_timeout_seconds + 60)
        self.max_in_flight = settings.webhook_max_in_flight
        self.per_target = settings.webhook_per_endpoint_in_flight
        self._http: aiohttp.ClientSession | None = None
        self._in_flight: dict[asyncio.Task[tuple[Claim, Outcome]], Claim] = {}
        self._started: dict[asyncio.Task[tuple[Claim, Outcome]], float] = {}
        self._per_target: Counter[str] = Counter()
        self._queued: dict[str, deque[Claim]] = {}  # claimed, waiting for room at their target
        self._unrecorded: list[tuple[Claim, Outcome]] = []
        self._released: list[Claim] = []
        self._progress = asyncio.Event()  # a post finished
        self._closing = False

    # --- lifecycle ---------------------------------------------------------------------------

    def _client(self) -> aiohttp.ClientSession:
        if self._http is None:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(allow_private=self.allow_private, resolve=self.resolve),
                use_dns_cache=False,  # every new connection is resolved and checked again
                limit=0,  # our own limits (slots, per target) apply; see _free_slots
                limit_per_host=0,  # per target (not per host) limits are ours, above
            )
            self._http = aiohttp.ClientSession(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                trust_env=False,
                auto_decompress=False,
            )
        return self._http

    async def close(self, grace: float = 0.0) -> None:
        """Record what finished, hand back what did not (another sender retries it).

        Posts in flight get `grace` seconds to be answered first (fewer deliveries repeated).
        """
        self._closing = True  # from here a finished post starts no queued one
        unfinished = [t for t in self._in_flight if not t.done()]
        if unfinished and grace > 0:
            await asyncio.wait(unfinished, timeout=grace)
            unfinished = [t for t in unfinished if not t.done()]
        for task in unfinished:
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        for task in list(self._in_flight):  # callbacks not run yet
            self._finished(task)
        results, self._unrecorded = self._unrecorded, []
        released = self._released + [c for q in self._queued.values() for c in q]
        self._released = []
        self._queued.clear()
        if results or released:
            try:
                async with transaction(self.sessionmaker) as session:
                    await webhook_queue.record(
                        session,
                        results,
                        now=self.clock(),
                        disable_after_exhausted=self.settings.webhook_disable_after_exhausted,
                        rng=self.rng,
                    )
                    await webhook_queue.release(session, released)
            except Exception:  # claims run out on their own; the work is redone, not lost
                log.exception("webhook_close_failed")
        if self._http is not None:
            await self._http.close()
            self._http = None
        self._closing = False

    # --- one round ---------------------------------------------------------------------------

    def _room_for(self, target: str) -> int:
        """Claims one target may still take: its posts in flight plus those queued behind them
        stay within twice the per-target limit (the queued half starts the moment a post ends)."""
        return 2 * self.per_target - self._per_target[target] - len(self._queued.get(target, ()))

    async def _cycle(self) -> int:
        """Record every finished attempt and claim new work, in one transaction.

        Results stay in memory until that transaction commits, so a failed one (the database
        restarting) loses nothing: they are recorded on the next cycle. Posts go on meanwhile:
        a finished post starts the next one queued for its target without waiting for this.
        """
        self._progress.clear()
        results, self._unrecorded = self._unrecorded, []
        queued = sum(len(q) for q in self._queued.values())
        limit = max(0, self._free_slots() + self.max_in_flight - queued)
        saturated = [t for t in set(self._per_target) | set(self._queued) if self._room_for(t) <= 0]
        try:
            async with transaction(self.sessionmaker) as session:
                await webhook_queue.record(
                    session,
                    results,
                    now=self.clock(),
                    disable_after_exhausted=self.settings.webhook_disable_after_exhausted,
                    rng=self.rng,
                )
                claims = []
                if limit > 0:
                    claims = await webhook_queue.claim_due(
                        session,
                        self.box,
                        now=self.clock(),  # read after recording: events it emitted are due
                        lease=self.lease,
                        limit=limit,
                        room_for=self._room_for,
                        busy_endpoints=[
                            int(t.split(":", 1)[1]) for t in saturated if t.startswith("endpoint:")
                        ],
                        busy_urls=[t for t in saturated if not t.startswith("endpoint:")],
                    )
        except BaseException:
            self._unrecorded = results + self._unrecorded
            raise
        for claim in claims:
            self._queued.setdefault(claim.target, deque()).append(claim)
        self._dispatch()
        return len(claims)

    def _dispatch(self) -> None:
        """Start queued claims while their targets and the sender have room."""
        free = self._free_slots()
        for target in list(self._queued):
            queue = self._queued[target]
            while queue and free > 0 and self._per_target[target] < self.per_target:
                self._start(queue.popleft())
                free -= 1
            if not queue:
                del self._queued[target]

    def _start(self, claim: Claim) -> None:
        self._per_target[claim.target] += 1
        task = asyncio.create_task(self._deliver(claim))
        self._in_flight[task] = claim
        self._started[task] = time.monotonic()
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[tuple[Claim, Outcome]]) -> None:
        claim = self._in_flight.pop(task, None)
        if claim is None:
            return
        self._started.pop(task, None)
        self._per_target[claim.target] -= 1
        if self._per_target[claim.target] <= 0:
            del self._per_target[claim.target]
        if task.cancelled():
            self._released.append(claim)
        elif task.exception() is not None:  # a bug, not a failed post: the claim runs out
            log.error(
                "webhook_post_crashed", delivery_id=claim.delivery_id, exc_info=task.exception()
            )
        else:
            self._unrecorded.append(task.result())
        if not self._closing:
            self._dispatch()
        self._progress.set()

    def _free_slots(self) -> int:
        """Slots for new posts. A post running longer than SLOW_AFTER_SECONDS (a receiver that
        hangs) stops counting against the sender, so dead endpoints cannot starve live ones;
        the per-target limit bounds them, and so does a hard cap at 4x the slots."""
        cutoff = time.monotonic() - SLOW_AFTER_SECONDS
        young = sum(1 for started in self._started.values() if started > cutoff)
        hard_room = 4 * self.max_in_flight - len(self._in_flight)
        return max(0, min(self.max_in_flight - young, hard_room))

    def _busy(self) -> bool:
        return bool(self._in_flight or self._queued)

    async def _gather_more(self) -> None:
        """A post finished: let others finish too (a few ms), so one transaction records many."""
        cutoff = time.monotonic() - SLOW_AFTER_SECONDS
        young = sum(1 for started in self._started.values() if started > cutoff)
        enough = max(1, young // 4)  # hanging posts would only make this wait longer
        deadline = time.monotonic() + BATCH_WINDOW_SECONDS
        while len(self._unrecorded) < enough and self._in_flight:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._progress.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._progress.wait(), left)

    async def run_once(self) -> int:
        """Deliver everything due now (respecting the per-target limit); return attempts made."""
        attempts = 0
        while True:
            recorded = len(self._unrecorded)
            claimed = await self._cycle()
            attempts += claimed
            if not (recorded or claimed or self._busy() or self._unrecorded):
                return attempts  # (recording can emit events: one more look after it did)
            if self._in_flight and not self._unrecorded:
                await self._progress.wait()

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until `stop` is set."""
        log.info("webhook_sender_started", max_in_flight=self.max_in_flight)
        woken = WAKEUP.subscribe()  # events or deliveries committed in this process: look now
        try:
            while not stop.is_set():
                try:
                    await self._cycle()
                except Exception:  # the database is down or busy: try again shortly
                    log.exception("webhook_cycle_failed")
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), self.settings.webhook_poll_seconds)
                    continue
                if self._unrecorded:
                    continue  # posts finished while the cycle ran: record them now
                progress = asyncio.ensure_future(self._progress.wait())
                wake = asyncio.ensure_future(woken.wait())
                stopping = asyncio.ensure_future(stop.wait())
                done, _ = await asyncio.wait(
                    {progress, wake, stopping},
                    timeout=self.settings.webhook_poll_seconds,
                    return_when=asyncio.FIRST_COMPLETED,
                )
                for waiter in (progress, wake, stopping):
                    waiter.cancel()
                woken.clear()
                if progress in done and not stop.is_set():
                    await self._gather_more()
        finally:
            WAKEUP.unsubscribe(woken)
            # Stopping (not cancelled): posts in flight may still be answered, briefly.
            await self.close(grace=STOP_GRACE_SECONDS if stop.is_set() else 0.0)

    # --- one attempt -------------------------------------------------------------------------

    async def _deliver(self, claim: Claim) -> tuple[Claim, Outcome]:
        started_at = self.clock()
        started = time.monotonic()

        def took() -> int:
            return int((time.monotonic() - started) * 1000)

        try:
            host = urlsplit(claim.url).hostname or ""
            if literal_address(host) is not None:
                # aiohttp skips the resolver for IP literals; check them here instead.
                await checked_addresses(host, 0, allow_private=self.allow_private)
            headers = delivery_headers(
                event_id=claim.event_id,
                event_type=claim.event_type,
                body=claim.body,
                timestamp=int(time.time()),
                secrets=claim.secrets,
            )
            async with self._client().post(
                claim.url, data=claim.body.encode(), headers=headers, allow_redirects=False
            ) as response:
                excerpt = await response.content.read(RESPONSE_EXCERPT_BYTES)
                return claim, Outcome(
                    started_at=started_at,
                    duration_ms=took(),
                    status_code=response.status,
                    response=excerpt.decode("utf-8", errors="replace") or None,
                    error=None if 200 <= response.status < 300 else f"HTTP {response.status}",
                    retry_after=parse_retry_after(
                        response.headers.get("Retry-After"), self.clock()
                    ),
                )
        except BlockedTarget as exc:
            error = f"blocked: {exc}"
        except aiohttp.ClientConnectorError as exc:
            blocked = isinstance(exc.os_error, BlockedTarget)
            error = f"blocked: {exc.os_error}" if blocked else f"connection failed: {exc.os_error}"
        except TimeoutError:
            error = f"timed out after {self.timeout:g} s"
        except aiohttp.ClientError as exc:
            error = f"{type(exc).__name__}: {exc}"
        except ValueError as exc:  # e.g. an unreadable secret, a URL aiohttp refuses
            error = f"{type(exc).__name__}: {exc}"
        return claim, Outcome(started_at=started_at, duration_ms=took(), error=error[:500])
