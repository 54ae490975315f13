"""API conventions: idempotency, pagination, exact prices, request ids, rate limits, auth forms,
key expiry, health and version, and the SDK's trailing slashes."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import httpx

from core.config import Settings
from tests.harness.factories import Api, Tenant, make_customer, make_tenant, unique_email
from tests.harness.server import live_server


def test_idempotency_key_replays_the_first_answer(api: Api) -> None:
    body = {"name": "Once", "description": "d", "price": "5"}
    first = api.post("/product", json=body, headers={"Idempotency-Key": "create-once-1"})
    again = api.post("/product", json=body, headers={"Idempotency-Key": "create-once-1"})
    assert first.status_code == again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    assert [p["id"] for p in api.get("/product").json()] == [first.json()["id"]]


def test_idempotency_key_with_a_different_body_is_refused(api: Api) -> None:
    api.post(
        "/product",
        json={"name": "A", "description": "d", "price": 1},
        headers={"Idempotency-Key": "k-2"},
    )
    clash = api.post(
        "/product",
        json={"name": "B", "description": "d", "price": 1},
        headers={"Idempotency-Key": "k-2"},
    )
    assert clash.status_code == 422
    assert clash.json()["code"] == "idempotency_key_reused"
    assert clash.json()["param"] == "Idempotency-Key"
    assert [p["name"] for p in api.get("/product").json()] == ["A"]


def test_idempotency_keys_are_scoped_to_the_api_key(
    base_url: str, api: Api, tenant_factory: object
) -> None:
    other = Api(base_url, make_tenant_key(tenant_factory))
    body = {"name": "Shared key", "description": "d", "price": 1}
    mine = api.post("/product", json=body, headers={"Idempotency-Key": "shared"})
    theirs = other.post("/product", json=body, headers={"Idempotency-Key": "shared"})
    assert mine.status_code == theirs.status_code == 200
    assert "Idempotent-Replayed" not in theirs.headers
    assert len(other.get("/product").json()) == 1


def make_tenant_key(factory: object) -> str:
    assert callable(factory)
    tenant = factory()
    assert isinstance(tenant, Tenant)
    return tenant.key


def test_failed_requests_are_replayed_too_but_not_auth_failures(api: Api, base_url: str) -> None:
    bad = {"name": "", "description": "d", "price": 1}
    first = api.post("/product", json=bad, headers={"Idempotency-Key": "bad-1"})
    assert first.status_code == 422
    assert (
        api.post("/product", json=bad, headers={"Idempotency-Key": "bad-1"}).headers.get(
            "Idempotent-Replayed"
        )
        == "true"
    )
    anonymous = Api(base_url, "cp_live_wrong")
    assert anonymous.post("/product", json=bad, headers={"Idempotency-Key": "x"}).status_code == 401


def test_walking_250_customers_returns_each_exactly_once(api: Api) -> None:
    made = [make_customer(api, lastName=str(i))["uuid"] for i in range(250)]
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, str | int] = {"limit": 40}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/customer/all", params=params).json()
        seen += [c["uuid"] for c in page["items"]]
        pages += 1
        cursor = page["nextCursor"]
        if cursor is None:
            break
    assert seen == made
    assert pages == 7
    assert len(set(seen)) == 250
    default_page = api.get("/customer/all").json()
    assert len(default_page["items"]) == 50


def test_prices_stay_exact_through_create_and_read(api: Api) -> None:
    for sent in ["0.3", "0.30000000000000004", "1234567890.123456789", "0.000001", "100"]:
        created = api.post(
            "/product",
            content=f'{{"name":"p","description":"d","price":{sent}}}',
            headers={"Content-Type": "application/json"},
        )
        assert created.status_code == 200, created.text
        raw = api.get(f"/product/id/{created.json()['id']}").text
        assert f'"price":{sent},' in raw
    tenth = api.post("/product", json={"name": "a", "description": "d", "price": "0.1"}).json()[
        "id"
    ]
    fifth = api.post("/product", json={"name": "b", "description": "d", "price": "0.2"}).json()[
        "id"
    ]
    prices = {
        p["id"]: p["price"] for p in json.loads(api.get("/product").text, parse_float=Decimal)
    }
    assert prices[tenth] + prices[fifth] == Decimal("0.3")


def test_request_id_is_echoed_or_generated_and_version_is_sent(api: Api) -> None:
    echoed = api.get("/user", headers={"X-Request-ID": "merchant-trace-42"})
    assert echoed.headers["X-Request-ID"] == "merchant-trace-42"
    generated = api.get("/user", headers={"X-Request-ID": "bad id with spaces"})
    assert generated.headers["X-Request-ID"] != "bad id with spaces"
    assert len(generated.headers["X-Request-ID"]) == 32
    assert echoed.headers["X-API-Version"]
    missing = api.get("/no-such-route")
    assert missing.status_code == 404
    assert missing.headers["X-Request-ID"]
    assert missing.json()["code"] == "not_found"


def test_key_is_accepted_as_basic_username(base_url: str, tenant: Tenant) -> None:
    response = httpx.get(f"{base_url}/v1/user", auth=(tenant.key, ""))
    assert response.status_code == 200
    assert response.json()["id"] == tenant.owner_id
    assert httpx.get(f"{base_url}/v1/user", auth=("cp_live_nope", "")).status_code == 401
    missing = httpx.get(f"{base_url}/v1/user")
    assert missing.status_code == 401
    assert missing.json()["code"] == "missing_api_key"


def test_expired_and_revoked_keys_get_401(api: Api, tenant: Tenant, base_url: str) -> None:
    soon = (datetime.now(UTC) + timedelta(seconds=2)).isoformat()
    created = api.post(
        "/api-key", json={"name": "short", "userId": tenant.owner_id, "expiresAt": soon}
    )
    assert created.status_code == 200, created.text
    assert created.json()["data"]["expiresAt"] is not None
    short = Api(base_url, created.json()["key"])
    assert short.get("/user").status_code == 200
    time.sleep(2.2)
    expired = short.get("/user")
    assert expired.status_code == 401
    assert expired.json()["code"] == "invalid_api_key"

    later = api.post("/api-key", json={"name": "later", "userId": tenant.owner_id})
    revocable = Api(base_url, later.json()["key"])
    assert revocable.get("/user").status_code == 200
    assert api.delete(f"/api-key/{later.json()['data']['id']}").json()["message"]
    assert revocable.get("/user").status_code == 401


def test_key_listing_shows_preview_and_last_use_but_never_the_key(api: Api, tenant: Tenant) -> None:
    api.get("/user")
    listing = api.get("/api-key")
    assert listing.status_code == 200
    [key] = listing.json()
    assert key["preview"] == tenant.key[-8:]
    assert key["lastUsedAt"] is not None
    assert key["role"] == "owner"
    assert tenant.key not in listing.text
    assert "keyHash" not in key
    assert "key" not in key


def test_trailing_slash_forms_answer_without_redirect(api: Api) -> None:
    for path in [
        "/product",
        "/product/",
        "/user",
        "/user/",
        "/api-key",
        "/api-key/",
        "/customer/all",
        "/customer/all/",
    ]:
        response = api.get(path)
        assert response.status_code == 200, path


def test_health_and_version_need_no_key(base_url: str) -> None:
    health = httpx.get(f"{base_url}/health")
    assert health.status_code == 200
    assert health.json() == {"status": "ok", "database": "ok", "jobs": {}}  # no job run yet
    version = httpx.get(f"{base_url}/version").json()
    assert version["version"]
    assert version["apiVersion"]


def test_openapi_documents_every_route_with_a_description(base_url: str) -> None:
    schema = httpx.get(f"{base_url}/openapi.json").json()
    operations = [op for item in schema["paths"].values() for op in item.values()]
    assert len(operations) >= 24
    assert all(op.get("description") or op.get("summary") for op in operations)
    assert httpx.get(f"{base_url}/docs").status_code == 200


def test_rate_limit_answers_429_with_retry_after(database_url: str) -> None:
    tenant = make_tenant(database_url)
    with live_server(Settings(database_url=database_url, rate_limit_per_minute=3)) as base:
        limited = Api(base, tenant.key)
        answers = [limited.get("/user") for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert answers[0].headers["X-RateLimit-Limit"] == "3"
        assert [r.headers["X-RateLimit-Remaining"] for r in answers] == ["2", "1", "0", "0"]
        assert int(answers[3].headers["Retry-After"]) >= 1
        assert int(answers[3].headers["X-RateLimit-Reset"]) > time.time()
        assert answers[3].json()["code"] == "rate_limited"
        # Another key has its own budget.
        other = Api(base, make_tenant(database_url).key)
        assert other.get("/user").status_code == 200


def test_emails_are_case_insensitive_for_users(api: Api) -> None:
    email = unique_email("case")
    body = {"name": "A", "lastName": "B", "password": "12345678", "role": "user"}
    assert api.post("/user", json={**body, "email": email}).status_code == 200
    assert api.post("/user", json={**body, "email": email.upper()}).status_code == 409
