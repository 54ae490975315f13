"""Webhook endpoints: register, list, change, delete, and rotate an endpoint's secret."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import WebhookEndpoint
from core.models.base import utcnow
from core.orgs.schemas import Principal
from core.webhooks import outbox
from core.webhooks.crypto import SecretBox, new_secret
from core.webhooks.exceptions import EndpointNotFound, require_admin
from core.webhooks.schemas import ALL_TYPES, EndpointCreate, EndpointUpdate
from core.webhooks.secrets import rotate
from core.webhooks.ssrf import Resolve, check_url, system_resolve


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
    require_admin(principal)
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
    require_admin(principal)
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
    require_admin(principal)
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
    require_admin(principal)
    endpoint = await get_endpoint(session, principal, uuid)
    await session.delete(endpoint)
    await session.flush()
    outbox.forget_endpoints(session)


async def rotate_endpoint_secret(
    session: AsyncSession,
    principal: Principal,
    uuid: str,
    box: SecretBox,
    *,
    overlap: timedelta,
    now: datetime,
) -> tuple[WebhookEndpoint, str]:
    require_admin(principal)
    endpoint = await get_endpoint(session, principal, uuid)
    secret = rotate(endpoint, box, overlap, now)
    endpoint.updated_at = now
    await session.flush()
    return endpoint, secret
