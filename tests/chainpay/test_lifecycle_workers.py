"""Two real `chainpay worker` processes on one PostgreSQL database run the
`subscriptions.lifecycle` job while the shared clock (CHAINPAY_CLOCK=database) is moved across
the subscriptions' reminder times, period end and grace end: every event and every reminder
row exactly once. A downtime across two reminder times: each missed reminder queued once."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import IO, Any

import pytest
from sqlalchemy import func, select

from core.catalog import service as catalog_service
from core.catalog.schemas import ProductCreate
from core.checkout import service as checkout_service
from core.checkout.context import CheckoutContext
from core.checkout.schemas import SessionCreate, SubscriptionOptionsIn
from core.clock import set_offset
from core.db import create_engine, create_sessionmaker, transaction
from core.models import Event, JobRun, Subscription, TelegramOutbox
from core.orgs.schemas import Principal, Role
from core.payments import ingest
from core.payments.schemas import Transfer
from tests.harness.databases import suite_backend
from tests.harness.factories import (
    DEVNET_A_USDT,
    TEST_CHAINS,
    TEST_SECRET_KEY,
    make_tenant,
    test_settings,
)

pytestmark = pytest.mark.slow

SUBSCRIBERS = 12
DAY = timedelta(days=1)
LIFECYCLE_EVENTS = ("subscription.renewal_due", "subscription.past_due", "subscription.expired")


@pytest.fixture(autouse=True)
def postgresql_only() -> None:
    if suite_backend() != "postgresql":
        pytest.skip("SQLite takes one process's writes at a time: two workers need PostgreSQL")


def run(coroutine_function: Callable[[], Any]) -> Any:
    return asyncio.run(coroutine_function())


class Database:
    """The test's side of the database: set up subscriptions, move the clock, count rows."""

    def __init__(self, url: str) -> None:
        self.url = url

    def query(self, statement: Any) -> list[Any]:
        async def go() -> list[Any]:
            engine = create_engine(self.url, pool=False)
            try:
                async with create_sessionmaker(engine)() as db:
                    return list((await db.execute(statement)).all())
            finally:
                await engine.dispose()

        return run(go)

    def move_clock(self, offset: timedelta) -> None:
        async def go() -> None:
            engine = create_engine(self.url, pool=False)
            try:
                async with transaction(create_sessionmaker(engine)) as db:
                    await set_offset(db, offset)
            finally:
                await engine.dispose()

        run(go)

    def subscribe(self, count: int) -> list[int]:
        """`count` 30-day subscriptions, each paid for one period now (real services), each
        with its subscriber's Telegram id; returns their ids."""
        tenant = make_tenant(self.url, test=True, name="Workers")
        settings = test_settings(self.url)
        principal = Principal(0, tenant.organization_id, tenant.owner_id, Role.OWNER, True)

        async def go() -> list[int]:
            engine = create_engine(self.url, pool=False)
            sessionmaker = create_sessionmaker(engine)
            context = CheckoutContext.from_settings(settings)
            options = SubscriptionOptionsIn.model_validate(
                {"subscriptionType": "subscription", "frequency": {"value": 30, "unit": "days"}}
            )
            addresses = []
            try:
                async with transaction(sessionmaker) as db:
                    product = await catalog_service.create_product(
                        db, principal, ProductCreate(name="Club", description="Club", price=Decimal("10"))
                    )  # fmt: skip
                    for n in range(count):
                        checkout = await checkout_service.create_session(
                            db, principal, context,
                            SessionCreate(product_id=product.id, options=options),
                        )  # fmt: skip
                        checkout.telegram_user_id = 5_500_000 + n
                        addresses.append(checkout.deposit_address)
                for address in addresses:
                    async with transaction(sessionmaker) as db:
                        await ingest.apply_transfer(
                            db, context,
                            Transfer(
                                chain_id=31337,
                                tx_hash="0x" + secrets.token_hex(32),
                                log_index=0,
                                block_number=100,
                                block_hash="0x" + secrets.token_hex(32),
                                block_timestamp=context.clock.now(),
                                from_address="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
                                to_address=address,
                                token_contract=DEVNET_A_USDT,
                                amount_base_units=10 * 10**6,
                                final=True,
                            ),
                        )  # fmt: skip
                async with sessionmaker() as db:
                    return list(
                        await db.scalars(
                            select(Subscription.id)
                            .where(Subscription.deposit_address.in_(addresses))
                            .order_by(Subscription.id)
                        )
                    )
            finally:
                await engine.dispose()

        ids: list[int] = run(go)
        assert len(ids) == count
        return ids

    def period_ends(self, ids: list[int]) -> list[datetime]:
        rows = self.query(select(Subscription.current_period_end).where(Subscription.id.in_(ids)))
        return [row[0] for row in rows]

    def statuses(self, ids: list[int]) -> dict[str, int]:
        rows = self.query(
            select(Subscription.status, func.count())
            .where(Subscription.id.in_(ids))
            .group_by(Subscription.status)
        )
        return {status: n for status, n in rows}

    def events(self, ids: list[int]) -> dict[tuple[int, str], int]:
        """(subscription, lifecycle event type) -> how many."""
        rows = self.query(
            select(Event.subscription_id, Event.type, func.count())
            .where(Event.subscription_id.in_(ids), Event.type.in_(LIFECYCLE_EVENTS))
            .group_by(Event.subscription_id, Event.type)
        )
        return {(sid, kind): n for sid, kind, n in rows}

    def reminders(self, ids: list[int]) -> dict[int, list[str]]:
        """Each subscription's reminder rows (dedupe keys), in the order they were queued."""
        rows = self.query(
            select(TelegramOutbox.subscription_id, TelegramOutbox.dedupe_key)
            .where(TelegramOutbox.subscription_id.in_(ids), TelegramOutbox.kind == "reminder")
            .order_by(TelegramOutbox.id)
        )
        found: dict[int, list[str]] = {sid: [] for sid in ids}
        for sid, key in rows:
            found[sid].append(key)
        return found

    def last_lifecycle_run(self) -> datetime | None:
        """When the last successful `subscriptions.lifecycle` run started (workers' clock)."""
        rows = self.query(
            select(JobRun.last_success_at).where(JobRun.name == "subscriptions.lifecycle")
        )
        return rows[0][0] if rows else None


