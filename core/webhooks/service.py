"""Webhook endpoints and secrets, the delivery log, and the claim/record steps of the sender."""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import structlog
from sqlalchemy import bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.errors import Forbidden, NotFound
from core.events import service as events_service
from core.events.wakeup import notify_on_commit
from core.logs import log_on_commit
from core.models import (
    Event,
    OrganizationWebhookSecret,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from core.models.base import utcnow
from core.models.webhooks import SecretColumns
from core.orgs.schemas import Principal
from core.webhooks import outbox
from core.webhooks.crypto import SecretBox, new_secret
from core.webhooks.schemas import ALL_TYPES, EndpointCreate, EndpointUpdate
from core.webhooks.signing import verify_qbitflow
from core.webhooks.ssrf import Resolve, check_url, system_resolve

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


class EndpointNotFound(NotFound):
    def __init__(self, param: str = "uuid") -> None:
        super().__init__("Webhook endpoint not found", param=param)


class EventNotFound(NotFound):
    def __init__(self) -> None:
        super().__init__("Event not found", param="eventId")


def _require_admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("Only owner and admin keys manage webhooks", code="admin_required")


# --- secrets ---------------------------------------------------------------------------------


def _rotate(row: SecretColumns, box: SecretBox, overlap: timedelta, now: datetime) -> str:
    secret = new_secret()
    if overlap > timedelta(0):
        row.previous_secret_encrypted = row.secret_encrypted
        row.previous_secret_expires_at = now + overlap
    else:
        row.previous_secret_encrypted = None
        row.previous_secret_expires_at = None
    row.secret_encrypted = box.encrypt(secret)
    row.secret_rotated_at = now
    return secret


def live_secrets(row: SecretColumns, box: SecretBox, now: datetime) -> list[str]:
    """The current secret, then the previous one while its overlap lasts."""
    return secrets_in_force(
        row.secret_encrypted,
        row.previous_secret_encrypted,
        row.previous_secret_expires_at,
        box,
        now,
    )


def secrets_in_force(
    current: str,
    previous: str | None,
    previous_expires_at: datetime | None,
    box: SecretBox,
    now: datetime,
) -> list[str]:
    secrets = [box.decrypt(current)]
    if previous and previous_expires_at is not None and previous_expires_at > now:
        secrets.append(box.decrypt(previous))
    return secrets


async def create_default_secret(session: AsyncSession, organization_id: int, box: SecretBox) -> str:
    """The organization's default secret (for sessions' own webhookUrls). Returned this once."""
    secret = new_secret()
    session.add(
        OrganizationWebhookSecret(
            organization_id=organization_id, secret_encrypted=box.encrypt(secret)
        )
    )
    await session.flush()
    return secret


async def rotate_default_secret(
    session: AsyncSession, principal: Principal, box: SecretBox, *, overlap: timedelta
) -> tuple[str, datetime | None]:
    _require_admin(principal)
    row = await session.get(OrganizationWebhookSecret, principal.organization_id)
    if row is None:
        return await create_default_secret(session, principal.organization_id, box), None
    secret = _rotate(row, box, overlap, utcnow())
    await session.flush()
    return secret, row.previous_secret_expires_at


async def verification_secrets(
    session: AsyncSession, organization_id: int, box: SecretBox, now: datetime
) -> list[str]:
    """Every secret that may have signed a delivery of this organization right now."""
    rows: list[SecretColumns] = list(
        await session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.organization_id == organization_id)
        )
    )
    default = await session.get(OrganizationWebhookSecret, organization_id)
    if default is not None:
        rows.insert(0, default)
    return [secret for row in rows for secret in live_secrets(row, box, now)]


async def verify(
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    *,
    payload: object,
    signature: str,
    timestamp: str,
) -> bool:
    """QBitFlow's server-side check: any of the organization's live secrets signed this."""
    now = utcnow()
    candidates = await verification_secrets(session, principal.organization_id, box, now)
    return verify_qbitflow(
        candidates,
        payload=payload,
        signature=signature,
        timestamp=timestamp,
        now=int(now.timestamp()),
    )


# --- endpoints -------------------------------------------------------------------------------


def _types_json(types: list[str] | None) -> str | None:
    if types is None or ALL_TYPES in types:
        return None
    return json.dumps(sorted(types))


