"""The scheduler: named leases keep one run of a job at a time across workers, a worker back
from a long downtime catches up with one run, and GET /health shows each job's last run."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from chainpay.scheduler import Job, JobScheduler, default_jobs
from core.checkout import service as checkout_service
from core.checkout.context import CheckoutContext
from core.checkout.schemas import SessionCreate
from core.clock import ManualClock, SystemClock
from core.db import create_engine, create_sessionmaker, transaction
from core.models import CheckoutSession, JobRun, Lease
from core.orgs.schemas import Principal, Role
from tests.harness.factories import make_tenant, test_settings
from tests.harness.server import live_server

START = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


@dataclass
class Recorder:
    """A job body that notes each batch and how many ran at once (across every scheduler)."""

    seconds: float = 0.0
    active: int = 0
    peak: int = 0
    owners: list[str] = field(default_factory=list)
    spans: list[tuple[float, float]] = field(default_factory=list)

    def job(self, name: str, interval: timedelta, owner: str = "") -> Job:
        async def batch(session: AsyncSession, now: datetime) -> int:
            loop = asyncio.get_running_loop()
            began = loop.time()
            self.active += 1
            self.peak = max(self.peak, self.active)
            try:
                await asyncio.sleep(self.seconds)
            finally:
                self.active -= 1
            self.owners.append(owner)
            self.spans.append((began, loop.time()))
            return 0

        return Job(name, interval, batch)


def engines(url: str, count: int) -> list[AsyncEngine]:
    return [create_engine(url) for _ in range(count)]


async def dispose(items: list[AsyncEngine]) -> None:
    for engine in items:
        await engine.dispose()


async def job_run(maker: async_sessionmaker[AsyncSession], name: str) -> JobRun | None:
    async with maker() as db:
        return await db.get(JobRun, name)


def test_two_workers_never_run_one_job_at_once_and_each_due_run_happens_once(
    fresh_url: str,
) -> None:
    clock = ManualClock(START)
    recorder = Recorder(seconds=0.05)
    interval = timedelta(minutes=1)

    async def run() -> list[int]:
        pair = engines(fresh_url, 3)
        try:
            workers = [
                JobScheduler(create_sessionmaker(engine), [], clock, owner=f"worker-{i}")
                for i, engine in enumerate(pair[:2])
            ]
            jobs = [recorder.job("test.slow", interval, w.owner) for w in workers]
            ran = []
            for _ in range(25):
                results = await asyncio.gather(
                    *(w.run_once(j) for w, j in zip(workers, jobs, strict=True))
                )
                ran.append(sum(results))
                clock.advance(interval)
            maker = create_sessionmaker(pair[2])
            async with maker() as db:
                assert list(await db.scalars(select(Lease.name))) == []  # given back after each
            record = await job_run(maker, "test.slow")
            assert record is not None
            assert record.last_success_at == clock.now() - interval
            return ran
        finally:
            await dispose(pair)

    assert asyncio.run(run()) == [1] * 25
    assert recorder.peak == 1
    assert len(recorder.owners) == 25


def test_two_running_schedulers_take_turns_without_overlap(fresh_url: str) -> None:
    recorder = Recorder(seconds=0.1)
    interval = timedelta(seconds=0.3)

    async def run() -> None:
        pair = engines(fresh_url, 2)
        stop = asyncio.Event()
        try:
            schedulers = [
                JobScheduler(create_sessionmaker(engine), [], SystemClock(), owner=f"worker-{i}")
                for i, engine in enumerate(pair)
            ]
            for scheduler in schedulers:
                scheduler.jobs = [recorder.job("test.turns", interval, scheduler.owner)]
            tasks = [asyncio.create_task(s.run(stop)) for s in schedulers]
            await asyncio.sleep(2.5)
            stop.set()
            await asyncio.gather(*tasks)
            async with create_sessionmaker(pair[0])() as db:
                assert list(await db.scalars(select(Lease.name))) == []
        finally:
            await dispose(pair)

    asyncio.run(run())
    assert recorder.peak == 1
    spans = sorted(recorder.spans)
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))
    # About one run per interval in all (not one per worker per interval).
    assert 4 <= len(spans) <= 12, spans


def test_a_worker_back_after_a_long_downtime_runs_the_missed_job_once(fresh_url: str) -> None:
    clock = ManualClock(START)
    recorder = Recorder()
    hourly = timedelta(hours=1)

    async def run() -> None:
        pair = engines(fresh_url, 2)
        maker = create_sessionmaker(pair[0])
        try:
            async with transaction(maker) as db:
                db.add(JobRun(name="test.hourly", last_success_at=START - timedelta(days=10)))
            stop = asyncio.Event()
            first = JobScheduler(maker, [recorder.job("test.hourly", hourly)], clock, owner="a")
            running = asyncio.create_task(first.run(stop))
            await asyncio.sleep(1.0)
            # A second worker starting now finds the job done: it does not run it again.
            second = JobScheduler(
                create_sessionmaker(pair[1]), [recorder.job("test.hourly", hourly)], clock
            )
            also = asyncio.create_task(second.run(stop))
            await asyncio.sleep(1.0)
            stop.set()
            await asyncio.gather(running, also)
            record = await job_run(maker, "test.hourly")
            assert record is not None
            assert record.last_success_at == START
        finally:
            await dispose(pair)

    asyncio.run(run())
    assert len(recorder.spans) == 1


def test_moving_the_clock_expires_a_session_through_the_expiry_job_without_sleeping(
    fresh_url: str,
) -> None:
    tenant = make_tenant(fresh_url)
    settings = test_settings(fresh_url)
    clock = ManualClock(START)
    context = CheckoutContext.from_settings(settings, clock=clock)
    principal = Principal(
        api_key_id=0,
        organization_id=tenant.organization_id,
        user_id=tenant.owner_id,
        role=Role.OWNER,
        test=False,
    )
    [expire] = [job for job in default_jobs(settings, context) if job.name == "checkout.expire"]

    async def run() -> list[str]:
        engine = create_engine(fresh_url, pool=False)
        maker = create_sessionmaker(engine)
        try:
            async with transaction(maker) as db:
                checkout = await checkout_service.create_session(
                    db,
                    principal,
                    context,
                    SessionCreate(product_name="Clock", description="d", price=Decimal("2")),
                )
            scheduler = JobScheduler(maker, [], clock)
            statuses = []
            for minutes in (59, 2):
                clock.advance(minutes=minutes)
                assert await scheduler.run_once(expire)
                async with maker() as db:
                    statuses.append(
                        str(
                            await db.scalar(
                                select(CheckoutSession.status).where(
                                    CheckoutSession.id == checkout.id
                                )
                            )
                        )
                    )
            return statuses
        finally:
            await engine.dispose()

    assert asyncio.run(run()) == ["created", "expired"]


def test_health_shows_each_jobs_last_successful_run_and_last_failure(fresh_url: str) -> None:
    clock = ManualClock(START)

    async def broken(session: AsyncSession, now: datetime) -> int:
        raise RuntimeError("no luck")

    async def run() -> None:
        engine = create_engine(fresh_url, pool=False)
        try:
            scheduler = JobScheduler(create_sessionmaker(engine), [], clock)
            ok = Recorder().job("test.ok", timedelta(minutes=1))
            assert await scheduler.run_once(ok)
            clock.advance(minutes=5)
            assert await scheduler.run_once(Job("test.broken", timedelta(minutes=1), broken))
        finally:
            await engine.dispose()

    asyncio.run(run())
    with live_server(test_settings(fresh_url)) as base:
        health = httpx.get(f"{base}/health")
    assert health.status_code == 200
    assert health.json() == {
        "status": "ok",
        "database": "ok",
        "jobs": {
            "test.broken": {
                "lastSuccessAt": None,
                "lastCount": None,
                "lastFailureAt": "2026-01-10T09:05:00.000Z",
            },
            "test.ok": {
                "lastSuccessAt": "2026-01-10T09:00:00.000Z",
                "lastCount": 0,
                "lastFailureAt": None,
            },
        },
    }