class Workers:
    """`chainpay worker` processes on the test's database and the database clock."""

    def __init__(self, url: str, directory: Path) -> None:
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("CHAINPAY_")},
            "CHAINPAY_DATABASE_URL": url,
            "CHAINPAY_CLOCK": "database",
            "CHAINPAY_JOB_SUBSCRIPTIONS_SECONDS": "0.2",
            "CHAINPAY_CHAINS": json.dumps(
                [c.model_dump(mode="json", exclude_none=True) for c in TEST_CHAINS]
            ),
            "CHAINPAY_SECRET_KEY": TEST_SECRET_KEY,
            "CHAINPAY_LOG_LEVEL": "warning",
        }
        self.directory = directory
        self.running: dict[str, tuple[subprocess.Popen[bytes], IO[bytes]]] = {}
        self.logs: list[Path] = []

    def start(self, name: str) -> None:
        log = self.directory / f"{name}-{len(self.logs)}.log"
        self.logs.append(log)
        output = log.open("wb")
        process = subprocess.Popen(
            [sys.executable, "-m", "chainpay", "worker"],
            cwd=self.directory,
            env=self.env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
        self.running[name] = (process, output)

    def stop(self, name: str) -> None:
        process, output = self.running.pop(name)
        try:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=20) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait()
            output.close()

    def check_alive(self) -> None:
        for name, (process, _) in self.running.items():
            if process.poll() is not None:
                pytest.fail(f"worker {name} exited with {process.returncode}")

    def stop_all(self) -> None:
        for name in list(self.running):
            self.stop(name)

    def said(self) -> str:
        return "\n".join(f"--- {log.name}:\n{log.read_text(errors='replace')}" for log in self.logs)


@pytest.fixture
def workers(fresh_url: str, tmp_path: Path) -> Iterator[Workers]:
    running = Workers(fresh_url, tmp_path)
    try:
        yield running
    except BaseException:
        print(running.said())
        raise
    finally:
        for process, output in running.running.values():
            if process.poll() is None:
                process.kill()
                process.wait()
            output.close()


