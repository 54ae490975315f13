"""The periodic jobs of core/<domain>/tasks.py, run by APScheduler under named leases.

Every process that runs a scheduler (`serve`, `worker`) schedules every job; a run first takes
the job's lease (`job:<name>`) and reads the job's last success from `job_runs`, so across
any number of workers one run of a job happens at a time, and a run is skipped when another
worker finished one less than half an interval ago. Each job runs once when the scheduler
starts, so a worker that was down catches up with one run (not one per missed tick), then
every interval; ticks missed while a run was in progress are coalesced into one.

A run is one or more bounded batches, each in its own transaction that renews the lease
first (a run whose lease ran out and was taken over stops at its next batch); it goes on
while batches find work, up to MAX_BATCHES, and stops between batches when the process stops.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from chain.watcher import default_owner
from core.chainstate import service as chainstate
from core.checkout import tasks as checkout_tasks
from core.checkout.context import CheckoutContext
from core.clock import Clock
from core.config import Settings
from core.db import transaction
from core.idempotency import tasks as idempotency_tasks
from core.models import JobRun
from core.subscriptions import tasks as subscriptions_tasks
from core.telegram import tasks as telegram_tasks
from core.webhooks import tasks as webhooks_tasks

log = structlog.get_logger(__name__)
# APScheduler logs every run at INFO ("Running job", "executed successfully"); ours say enough.
logging.getLogger("apscheduler").setLevel(logging.WARNING)

MAX_BATCHES = 20
ERROR_CHARS = 500


@dataclass(frozen=True)
class Job:
    """A periodic job: `name` is `domain.action`; `batch(session, now)` does one bounded batch
    in the caller's transaction and returns how much it did (0: nothing left to do)."""

    name: str
    interval: timedelta
    batch: Callable[[AsyncSession, datetime], Awaitable[int]]


def default_jobs(settings: Settings, context: CheckoutContext) -> list[Job]:
    """The jobs every `serve` and `worker` schedules, with their intervals from the settings."""

    async def expire(session: AsyncSession, now: datetime) -> int:
        return await checkout_tasks.expire(session, now, context=context)

    async def purge_idempotency(session: AsyncSession, now: datetime) -> int:
        return await idempotency_tasks.purge(
            session, now, ttl=timedelta(hours=settings.idempotency_ttl_hours)
        )

    async def retention(session: AsyncSession, now: datetime) -> int:
        return await webhooks_tasks.purge_old(
            session, now, retention=timedelta(days=settings.retention_days)
        )

    async def subscriptions_lifecycle(session: AsyncSession, now: datetime) -> int:
        return await subscriptions_tasks.advance(session, now, policy=context.subscription_policy)

    async def telegram_retention(session: AsyncSession, now: datetime) -> int:
        return await telegram_tasks.purge_old(
            session, now, retention=timedelta(days=settings.retention_days)
        )

    return [
        Job("checkout.expire", timedelta(seconds=settings.job_checkout_expire_seconds), expire),
        Job(
            "idempotency.purge",
            timedelta(seconds=settings.job_idempotency_purge_seconds),
            purge_idempotency,
        ),
        Job(
            "webhooks.retention",
            timedelta(seconds=settings.job_webhooks_retention_seconds),
            retention,
        ),
        Job(
            "subscriptions.lifecycle",
            timedelta(seconds=settings.job_subscriptions_seconds),
            subscriptions_lifecycle,
        ),
        Job(
            "telegram.retention",
            timedelta(seconds=settings.job_telegram_retention_seconds),
            telegram_retention,
        ),
    ]


class JobScheduler:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        jobs: Sequence[Job],
        clock: Clock,
        *,
        owner: str | None = None,
        lease_ttl: timedelta = timedelta(minutes=5),
    ) -> None:
        self.sessionmaker = sessionmaker
        self.jobs = list(jobs)
        self.clock = clock
        self.owner = owner or default_owner()
        self.lease_ttl = lease_ttl
        self._running: set[asyncio.Task[Any]] = set()
        self._stopping = False

    async def run(self, stop: asyncio.Event) -> None:
        """Schedule the jobs until `stop` is set; then let runs in progress end their batch."""
        scheduler = AsyncIOScheduler(timezone=UTC)
        start = datetime.now(UTC)  # APScheduler's own timeline is the machine's
        for job in self.jobs:
            seconds = job.interval.total_seconds()
            scheduler.add_job(
                self.run_once,
                "interval",
                args=[job],
                seconds=seconds,
                id=job.name,
                name=job.name,
                next_run_time=start,
                coalesce=True,
                max_instances=1,
                misfire_grace_time=max(1, int(seconds)),
            )
        scheduler.start()
        log.info("scheduler_started", jobs=[job.name for job in self.jobs], owner=self.owner)
        try:
            await stop.wait()
        finally:
            self._stopping = True
            scheduler.pause()
            try:
                if self._running:
                    await asyncio.wait(set(self._running))
            finally:
                scheduler.shutdown(wait=False)  # cancels a run still going (past the grace)

    async def run_once(self, job: Job) -> bool:
        """One run of `job` if this process gets its lease and the job is due; True if it ran."""
        task = asyncio.current_task()
        if task is not None:
            self._running.add(task)
        try:
            return await self._run(job)
        except Exception:  # the lease could not be taken or given back: the next tick retries
            log.exception("job_failed", job=job.name)
            return False
        finally:
            if task is not None:
                self._running.discard(task)

    async def _run(self, job: Job) -> bool:
        lease = chainstate.job_lease(job.name)
        started = self.clock.now()
        async with transaction(self.sessionmaker) as session:
            if not await chainstate.hold_lease(
                session, lease, self.owner, self.lease_ttl, now=started
            ):
                return False
            record = await session.get(JobRun, job.name)
            if (
                record is not None
                and record.last_success_at is not None
                and started - record.last_success_at < job.interval / 2
            ):
                await chainstate.release_lease(session, lease, self.owner)
                return False
        total = 0
        try:
            for _ in range(MAX_BATCHES):
                async with transaction(self.sessionmaker) as session:
                    now = self.clock.now()
                    if not await chainstate.hold_lease(
                        session, lease, self.owner, self.lease_ttl, now=now
                    ):
                        log.warning("job_lease_lost", job=job.name, owner=self.owner)
                        return True
                    done = await job.batch(session, now)
                total += done
                if done == 0 or self._stopping:
                    break
        except Exception as exc:
            log.exception("job_failed", job=job.name)
            await self._finish(job, started, error=f"{type(exc).__name__}: {exc}")
            return True
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                await asyncio.shield(self._release(job))
            raise
        await self._finish(job, started, count=total)
        if total:
            log.info("job_done", job=job.name, count=total)
        return True

    async def _finish(
        self, job: Job, started: datetime, *, count: int = 0, error: str | None = None
    ) -> None:
        """Record the run's outcome and give the lease back (the next run may go anywhere)."""
        try:
            async with transaction(self.sessionmaker) as session:
                record = await session.get(JobRun, job.name)
                if record is None:
                    record = JobRun(name=job.name)
                    session.add(record)
                if error is None:
                    record.last_success_at = started
                    record.last_count = count
                else:
                    record.last_failure_at = started
                    record.last_error = error[:ERROR_CHARS]
                await chainstate.release_lease(session, chainstate.job_lease(job.name), self.owner)
        except Exception:
            log.warning("job_record_failed", job=job.name)

    async def _release(self, job: Job) -> None:
        async with transaction(self.sessionmaker) as session:
            await chainstate.release_lease(session, chainstate.job_lease(job.name), self.owner)
