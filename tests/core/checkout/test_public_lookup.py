"""The payer's way to a session, without an API key: by the uuid of its link or its bot token."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from core.checkout import service as checkout_service
from core.checkout.exceptions import SessionNotFound
from core.db import create_engine, create_sessionmaker
from core.models import CheckoutSession
from tests.harness.factories import Api


def test_a_payer_finds_a_session_by_its_uuid_or_bot_token_and_nothing_else(
    sandbox: Api, database_url: str
) -> None:
    created = sandbox.post(
        "/transaction/session-checkout",
        json={"productName": "Course", "description": "Video", "price": "3"},
    )
    assert created.status_code == 200, created.text
    uuid = created.json()["uuid"]

    async def run() -> None:
        engine = create_engine(database_url, pool=False)
        try:
            async with create_sessionmaker(engine)() as session:
                by_uuid = await checkout_service.public_session(session, uuid=uuid)
                assert by_uuid.uuid == uuid
                token = await session.scalar(
                    select(CheckoutSession.bot_token).where(CheckoutSession.uuid == uuid)
                )
                assert token is not None
                assert (await checkout_service.by_bot_token(session, token)).id == by_uuid.id
                with pytest.raises(SessionNotFound) as unknown:
                    await checkout_service.by_bot_token(session, token + "x")
                assert unknown.value.param == "token"
                with pytest.raises(SessionNotFound):
                    await checkout_service.public_session(session, uuid="no-such-uuid")
        finally:
            await engine.dispose()

    asyncio.run(run())
