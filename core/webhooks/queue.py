"""The delivery queue the sender works: claim due deliveries, record what happened, release.

Retries follow RETRY_DELAYS (about three days after the first attempt); an endpoint whose
deliveries exhaust every retry often enough in a row, or that answers 410, is disabled.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import structlog
from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.events import service as events_service
from core.logs import log_on_commit
from core.models import Event, WebhookAttempt, WebhookDelivery, WebhookEndpoint
from core.webhooks import outbox
from core.webhooks.crypto import SecretBox
from core.webhooks.secrets import default_secrets, secrets_in_force

log = structlog.get_logger(__name__)

# After the first attempt: about three days of retries.
RETRY_DELAYS = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
    timedelta(hours=14),
    timedelta(hours=20),
    timedelta(hours=24),
)
MAX_ATTEMPTS = len(RETRY_DELAYS) + 1
MAX_RETRY_AFTER = timedelta(hours=24)
RESPONSE_EXCERPT_BYTES = 2048

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True)
class Claim:
    delivery_id: int
    attempt: int
    claimed_until: datetime
    event_id: str
    event_type: str
    body: str
    url: str
    endpoint_id: int | None
    secrets: list[str]

    @property
    def target(self) -> str:
        return f"endpoint:{self.endpoint_id}" if self.endpoint_id is not None else self.url


async def claim_due(
    session: AsyncSession,
    box: SecretBox,
    *,
    now: datetime,
    lease: timedelta,
    limit: int,
    room_for: Callable[[str], int],
    busy_endpoints: Sequence[int] = (),
    busy_urls: Sequence[str] = (),
) -> list[Claim]:
    """Take up to `limit` due deliveries for this sender until `now + lease`.

    PostgreSQL: FOR UPDATE SKIP LOCKED, so concurrent senders never take the same row. SQLite:
    the transaction holds the database's single write lock from BEGIN (IMMEDIATE), so claims
    are serialized. At most `room_for(target)` rows go to one target (busy targets are left out
    of the query), so one slow or dead receiver cannot fill the sender.
    """
    # Only the columns that decide what to take; bodies are read for the rows taken.
    query = (
        select(
            WebhookDelivery.id,
            WebhookDelivery.endpoint_id,
            WebhookDelivery.url,
            WebhookDelivery.organization_id,
            WebhookDelivery.attempts,
            WebhookDelivery.event_id,
        )
        .outerjoin(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == PENDING,
            WebhookDelivery.next_attempt_at <= now,
            or_(WebhookDelivery.claimed_until.is_(None), WebhookDelivery.claimed_until < now),
            or_(WebhookDelivery.endpoint_id.is_(None), WebhookEndpoint.active.is_(True)),
        )
        .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
        .limit(limit * 2 + 8)
        .with_for_update(skip_locked=True, of=WebhookDelivery)
    )
    if busy_endpoints:
        query = query.where(
            or_(
                WebhookDelivery.endpoint_id.is_(None),
                WebhookDelivery.endpoint_id.not_in(busy_endpoints),
            )
        )
    if busy_urls:
        query = query.where(
            or_(WebhookDelivery.url.is_(None), WebhookDelivery.url.not_in(busy_urls))
        )
    taken: dict[str, int] = {}
    picked: list[Any] = []  # rows of the query above
    for candidate in (await session.execute(query)).all():
        if len(picked) >= limit:
            break
        target = (
            f"endpoint:{candidate.endpoint_id}"
            if candidate.endpoint_id is not None
            else str(candidate.url)
        )
        if taken.get(target, 0) >= room_for(target):
            continue
        taken[target] = taken.get(target, 0) + 1
        picked.append(candidate)
    if not picked:
        return []
    until = now + lease
    await session.execute(
        update(WebhookDelivery)
        .where(WebhookDelivery.id.in_([row.id for row in picked]))
        .values(claimed_until=until)
        .execution_options(synchronize_session=False)
    )
    events = {
        row.id: row
        for row in await session.execute(
            select(Event.id, Event.uuid, Event.type, Event.payload).where(
                Event.id.in_({row.event_id for row in picked})
            )
        )
    }
    endpoint_ids = {row.endpoint_id for row in picked if row.endpoint_id is not None}
    endpoints = (
        {
            e.id: e
            for e in await session.execute(
                select(
                    WebhookEndpoint.id,
                    WebhookEndpoint.url,
                    WebhookEndpoint.secret_encrypted,
                    WebhookEndpoint.previous_secret_encrypted,
                    WebhookEndpoint.previous_secret_expires_at,
                ).where(WebhookEndpoint.id.in_(endpoint_ids))
            )
        }
        if endpoint_ids
        else {}
    )
    defaults: dict[int, list[str]] = {}
    claims: list[Claim] = []
    for row in picked:
        if row.endpoint_id is not None:
            endpoint = endpoints[row.endpoint_id]
            secrets = secrets_in_force(
                endpoint.secret_encrypted,
                endpoint.previous_secret_encrypted,
                endpoint.previous_secret_expires_at,
                box,
                now,
            )
            url = endpoint.url
        else:
            if row.organization_id not in defaults:
                defaults[row.organization_id] = await default_secrets(
                    session, row.organization_id, box, now
                )
            secrets = defaults[row.organization_id]
            url = str(row.url)
        event = events[row.event_id]
        claims.append(
            Claim(
                delivery_id=row.id,
                attempt=row.attempts + 1,
                claimed_until=until,
                event_id=event.uuid,
                event_type=event.type,
                body=event.payload,
                url=url,
                endpoint_id=row.endpoint_id,
                secrets=secrets,
            )
        )
    return claims


@dataclass(frozen=True)
class Outcome:
    started_at: datetime
    duration_ms: int
    status_code: int | None = None
    response: str | None = None
    error: str | None = None
    retry_after: timedelta | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def next_attempt_at(
    attempt: int, now: datetime, retry_after: timedelta | None, rng: random.Random
) -> datetime | None:
    """When attempt number `attempt + 1` is due, or None when retries are used up."""
    if attempt >= MAX_ATTEMPTS:
        return None
    delay = RETRY_DELAYS[attempt - 1]
    delay = delay * rng.uniform(0.9, 1.1)
    if retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return now + delay


async def record(
    session: AsyncSession,
    results: Sequence[tuple[Claim, Outcome]],
    *,
    now: datetime,
    disable_after_exhausted: int,
    rng: random.Random,
) -> None:
    """Log the attempts and move each delivery on: delivered, retry later, or failed.

    A delivery whose claim ran out meanwhile (another sender owns it now) keeps its state; its
    attempt is still logged. Successes, the common case, take three statements however many.
    """
    if not results:
        return
    await session.execute(
        insert(WebhookAttempt),
        [
            {
                "delivery_id": claim.delivery_id,
                "attempt": claim.attempt,
                "started_at": outcome.started_at,
                "duration_ms": outcome.duration_ms,
                "status_code": outcome.status_code,
                "response_excerpt": outcome.response,
                "error": outcome.error,
            }
            for claim, outcome in results
        ],
    )
    succeeded = [(c, o) for c, o in results if o.succeeded]
    if succeeded:
        # On the connection: a Core executemany (the ORM would insist on a by-key bulk update).
        connection = await session.connection()
        await connection.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == bindparam("b_id"),
                WebhookDelivery.claimed_until == bindparam("b_claimed_until"),
            )
            .values(
                status=DELIVERED,
                attempts=bindparam("b_attempt"),
                claimed_until=None,
                last_status_code=bindparam("b_status_code"),
                last_error=None,
                delivered_at=now,
            ),
            [
                {
                    "b_id": claim.delivery_id,
                    "b_claimed_until": claim.claimed_until,
                    "b_attempt": claim.attempt,
                    "b_status_code": outcome.status_code,
                }
                for claim, outcome in succeeded
            ],
        )
        endpoint_ids = {c.endpoint_id for c, _ in succeeded if c.endpoint_id is not None}
        if endpoint_ids:
            await session.execute(
                update(WebhookEndpoint)
                .where(
                    WebhookEndpoint.id.in_(endpoint_ids), WebhookEndpoint.exhausted_in_a_row != 0
                )
                .values(exhausted_in_a_row=0)
                .execution_options(synchronize_session=False)
            )
    failed = [(c, o) for c, o in results if not o.succeeded]
    if failed:
        await _record_failures(
            session, failed, now=now, disable_after_exhausted=disable_after_exhausted, rng=rng
        )


async def _record_failures(
    session: AsyncSession,
    results: Sequence[tuple[Claim, Outcome]],
    *,
    now: datetime,
    disable_after_exhausted: int,
    rng: random.Random,
) -> None:
    deliveries = {
        d.id: d
        for d in await session.scalars(
            select(WebhookDelivery).where(
                WebhookDelivery.id.in_([claim.delivery_id for claim, _ in results])
            )
        )
    }
    endpoint_ids = {c.endpoint_id for c, _ in results if c.endpoint_id is not None}
    endpoints = (
        {
            e.id: e
            for e in await session.scalars(
                select(WebhookEndpoint).where(WebhookEndpoint.id.in_(endpoint_ids))
            )
        }
        if endpoint_ids
        else {}
    )
    for claim, outcome in results:
        delivery = deliveries.get(claim.delivery_id)
        if delivery is None or delivery.claimed_until != claim.claimed_until:
            continue  # deleted, or our claim ran out and another sender owns it now
        endpoint = endpoints.get(claim.endpoint_id) if claim.endpoint_id is not None else None
        delivery.attempts = claim.attempt
        delivery.claimed_until = None
        delivery.last_status_code = outcome.status_code
        delivery.last_error = outcome.error
        if outcome.status_code == 410:
            delivery.status = FAILED
            _log_failure(session, delivery, claim, outcome, endpoint, next_attempt=None)
            if endpoint is not None:
                await _disable(session, endpoint, "410 Gone", now)
            continue
        due = next_attempt_at(claim.attempt, now, outcome.retry_after, rng)
        _log_failure(session, delivery, claim, outcome, endpoint, next_attempt=due)
        if due is not None:
            delivery.next_attempt_at = due
            continue
        delivery.status = FAILED
        if endpoint is not None and endpoint.active:
            endpoint.exhausted_in_a_row += 1
            if endpoint.exhausted_in_a_row >= disable_after_exhausted:
                await _disable(
                    session,
                    endpoint,
                    f"{endpoint.exhausted_in_a_row} events in a row failed every retry",
                    now,
                )
    await session.flush()


def _log_failure(
    session: AsyncSession,
    delivery: WebhookDelivery,
    claim: Claim,
    outcome: Outcome,
    endpoint: WebhookEndpoint | None,
    *,
    next_attempt: datetime | None,
) -> None:
    """`webhook_delivery_failed`, once the transaction recording the attempt commits.

    Never the secrets, the signature or the body; of a session's own webhookUrl only its host
    (its path or query may carry the merchant's token), and not the receiver's answer either.
    """
    host = urlsplit(claim.url).hostname or ""
    error = (outcome.error or "").replace(claim.url, host)[:300] or None
    log_on_commit(
        session,
        log,
        "warning",
        "webhook_delivery_failed",
        delivery_id=claim.delivery_id,
        organization_id=delivery.organization_id,
        event_id=claim.event_id,
        event_type=claim.event_type,
        endpoint_uuid=endpoint.uuid if endpoint is not None else None,
        target_host=None if endpoint is not None else host,
        attempt=claim.attempt,
        status_code=outcome.status_code,
        error=error,
        duration_ms=outcome.duration_ms,
        next_attempt_at=next_attempt.isoformat() if next_attempt is not None else None,
        gave_up=next_attempt is None,
    )


async def _disable(
    session: AsyncSession, endpoint: WebhookEndpoint, reason: str, now: datetime
) -> None:
    if not endpoint.active:
        return
    endpoint.active = False
    endpoint.disabled_reason = reason
    endpoint.disabled_at = now
    endpoint.updated_at = now
    await session.flush()
    outbox.forget_endpoints(session)
    log.warning(
        "webhook_endpoint_disabled",
        endpoint=endpoint.uuid,
        organization_id=endpoint.organization_id,
        reason=reason,
    )
    await events_service.emit(
        session,
        organization_id=endpoint.organization_id,
        test=endpoint.test,
        type="webhook.endpoint_disabled",
        data={"endpointUUID": endpoint.uuid, "url": endpoint.url, "reason": reason},
    )


async def release(session: AsyncSession, claims: Sequence[Claim]) -> None:
    """Give claims back unattempted (a sender stopping)."""
    for claim in claims:
        await session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == claim.delivery_id,
                WebhookDelivery.claimed_until == claim.claimed_until,
            )
            .values(claimed_until=None)
        )
