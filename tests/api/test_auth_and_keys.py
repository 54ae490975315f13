"""Auth and keys: X-API-Key wins over a malformed Authorization header; the owner can't revoke
its way out of its own organization; webhook endpoints and their deliveries are admin objects."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest
from qbitflow import QBitFlow
from qbitflow.dto.api_key import CreateApiKeyDto
from qbitflow.exceptions import InvalidRequestError
from sqlalchemy import update

from core.db import create_engine, create_sessionmaker, transaction
from core.models import ApiKey
from core.models.base import utcnow
from core.orgs import service as orgs_service
from core.orgs.exceptions import LastOwnerKey
from core.orgs.schemas import Principal, Role
from tests.harness.databases import suite_backend
from tests.harness.factories import Api, Tenant, make_member


def basic(raw: bytes) -> str:
    return "Basic " + base64.b64encode(raw).decode()


MALFORMED_AUTHORIZATION = [
    "Basic !!!not-base64!!!",
    "Basic",
    basic(b"no colon and not a key"),
    basic(b"\xff\xfe:"),
    "Bearer something",
]


# --- X-API-Key and HTTP Basic ----------------------------------------------------------------


@pytest.mark.parametrize("authorization", MALFORMED_AUTHORIZATION)
def test_x_api_key_wins_over_a_malformed_authorization_header(
    base_url: str, tenant: Tenant, authorization: str
) -> None:
    response = httpx.get(
        f"{base_url}/v1/user",
        headers={"X-API-Key": tenant.key, "Authorization": authorization},
    )
    assert response.status_code == 200, response.text
    assert response.json()["id"] == tenant.owner_id


def test_x_api_key_wins_over_valid_basic_credentials_of_another_key(
    base_url: str, tenant_factory: Callable[..., Tenant]
) -> None:
    mine, other = tenant_factory(), tenant_factory()
    both = {"X-API-Key": mine.key, "Authorization": basic(other.key.encode() + b":")}
    assert httpx.get(f"{base_url}/v1/user", headers=both).json()["id"] == mine.owner_id
    wrong = {"X-API-Key": mine.key + "x", "Authorization": basic(other.key.encode() + b":")}
    refused = httpx.get(f"{base_url}/v1/user", headers=wrong)
    assert refused.status_code == 401
    assert refused.json()["code"] == "invalid_api_key"


def test_basic_is_read_only_without_x_api_key(base_url: str, tenant: Tenant) -> None:
    for credentials in (tenant.key.encode() + b":", tenant.key.encode()):
        response = httpx.get(f"{base_url}/v1/user", headers={"Authorization": basic(credentials)})
        assert response.status_code == 200, response.text
    malformed = httpx.get(
        f"{base_url}/v1/user", headers={"Authorization": "Basic !!!not-base64!!!"}
    )
    assert malformed.status_code == 401
    assert malformed.json()["param"] == "Authorization"
    assert "Basic" in malformed.json()["error"]


# --- the owner keeps a working key -----------------------------------------------------------


def key_id_of(api: Api) -> int:
    [key] = [k for k in api.get("/api-key").json() if k["preview"] == api_key_of(api)[-8:]]
    return int(key["id"])


def api_key_of(api: Api) -> str:
    return str(api.client.headers["X-API-Key"])


def new_owner_key(api: Api, tenant: Tenant, *, test: bool = False) -> tuple[int, str]:
    created = api.post(
        "/api-key", json={"name": "another", "userId": tenant.owner_id, "test": test}
    )
    assert created.status_code == 200, created.text
    return int(created.json()["data"]["id"]), str(created.json()["key"])


def test_owner_cannot_revoke_its_last_live_key_through_the_sdk(
    base_url: str, tenant: Tenant, sdk: Callable[[str], QBitFlow]
) -> None:
    client = sdk(tenant.key)
    [first] = client.api_keys.get_all()
    with pytest.raises(InvalidRequestError) as refused:
        client.api_keys.delete(first.id)
    assert refused.value.status_code == 409
    assert "chainpay key create" in refused.value.message
    assert client.users.get().id == tenant.owner_id  # still works

    second = client.api_keys.create(
        CreateApiKeyDto(name="rotation", user_id=tenant.owner_id, test=False)
    )
    assert client.api_keys.delete(first.id).message  # another live key exists now
    rotated = sdk(second.key)
    with pytest.raises(InvalidRequestError) as again:
        rotated.api_keys.delete(second.data.id)
    assert again.value.status_code == 409
    assert rotated.users.get().id == tenant.owner_id


def test_test_keys_cannot_stand_in_for_the_owners_last_live_key(
    base_url: str, api: Api, tenant: Tenant
) -> None:
    test_id, test_key = new_owner_key(api, tenant, test=True)
    owner_key_id = key_id_of(api)
    refused = api.delete(f"/api-key/{owner_key_id}")
    assert refused.status_code == 409
    body = refused.json()
    assert body["code"] == "last_owner_key"
    assert body["param"] == "id"
    assert "live" in body["error"]
    # The live key can make test keys again, so the last test key may go.
    assert api.delete(f"/api-key/{test_id}").status_code == 200
    assert Api(base_url, test_key).get("/user").status_code == 401


def test_devnet_organization_keeps_its_last_test_key(
    base_url: str, tenant_factory: Callable[..., Tenant]
) -> None:
    tenant = tenant_factory(test=True)
    sandbox = Api(base_url, tenant.key)
    first = key_id_of(sandbox)
    refused = sandbox.delete(f"/api-key/{first}")
    assert refused.status_code == 409
    assert "chainpay key create --test" in refused.json()["error"]
    second_id, second_key = new_owner_key(sandbox, tenant, test=True)
    assert sandbox.delete(f"/api-key/{first}").status_code == 200
    assert Api(base_url, second_key).delete(f"/api-key/{second_id}").status_code == 409


def test_admins_neither_mint_nor_revoke_the_owners_keys(
    base_url: str, api: Api, tenant: Tenant
) -> None:
    """An admin holding an owner key would be the owner: only the owner manages staff keys."""
    _, admin_key = make_member(api, "admin")
    admin = Api(base_url, admin_key)
    minted = admin.post("/api-key", json={"name": "mine now", "userId": tenant.owner_id})
    assert minted.status_code == 403
    assert minted.json()["code"] == "insufficient_role"
    assert admin.delete(f"/api-key/{key_id_of(api)}").status_code == 403
    other_admin, other_admin_key = make_member(api, "admin")
    assert (
        admin.post("/api-key", json={"name": "x", "userId": other_admin["id"]}).status_code == 403
    )
    assert admin.delete(f"/api-key/{key_id_of(Api(base_url, other_admin_key))}").status_code == 403
    assert api.get("/user").status_code == 200
    # Users' keys are the admins' to manage, and anyone's own keys are theirs, to the last one.
    user, user_key = make_member(api, "user")
    member = Api(base_url, user_key)
    assert admin.post("/api-key", json={"name": "y", "userId": user["id"]}).status_code == 200
    assert admin.delete(f"/api-key/{key_id_of(member)}").status_code == 200
    assert admin.delete(f"/api-key/{key_id_of(admin)}").status_code == 200
    # The owner manages admins' keys.
    assert api.delete(f"/api-key/{key_id_of(Api(base_url, other_admin_key))}").status_code == 200


def expire(database_url: str, key_id: int) -> None:
    async def run() -> None:
        engine = create_engine(database_url, pool=False)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                await session.execute(
                    update(ApiKey)
                    .where(ApiKey.id == key_id)
                    .values(expires_at=utcnow() - timedelta(minutes=1))
                )
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_an_expired_key_does_not_count_as_the_owners_other_key(
    database_url: str, api: Api, tenant: Tenant
) -> None:
    spare_id, _ = new_owner_key(api, tenant)
    expire(database_url, spare_id)
    assert api.delete(f"/api-key/{key_id_of(api)}").status_code == 409
    assert api.delete(f"/api-key/{spare_id}").status_code == 200  # the expired one may go


def test_two_concurrent_revocations_cannot_both_pass(
    database_url: str, api: Api, tenant: Tenant
) -> None:
    """Each sees the other key as the spare; the owner's row lock makes the second one wait."""
    if suite_backend() != "postgresql":
        pytest.skip("SQLite runs one writer at a time: the race needs PostgreSQL")
    first_id = key_id_of(api)
    second_id, _ = new_owner_key(api, tenant)
    owner = Principal(
        api_key_id=first_id,
        organization_id=tenant.organization_id,
        user_id=tenant.owner_id,
        role=Role.OWNER,
        test=False,
    )

    async def run() -> None:
        engine = create_engine(database_url, pool=False)
        sessions = create_sessionmaker(engine)
        try:
            async with sessions() as one, sessions() as two:
                await orgs_service.revoke_api_key(one, owner, first_id, now=utcnow())
                racing = asyncio.create_task(
                    orgs_service.revoke_api_key(two, owner, second_id, now=utcnow())
                )
                await asyncio.sleep(0.5)
                assert not racing.done(), "the second revocation did not wait for the first"
                await one.commit()
                with pytest.raises(LastOwnerKey):
                    await racing
                await two.rollback()
        finally:
            await engine.dispose()

    asyncio.run(run())