async def create_endpoint(
    session: AsyncSession,
    principal: Principal,
    data: EndpointCreate,
    box: SecretBox,
    *,
    allow_private: bool,
    resolve: Resolve = system_resolve,
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; its secret is returned this once."""
    _require_admin(principal)
    url = await check_url(
        data.url, live=not principal.test, allow_private=allow_private, resolve=resolve
    )
    secret = new_secret()
    endpoint = WebhookEndpoint(
        organization_id=principal.organization_id,
        test=principal.test,
        url=url,
        description=data.description,
        event_types=_types_json(data.event_types),
        active=data.active,
        secret_encrypted=box.encrypt(secret),
    )
    session.add(endpoint)
    await session.flush()
    outbox.forget_endpoints(session)
    return endpoint, secret


async def list_endpoints(session: AsyncSession, principal: Principal) -> Sequence[WebhookEndpoint]:
    _require_admin(principal)
    return (
        await session.scalars(
            select(WebhookEndpoint)
            .where(
                WebhookEndpoint.organization_id == principal.organization_id,
                WebhookEndpoint.test == principal.test,
            )
            .order_by(WebhookEndpoint.id)
        )
    ).all()


async def get_endpoint(
    session: AsyncSession, principal: Principal, uuid: str, *, param: str = "uuid"
) -> WebhookEndpoint:
    """One endpoint of the key's mode; a `user` key sees none (endpoints are admin objects)."""
    if not principal.is_admin:
        raise EndpointNotFound(param)
    endpoint = await session.scalar(
        select(WebhookEndpoint).where(
            WebhookEndpoint.uuid == uuid,
            WebhookEndpoint.organization_id == principal.organization_id,
            WebhookEndpoint.test == principal.test,
        )
    )
    if endpoint is None:
        raise EndpointNotFound(param)
    return endpoint


async def update_endpoint(
    session: AsyncSession,
    principal: Principal,
    uuid: str,
    data: EndpointUpdate,
    *,
    allow_private: bool,
    resolve: Resolve = system_resolve,
) -> WebhookEndpoint:
    _require_admin(principal)
    endpoint = await get_endpoint(session, principal, uuid)
    if data.url is not None:
        endpoint.url = await check_url(
            data.url, live=not principal.test, allow_private=allow_private, resolve=resolve
        )
    if data.description is not None:
        endpoint.description = data.description
    if data.event_types is not None:
        endpoint.event_types = _types_json(data.event_types)
    if data.active is not None:
        endpoint.active = data.active
        if data.active:
            endpoint.disabled_reason = None
            endpoint.disabled_at = None
            endpoint.exhausted_in_a_row = 0
    endpoint.updated_at = utcnow()
    await session.flush()
    outbox.forget_endpoints(session)
    return endpoint


async def delete_endpoint(session: AsyncSession, principal: Principal, uuid: str) -> None:
    _require_admin(principal)
    endpoint = await get_endpoint(session, principal, uuid)
    await session.delete(endpoint)
    await session.flush()
    outbox.forget_endpoints(session)


async def rotate_endpoint_secret(
    session: AsyncSession, principal: Principal, uuid: str, box: SecretBox, *, overlap: timedelta
) -> tuple[WebhookEndpoint, str]:
    _require_admin(principal)
    endpoint = await get_endpoint(session, principal, uuid)
    secret = _rotate(endpoint, box, overlap, utcnow())
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint, secret


async def send_test(
    session: AsyncSession, principal: Principal, uuid: str
) -> tuple[Event, WebhookDelivery]:
    """A `webhook.test` event delivered to this endpoint only."""
    _require_admin(principal)
    endpoint = await get_endpoint(session, principal, uuid)
    event = await events_service.emit_now(
        session,
        organization_id=principal.organization_id,
        test=principal.test,
        type="webhook.test",
        data={"endpointUUID": endpoint.uuid, "message": "chainpay test delivery"},
    )
    delivery = WebhookDelivery(
        organization_id=principal.organization_id,
        event=event,
        endpoint_id=endpoint.id,
        next_attempt_at=event.created_at,
    )
    session.add(delivery)
    await session.flush()
    return event, delivery


# --- the delivery log ------------------------------------------------------------------------


@dataclass(frozen=True)
class DeliveryRecord:
    delivery: WebhookDelivery
    event: Event
    endpoint_uuid: str | None
    attempts: list[WebhookAttempt]


async def _records(
    session: AsyncSession, deliveries: Sequence[WebhookDelivery]
) -> list[DeliveryRecord]:
    if not deliveries:
        return []
    ids = [d.id for d in deliveries]
    events = {
        e.id: e
        for e in await session.scalars(
            select(Event).where(Event.id.in_({d.event_id for d in deliveries}))
        )
    }
    endpoint_ids = {d.endpoint_id for d in deliveries if d.endpoint_id is not None}
    endpoints: dict[int, str] = {}
    if endpoint_ids:
        rows = await session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.uuid).where(
                WebhookEndpoint.id.in_(endpoint_ids)
            )
        )
        endpoints = {endpoint_id: uuid for endpoint_id, uuid in rows}
    attempts: dict[int, list[WebhookAttempt]] = {}
    for attempt in await session.scalars(
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id.in_(ids))
        .order_by(WebhookAttempt.delivery_id, WebhookAttempt.attempt, WebhookAttempt.id)
    ):
        attempts.setdefault(attempt.delivery_id, []).append(attempt)
    return [
        DeliveryRecord(
            delivery=d,
            event=events[d.event_id],
            endpoint_uuid=endpoints.get(d.endpoint_id) if d.endpoint_id else None,
            attempts=attempts.get(d.id, []),
        )
        for d in deliveries
    ]


