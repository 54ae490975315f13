"""Cancelling decides at the `now` its entry point passes (the request's clock), not the wall's."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from core.checkout import service as checkout_service
from core.checkout.exceptions import SessionNotOpen
from core.db import create_engine, create_sessionmaker, transaction
from core.orgs.schemas import Principal, Role
from tests.harness.factories import Api, Tenant


def test_cancel_is_refused_or_stamped_at_the_now_it_is_given(
    sandbox: Api, tenant: Tenant, database_url: str
) -> None:
    principal = Principal(
        api_key_id=0,
        organization_id=tenant.organization_id,
        user_id=tenant.owner_id,
        role=Role.OWNER,
        test=True,
    )
    uuid = sandbox.post(
        "/transaction/session-checkout",
        json={"productName": "Course", "description": "Video", "price": "3"},
    ).json()["uuid"]

    async def run() -> None:
        engine = create_engine(database_url, pool=False)
        sessions = create_sessionmaker(engine)
        try:
            async with transaction(sessions) as db:
                checkout = await checkout_service.get_session(db, principal, uuid)
                expires_at = checkout.expires_at
                with pytest.raises(SessionNotOpen, match="already expired"):
                    await checkout_service.cancel_session(
                        db, principal, uuid, now=expires_at + timedelta(seconds=1)
                    )
            stamped = expires_at - timedelta(seconds=5)
            async with transaction(sessions) as db:
                cancelled = await checkout_service.cancel_session(db, principal, uuid, now=stamped)
                assert cancelled.status == "cancelled"
                assert cancelled.cancelled_at == stamped
        finally:
            await engine.dispose()

    asyncio.run(run())