# --- webhook endpoints are admin objects -----------------------------------------------------


def test_user_keys_see_no_webhook_endpoint_nor_its_deliveries(
    base_url: str, sandbox: Api, api: Api
) -> None:
    created = sandbox.post("/webhooks/endpoints", json={"url": "http://127.0.0.1:9/hook"})
    assert created.status_code == 201, created.text
    uuid = created.json()["uuid"]
    path = f"/webhooks/endpoints/{uuid}"
    assert sandbox.get(path).status_code == 200
    assert sandbox.get(path + "/deliveries").status_code == 200
    assert uuid in {e["uuid"] for e in sandbox.get("/webhooks/endpoints").json()["items"]}

    member, _ = make_member(api, "user")
    user_test_key = api.post("/api-key", json={"name": "t", "userId": member["id"], "test": True})
    user = Api(base_url, user_test_key.json()["key"])
    listing = user.get("/webhooks/endpoints")
    assert listing.status_code == 403
    assert listing.json()["code"] == "admin_required"
    for hidden in (path, path + "/deliveries"):
        response = user.get(hidden)
        assert response.status_code == 404, (hidden, response.text)
        assert response.json()["code"] == "not_found"
    changes = [
        ("PATCH", path, {"active": False}),
        ("DELETE", path, None),
        ("POST", path + "/rotate-secret", None),
        ("POST", path + "/test", None),
        ("POST", "/webhooks/events/evt_unknown/redeliver", None),
        ("POST", "/webhooks/default-secret/rotate", None),
    ]
    for method, target, body in changes:
        response = user.request(method, target, json=body)
        assert response.status_code == 403, (method, target, response.text)
    assert user.get("/webhooks/event-types").status_code == 200
    assert sandbox.get(path).json()["active"] is True