async def recent_deliveries(
    session: AsyncSession, principal: Principal, uuid: str, *, limit: int
) -> list[DeliveryRecord]:
    """An endpoint's latest deliveries, newest first, each with its attempts."""
    endpoint = await get_endpoint(session, principal, uuid)
    deliveries = (
        await session.scalars(
            select(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint.id)
            .order_by(WebhookDelivery.id.desc())
            .limit(limit)
        )
    ).all()
    return await _records(session, deliveries)


async def delivery_record(session: AsyncSession, delivery: WebhookDelivery) -> DeliveryRecord:
    return (await _records(session, [delivery]))[0]


async def redeliver(
    session: AsyncSession, principal: Principal, event_id: str, endpoint_uuid: str | None
) -> list[DeliveryRecord]:
    """Send an event again now: its deliveries (or the one to `endpoint_uuid`) restart."""
    _require_admin(principal)
    event = await session.scalar(
        select(Event).where(
            Event.uuid == event_id,
            Event.organization_id == principal.organization_id,
            Event.test == principal.test,
        )
    )
    if event is None:
        raise EventNotFound()
    now = utcnow()
    query = select(WebhookDelivery).where(WebhookDelivery.event_id == event.id)
    endpoint = None
    if endpoint_uuid is not None:
        endpoint = await get_endpoint(session, principal, endpoint_uuid, param="endpointUUID")
        query = query.where(WebhookDelivery.endpoint_id == endpoint.id)
    deliveries = list((await session.scalars(query.order_by(WebhookDelivery.id))).all())
    if endpoint is not None and not deliveries:
        delivery = WebhookDelivery(
            organization_id=principal.organization_id,
            event_id=event.id,
            endpoint_id=endpoint.id,
            next_attempt_at=now,
        )
        session.add(delivery)
        deliveries.append(delivery)
    for delivery in deliveries:
        delivery.status = PENDING
        delivery.next_attempt_at = now
        delivery.claimed_until = None
    await session.flush()
    notify_on_commit(session)  # this process's sender posts them at once
    return await _records(session, deliveries)


# --- the sender's two steps: claim due deliveries, record what happened ----------------------


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
                defaults[row.organization_id] = await _default_secrets(
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


async def _default_secrets(
    session: AsyncSession, organization_id: int, box: SecretBox, now: datetime
) -> list[str]:
    row = await session.get(OrganizationWebhookSecret, organization_id)
    if row is None:
        # An organization made before webhooks existed: its secret is created now; the
        # merchant reads it by rotating (`POST /v1/webhooks/default-secret/rotate`).
        await create_default_secret(session, organization_id, box)
        row = await session.get(OrganizationWebhookSecret, organization_id)
        assert row is not None
    return live_secrets(row, box, now)


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
