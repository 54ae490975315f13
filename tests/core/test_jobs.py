"""Periodic jobs: each does one bounded batch at the `now` it is given and says how much it did."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.checkout import service as checkout_service
from core.checkout import tasks as checkout_tasks
from core.checkout.context import CheckoutContext
from core.checkout.schemas import SessionCreate
from core.clock import ManualClock
from core.db import create_engine, create_sessionmaker, transaction
from core.idempotency import tasks as idempotency_tasks
from core.models import (
    CheckoutSession,
    Event,
    EventConsumer,
    IdempotencyRecord,
    WebhookAttempt,
    WebhookDelivery,
)
from core.orgs.schemas import Principal, Role
from core.webhooks import tasks as webhooks_tasks
from tests.harness.factories import Tenant, make_tenant, test_settings

# Far from the machine's clock: only a service that reads the injected clock gets it right.
START = datetime(2026, 1, 10, 9, 0, tzinfo=UTC)


def principal_of(tenant: Tenant) -> Principal:
    return Principal(
        api_key_id=0,
        organization_id=tenant.organization_id,
        user_id=tenant.owner_id,
        role=Role.OWNER,
        test=False,
    )


async def new_session(db: AsyncSession, context: CheckoutContext, principal: Principal) -> int:
    checkout = await checkout_service.create_session(
        db,
        principal,
        context,
        SessionCreate(product_name="Job", description="d", price=Decimal("3")),
    )
    return checkout.id


def test_expiry_job_expires_only_sessions_overdue_by_the_injected_clock(fresh_url: str) -> None:
    tenant = make_tenant(fresh_url)
    clock = ManualClock(START)
    context = CheckoutContext.from_settings(test_settings(fresh_url), clock=clock)

    async def run() -> None:
        engine = create_engine(fresh_url, pool=False)
        maker = create_sessionmaker(engine)
        try:
            async with transaction(maker) as db:
                early = [await new_session(db, context, principal_of(tenant)) for _ in range(2)]
            clock.advance(minutes=30)
            async with transaction(maker) as db:
                late = await new_session(db, context, principal_of(tenant))
            async with maker() as db:
                expires = await db.scalar(
                    select(CheckoutSession.expires_at).where(CheckoutSession.id == early[0])
                )
            assert expires == START + context.lifetime

            # One minute past the first two sessions' deadline, no sleeping.
            clock.advance(minutes=31)
            async with transaction(maker) as db:
                assert await checkout_tasks.expire(db, clock.now(), context=context) == 2
            async with transaction(maker) as db:
                assert await checkout_tasks.expire(db, clock.now(), context=context) == 0
            async with maker() as db:
                statuses = dict(
                    (await db.execute(select(CheckoutSession.id, CheckoutSession.status))).all()
                )
                expired_events = dict(
                    (
                        await db.execute(
                            select(Event.session_id, func.count())
                            .where(Event.type == "session.expired")
                            .group_by(Event.session_id)
                        )
                    ).all()
                )
                expired_at = await db.scalar(
                    select(CheckoutSession.updated_at).where(CheckoutSession.id == early[0])
                )
            assert statuses == {early[0]: "expired", early[1]: "expired", late: "created"}
            assert expired_events == {early[0]: 1, early[1]: 1}
            assert expired_at == clock.now()
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_expiry_job_does_a_bounded_batch_longest_overdue_first(fresh_url: str) -> None:
    tenant = make_tenant(fresh_url)
    clock = ManualClock(START)
    context = CheckoutContext.from_settings(test_settings(fresh_url), clock=clock)

    async def run() -> None:
        engine = create_engine(fresh_url, pool=False)
        maker = create_sessionmaker(engine)
        try:
            ids = []
            for _ in range(3):
                async with transaction(maker) as db:
                    ids.append(await new_session(db, context, principal_of(tenant)))
                clock.advance(minutes=1)
            clock.advance(hours=2)
            done = []
            for _ in range(3):
                async with transaction(maker) as db:
                    done.append(
                        await checkout_tasks.expire(db, clock.now(), context=context, limit=2)
                    )
            assert done == [2, 1, 0]
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_idempotency_purge_deletes_only_records_past_their_ttl_in_bounded_batches(
    fresh_url: str,
) -> None:
    now = START
    ttl = timedelta(hours=24)
    ages = {"a": 25, "b": 48, "c": 24 * 30, "fresh": 23, "young": 1}

    async def run() -> None:
        engine = create_engine(fresh_url, pool=False)
        maker = create_sessionmaker(engine)
        try:
            async with transaction(maker) as db:
                for key, hours in ages.items():
                    db.add(
                        IdempotencyRecord(
                            scope="s" * 64,
                            key=key,
                            fingerprint="f" * 64,
                            status_code=200,
                            body=b"{}",
                            created_at=now - timedelta(hours=hours),
                        )
                    )
            counts = []
            for _ in range(3):
                async with transaction(maker) as db:
                    counts.append(await idempotency_tasks.purge(db, now, ttl=ttl, limit=2))
            assert counts == [2, 1, 0]
            async with maker() as db:
                left = set(await db.scalars(select(IdempotencyRecord.key)))
            assert left == {"fresh", "young"}
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_retention_deletes_old_attempt_logs_and_old_finished_events_never_pending_ones(
    fresh_url: str,
) -> None:
    tenant = make_tenant(fresh_url)
    now = START
    old = now - timedelta(days=31)
    recent = now - timedelta(days=29)

    async def event(db: AsyncSession, name: str, at: datetime, *statuses: str) -> None:
        row = Event(
            organization_id=tenant.organization_id,
            type=name,
            payload="{}",
            created_at=at,
        )
        db.add(row)
        await db.flush()
        for number, status in enumerate(statuses):
            delivery = WebhookDelivery(
                organization_id=tenant.organization_id,
                event_id=row.id,
                url=f"https://example.com/{name}/{number}",
                status=status,
                attempts=1,
                next_attempt_at=at,
                created_at=at,
            )
            db.add(delivery)
            await db.flush()
            db.add(
                WebhookAttempt(
                    delivery_id=delivery.id,
                    attempt=1,
                    started_at=at,
                    duration_ms=5,
                    status_code=200 if status == "delivered" else 500,
                    response_excerpt="ok",
                )
            )
        await db.flush()

    async def run() -> None:
        engine = create_engine(fresh_url, pool=False)
        maker = create_sessionmaker(engine)
        try:
            async with transaction(maker) as db:
                await event(db, "old.delivered", old, "delivered", "delivered")
                await event(db, "old.failed", old, "failed", "delivered")
                await event(db, "old.none", old)
                await event(db, "old.pending", old, "delivered", "pending")
                await event(db, "recent.delivered", recent, "delivered")
                await event(db, "recent.pending", recent, "pending")
            counts = []
            for _ in range(3):
                async with transaction(maker) as db:
                    counts.append(
                        await webhooks_tasks.purge_old(
                            db, now, retention=timedelta(days=30), limit=2
                        )
                    )
            # Batch 1: the two oldest attempts, then the two oldest finished events with their
            # four deliveries and those deliveries' two other attempts. Batch 2: the pending
            # event's two old attempts, and the old event that had no delivery. Then nothing.
            assert counts == [2 + 2 + 4 + 2, 2 + 1, 0]
            async with maker() as db:
                events = set(await db.scalars(select(Event.type)))
                deliveries = (
                    await db.execute(
                        select(Event.type, WebhookDelivery.status)
                        .join(Event, Event.id == WebhookDelivery.event_id)
                        .order_by(Event.type, WebhookDelivery.status)
                    )
                ).all()
                attempts = set(
                    await db.scalars(
                        select(Event.type)
                        .join(WebhookDelivery, WebhookDelivery.event_id == Event.id)
                        .join(WebhookAttempt, WebhookAttempt.delivery_id == WebhookDelivery.id)
                    )
                )
            assert events == {"old.pending", "recent.delivered", "recent.pending"}
            # An event with a delivery still pending keeps every delivery (the redelivery view).
            assert [tuple(r) for r in deliveries] == [
                ("old.pending", "delivered"),
                ("old.pending", "pending"),
                ("recent.delivered", "delivered"),
                ("recent.pending", "pending"),
            ]
            # Attempt logs go by their own age, even those of a delivery still being retried.
            assert attempts == {"recent.delivered", "recent.pending"}
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_retention_keeps_old_events_an_event_consumer_has_not_read_yet(fresh_url: str) -> None:
    tenant = make_tenant(fresh_url)
    now = START
    old = now - timedelta(days=40)

    async def run() -> list[str]:
        engine = create_engine(fresh_url, pool=False)
        maker = create_sessionmaker(engine)
        try:
            async with transaction(maker) as db:
                rows = [
                    Event(
                        organization_id=tenant.organization_id, type=t, payload="{}", created_at=old
                    )
                    for t in ("read", "unread")
                ]
                db.add_all(rows)
                await db.flush()
                db.add(EventConsumer(name="bot", after_id=rows[0].id, holes="{}"))
            async with transaction(maker) as db:
                deleted = await webhooks_tasks.purge_old(db, now, retention=timedelta(days=30))
            assert deleted == 1
            async with maker() as db:
                return list(await db.scalars(select(Event.type)))
        finally:
            await engine.dispose()

    assert asyncio.run(run()) == ["unread"]
