"""`telegram.retention`: finished outbox rows and expired codes go; rows still to send stay."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from core.db import create_engine, create_sessionmaker, transaction
from core.models import TelegramLinkCode, TelegramOutbox
from core.telegram import links, outbox, tasks
from tests.harness.factories import make_tenant

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=UTC)
RETENTION = timedelta(days=30)


def test_retention_deletes_old_finished_rows_and_expired_codes_only(database_url: str) -> None:
    tenant = make_tenant(database_url)
    old, recent = NOW - timedelta(days=40), NOW - timedelta(days=1)

    async def run() -> None:
        engine = create_engine(database_url)
        sessionmaker = create_sessionmaker(engine)
        prefix = f"retention-{tenant.organization_id}"
        try:
            async with transaction(sessionmaker) as db:
                for name, at in (("old-done", old), ("recent-done", recent), ("old-pending", old)):
                    await outbox.enqueue(db, key=f"{prefix}:{name}", kind=outbox.NOTIFY, now=at)
                for name, at in (("old-done", old), ("recent-done", recent)):
                    row = await db.scalar(
                        select(TelegramOutbox).where(
                            TelegramOutbox.dedupe_key == f"{prefix}:{name}"
                        )
                    )
                    assert row is not None
                    await outbox.finish(db, row.id, now=at)
                for at in (old, recent):
                    await links.create_link_code(
                        db,
                        organization_id=tenant.organization_id,
                        user_id=tenant.owner_id,
                        test=False,
                        now=at,
                    )
            async with transaction(sessionmaker) as db:
                deleted = await tasks.purge_old(db, NOW, retention=RETENTION)
            assert deleted >= 2
            async with sessionmaker() as db:
                left = set(
                    await db.scalars(
                        select(TelegramOutbox.dedupe_key).where(
                            TelegramOutbox.dedupe_key.like(f"{prefix}:%")
                        )
                    )
                )
                codes = await db.scalar(
                    select(func.count())
                    .select_from(TelegramLinkCode)
                    .where(TelegramLinkCode.organization_id == tenant.organization_id)
                )
            assert left == {f"{prefix}:recent-done", f"{prefix}:old-pending"}
            assert codes == 1  # the one that expired a day ago stays; the 40-day-old one went
        finally:
            await engine.dispose()

    asyncio.run(run())
