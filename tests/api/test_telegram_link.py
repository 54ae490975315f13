"""POST /v1/user/telegram-link: a one-time code for the bot's `/link`, in the calling key's mode."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from itertools import count

import httpx

from core.db import create_engine, create_sessionmaker, transaction
from core.orgs.schemas import Principal, Role
from core.telegram import links
from tests.harness.factories import Api, Tenant, make_member

_telegram_ids = count(8_000_000_001)


def redeem(database_url: str, code: str) -> Principal | None:
    """Redeem `code` as the bot would (a fresh Telegram user) and say who that account acts as."""
    telegram_user_id = next(_telegram_ids)

    async def go() -> Principal | None:
        engine = create_engine(database_url, pool=False)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                await links.redeem_link_code(
                    session, code, telegram_user_id=telegram_user_id, now=datetime.now(UTC)
                )
                return await links.merchant_principal(session, telegram_user_id)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def test_a_live_key_gets_a_code_that_links_a_live_merchant(
    api: Api, tenant: Tenant, database_url: str
) -> None:
    before = datetime.now(UTC)
    response = api.post("/user/telegram-link")

    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"code", "expiresAt"}
    assert len(body["code"]) == 10
    expires_at = datetime.fromisoformat(body["expiresAt"])
    assert before + timedelta(minutes=10) <= expires_at
    assert expires_at <= datetime.now(UTC) + timedelta(minutes=10)

    principal = redeem(database_url, body["code"])
    assert principal == Principal(0, tenant.organization_id, tenant.owner_id, Role.OWNER, False)


def test_a_test_key_gets_a_code_that_links_a_test_merchant(
    sandbox: Api, tenant: Tenant, database_url: str
) -> None:
    response = sandbox.post("/user/telegram-link")
    assert response.status_code == 201, response.text

    principal = redeem(database_url, response.json()["code"])
    assert principal is not None
    assert (principal.user_id, principal.test) == (tenant.owner_id, True)


def test_a_members_code_links_the_member_not_the_owner(
    base_url: str, api: Api, database_url: str
) -> None:
    member, key = make_member(api, "user")
    response = Api(base_url, key).post("/user/telegram-link")
    assert response.status_code == 201, response.text

    principal = redeem(database_url, response.json()["code"])
    assert principal is not None
    assert (principal.user_id, principal.role) == (member["id"], Role.USER)


def test_each_call_makes_a_new_code(api: Api) -> None:
    codes = {api.post("/user/telegram-link").json()["code"] for _ in range(3)}
    assert len(codes) == 3


def test_without_a_key_the_answer_is_401(base_url: str) -> None:
    response = httpx.post(f"{base_url}/v1/user/telegram-link")
    assert response.status_code == 401
    assert response.json()["code"] == "missing_api_key"


def test_the_endpoint_is_documented_with_its_answer(base_url: str) -> None:
    document = httpx.get(f"{base_url}/openapi.json").json()
    operation = document["paths"]["/v1/user/telegram-link"]["post"]
    assert operation["security"]
    ref = operation["responses"]["201"]["content"]["application/json"]["schema"]["$ref"]
    schema = document["components"]["schemas"][ref.rsplit("/", 1)[1]]
    assert set(schema["properties"]) == {"code", "expiresAt"}
    assert schema["properties"]["expiresAt"]["format"] == "date-time"
