"""CHAINPAY_CLOCK=database: a clock tests share across processes. One process moves the offset
in the database; another `chainpay` process follows and acts on it (no sleeping an hour)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from core.checkout import service as checkout_service
from core.checkout.context import CheckoutContext
from core.checkout.schemas import SessionCreate
from core.clock import DatabaseClock, set_offset
from core.db import create_engine, create_sessionmaker, transaction
from core.models import CheckoutSession, JobRun
from core.orgs.schemas import Principal, Role
from tests.harness.factories import TEST_CHAINS, TEST_SECRET_KEY, make_tenant, test_settings


def move_clock(url: str, offset: timedelta) -> None:
    async def run() -> None:
        engine = create_engine(url, pool=False)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                await set_offset(session, offset)
        finally:
            await engine.dispose()

    asyncio.run(run())


def wait_for(what: str, check: Callable[[], Any], timeout: float, process: Any = None) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            pytest.fail(f"exited with {process.returncode} while waiting for {what}")
        found = check()
        if found:
            return found
        time.sleep(0.05)
    pytest.fail(f"no {what} within {timeout} s")


def test_a_database_clock_follows_the_offset_another_connection_sets(fresh_url: str) -> None:
    async def run() -> None:
        engine = create_engine(fresh_url)
        stop = asyncio.Event()
        try:
            clock = DatabaseClock(create_sessionmaker(engine), refresh_seconds=0.05)
            await clock.refresh()
            assert clock.offset == timedelta(0)  # no row: the machine's time
            assert abs(clock.now() - datetime.now(UTC)) < timedelta(seconds=1)
            refreshing = asyncio.create_task(clock.run(stop))
            await asyncio.to_thread(move_clock, fresh_url, timedelta(hours=2))
            for _ in range(100):
                if clock.offset:
                    break
                await asyncio.sleep(0.05)
            assert clock.offset == timedelta(hours=2)
            assert abs(clock.now() - (datetime.now(UTC) + timedelta(hours=2))) < timedelta(
                seconds=1
            )
            stop.set()
            await refreshing
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_a_worker_expires_a_session_when_another_process_moves_the_clock(
    fresh_url: str, tmp_path: Path
) -> None:
    tenant = make_tenant(fresh_url)
    settings = test_settings(fresh_url)
    principal = Principal(
        api_key_id=0,
        organization_id=tenant.organization_id,
        user_id=tenant.owner_id,
        role=Role.OWNER,
        test=False,
    )

    async def create() -> int:
        engine = create_engine(fresh_url, pool=False)
        try:
            async with transaction(create_sessionmaker(engine)) as db:
                checkout = await checkout_service.create_session(
                    db,
                    principal,
                    CheckoutContext.from_settings(settings),
                    SessionCreate(product_name="Clock", description="d", price=Decimal("2")),
                )
                return checkout.id
        finally:
            await engine.dispose()

    def scalar(query: Any) -> Any:
        async def run() -> Any:
            engine = create_engine(fresh_url, pool=False)
            try:
                async with create_sessionmaker(engine)() as db:
                    return await db.scalar(query)
            finally:
                await engine.dispose()

        return asyncio.run(run())

    session_id = asyncio.run(create())
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("CHAINPAY_")},
        "CHAINPAY_DATABASE_URL": fresh_url,
        "CHAINPAY_CLOCK": "database",
        "CHAINPAY_JOB_CHECKOUT_EXPIRE_SECONDS": "0.2",
        "CHAINPAY_CHAINS": json.dumps(
            [c.model_dump(mode="json", exclude_none=True) for c in TEST_CHAINS]
        ),
        "CHAINPAY_SECRET_KEY": TEST_SECRET_KEY,
        "CHAINPAY_LOG_LEVEL": "warning",
    }
    log = tmp_path / "worker.log"
    with log.open("wb") as output:
        worker = subprocess.Popen(
            [sys.executable, "-m", "chainpay", "worker"],
            cwd=tmp_path,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        status = select(CheckoutSession.status).where(CheckoutSession.id == session_id)
        expiry_ran = select(JobRun.last_success_at).where(JobRun.name == "checkout.expire")
        wait_for("a first expiry run", lambda: scalar(expiry_ran), 30, worker)
        assert scalar(status) == "created"

        move_clock(fresh_url, timedelta(minutes=61))  # past the session's 60 minutes
        wait_for("the session expired", lambda: scalar(status) == "expired", 15, worker)

        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=20) == 0
    except BaseException:
        print(f"--- chainpay worker said:\n{log.read_text(errors='replace')}")
        raise
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