def wait_until(what: str, check: Callable[[], bool], workers: Workers, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        workers.check_alive()
        if check():
            return
        time.sleep(0.1)
    pytest.fail(f"no {what} within {timeout} s\n{workers.said()}")


class Stepper:
    """Moves the shared clock to a moment relative to the subscriptions' period end and waits
    until the workers' job has seen it, and then a few more runs (a duplicate would show)."""

    def __init__(self, database: Database, workers: Workers, ids: list[int]) -> None:
        self.database = database
        self.workers = workers
        self.ids = ids
        ends = database.period_ends(ids)
        self.first_end, self.last_end = min(ends), max(ends)

    def at(self, before_end: timedelta, until: Callable[[], bool], what: str) -> None:
        """The clock to `last end - before_end` (a minute on, so every subscription is due)."""
        target = self.last_end - before_end + timedelta(minutes=1)
        assert target < self.first_end - before_end + timedelta(hours=1)  # one step at a time
        self.database.move_clock(target - datetime.now(UTC))
        wait_until(what, until, self.workers)
        # Three more runs, each started after the move, by whichever worker got them.
        seen = target
        for _ in range(3):
            wait_until(
                "another lifecycle run",
                lambda after=seen: (self.database.last_lifecycle_run() or after) > after,  # type: ignore[misc]
                self.workers,
            )
            seen = self.database.last_lifecycle_run() or seen


def each(ids: list[int], count: int, kinds: tuple[str, ...]) -> dict[tuple[int, str], int]:
    return {(sid, kind): count for sid in ids for kind in kinds}


def test_two_workers_emit_each_event_and_queue_each_reminder_once(
    fresh_url: str, workers: Workers
) -> None:
    database = Database(fresh_url)
    ids = database.subscribe(SUBSCRIBERS)
    workers.start("a")
    workers.start("b")
    step = Stepper(database, workers, ids)

    def reminders_each(n: int) -> Callable[[], bool]:
        return lambda: all(len(keys) >= n for keys in database.reminders(ids).values())

    step.at(3 * DAY, reminders_each(1), "first reminders")
    assert database.events(ids) == each(ids, 1, ("subscription.renewal_due",))
    step.at(DAY, reminders_each(2), "second reminders")
    step.at(timedelta(hours=3), reminders_each(3), "third reminders")
    assert {sid: len(keys) for sid, keys in database.reminders(ids).items()} == dict.fromkeys(
        ids, 3
    )
    step.at(timedelta(0), lambda: database.statuses(ids) == {"past_due": len(ids)}, "past due")
    step.at(-3 * DAY, lambda: database.statuses(ids) == {"expired": len(ids)}, "expiry")

    assert database.events(ids) == each(ids, 1, LIFECYCLE_EVENTS)
    reminders = database.reminders(ids)
    assert {sid: len(keys) for sid, keys in reminders.items()} == dict.fromkeys(ids, 3)
    assert all(len(set(keys)) == 3 for keys in reminders.values())
    workers.stop_all()


def test_a_worker_back_from_a_downtime_queues_each_missed_reminder_once(
    fresh_url: str, workers: Workers
) -> None:
    database = Database(fresh_url)
    ids = database.subscribe(SUBSCRIBERS)
    workers.start("a")
    workers.start("b")
    step = Stepper(database, workers, ids)
    step.at(
        3 * DAY,
        lambda: all(len(keys) == 1 for keys in database.reminders(ids).values()),
        "first reminders",
    )

    # Both down while the clock passes the second and the third reminder times.
    workers.stop_all()
    database.move_clock(step.last_end - timedelta(hours=2) - datetime.now(UTC))
    time.sleep(0.5)
    assert {sid: len(keys) for sid, keys in database.reminders(ids).items()} == dict.fromkeys(
        ids, 1
    )

    workers.start("a")
    step.at(
        timedelta(hours=2),
        lambda: all(len(keys) >= 3 for keys in database.reminders(ids).values()),
        "the missed reminders",
    )
    workers.start("b")  # the other one back too: nothing more to do
    step.at(timedelta(hours=2), lambda: True, "runs by both")
    reminders = database.reminders(ids)
    assert {sid: len(keys) for sid, keys in reminders.items()} == dict.fromkeys(ids, 3)
    assert all(
        [key.rsplit(":", 1)[1] for key in keys] == ["0", "1", "2"] for keys in reminders.values()
    )
    assert database.events(ids) == each(ids, 1, ("subscription.renewal_due",))
    assert database.statuses(ids) == {"active": len(ids)}
    workers.stop_all()
