"""Signing secrets: the organization's default one and each endpoint's, rotated with overlap.

Also QBitFlow's server-side verify, which accepts any secret in force.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.models import OrganizationWebhookSecret, WebhookEndpoint
from core.models.webhooks import SecretColumns
from core.orgs.schemas import Principal
from core.webhooks.crypto import SecretBox, new_secret
from core.webhooks.exceptions import require_admin
from core.webhooks.signing import verify_qbitflow


def rotate(row: SecretColumns, box: SecretBox, overlap: timedelta, now: datetime) -> str:
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
    session: AsyncSession,
    principal: Principal,
    box: SecretBox,
    *,
    overlap: timedelta,
    now: datetime,
) -> tuple[str, datetime | None]:
    require_admin(principal)
    row = await session.get(OrganizationWebhookSecret, principal.organization_id)
    if row is None:
        return await create_default_secret(session, principal.organization_id, box), None
    secret = rotate(row, box, overlap, now)
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
    now: datetime,
) -> bool:
    """QBitFlow's server-side check: any of the organization's live secrets signed this."""
    candidates = await verification_secrets(session, principal.organization_id, box, now)
    return verify_qbitflow(
        candidates,
        payload=payload,
        signature=signature,
        timestamp=timestamp,
        now=int(now.timestamp()),
    )


async def default_secrets(
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
