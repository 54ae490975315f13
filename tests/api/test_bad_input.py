"""Bad input on every POST/PUT: a 4xx that names the field, and nothing written."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness.factories import Api, Tenant, make_customer, make_member, make_product

MB_STRING = "x" * (1024 * 1024)
GOOD_USER = {
    "name": "N",
    "lastName": "L",
    "email": "valid@shop.example",
    "password": "12345678",
    "role": "user",
}
GOOD_CUSTOMER = {"name": "N", "lastName": "L", "email": "valid-c@shop.example"}
GOOD_PRODUCT = {"name": "P", "description": "D", "price": "1.00"}


def state(api: Api) -> tuple[Any, ...]:
    return (
        api.get("/product").json(),
        api.get("/customer/all", params={"limit": 100}).json(),
        api.get("/user/all").json(),
        api.get("/api-key").json(),
    )


@pytest.fixture
def world(api: Api, tenant: Tenant) -> dict[str, Any]:
    member, _ = make_member(api, "user")
    return {
        "product": make_product(api),
        "customer": make_customer(api),
        "member": member,
        "owner_id": tenant.owner_id,
    }


def cases(w: dict[str, Any]) -> list[tuple[str, str, Any, int, str | None]]:
    """(method, path, json body, expected status, expected param)."""
    pid, cuuid, uid, oid = (
        w["product"]["id"],
        w["customer"]["uuid"],
        w["member"]["id"],
        w["owner_id"],
    )
    product_cases = [
        ("POST", "/product", {"description": "D", "price": 1}, 422, "name"),
        ("POST", "/product", {"name": "P", "description": "D"}, 422, "price"),
        ("POST", "/product", {**GOOD_PRODUCT, "price": -0.01}, 422, "price"),
        ("POST", "/product", {**GOOD_PRODUCT, "price": "1e400"}, 422, "price"),
        ("POST", "/product", {**GOOD_PRODUCT, "price": 10**13}, 422, "price"),
        ("POST", "/product", {**GOOD_PRODUCT, "price": "0.0000000000000000001"}, 422, "price"),
        ("POST", "/product", {**GOOD_PRODUCT, "price": "ten"}, 422, "price"),
        ("POST", "/product", {**GOOD_PRODUCT, "price": True}, 422, "price"),
        ("POST", "/product", {**GOOD_PRODUCT, "price": [1]}, 422, "price"),
        ("POST", "/product", {**GOOD_PRODUCT, "name": 5}, 422, "name"),
        ("POST", "/product", {**GOOD_PRODUCT, "name": ""}, 422, "name"),
        ("POST", "/product", {**GOOD_PRODUCT, "name": MB_STRING}, 422, "name"),
        ("POST", "/product", {**GOOD_PRODUCT, "description": MB_STRING}, 422, "description"),
        ("POST", "/product", {**GOOD_PRODUCT, "reference": "has spaces/slash"}, 422, "reference"),
        ("POST", "/product", [GOOD_PRODUCT], 422, None),
        ("PUT", f"/product/{pid}", {"price": -1}, 422, "price"),
        ("PUT", f"/product/{pid}", {"name": MB_STRING}, 422, "name"),
        ("PUT", f"/product/{pid}", {"isActive": "maybe"}, 422, "isActive"),
        ("PUT", "/product/0", {"name": "x"}, 422, "product_id"),
        ("PUT", "/product/99999999999999999999999", {"name": "x"}, 422, "product_id"),
    ]
    user_cases = [
        ("POST", "/user", {k: v for k, v in GOOD_USER.items() if k != "email"}, 422, "email"),
        ("POST", "/user", {**GOOD_USER, "email": "owner@localhost"}, 422, "email"),
        ("POST", "/user", {**GOOD_USER, "email": "someone@shop.test"}, 422, "email"),
        ("POST", "/user", {**GOOD_USER, "email": "not-an-email"}, 422, "email"),
        ("POST", "/user", {**GOOD_USER, "password": "short"}, 422, "password"),
        ("POST", "/user", {**GOOD_USER, "role": "superuser"}, 422, "role"),
        ("POST", "/user", {**GOOD_USER, "organizationFeeBps": 1001}, 422, "organizationFeeBps"),
        ("POST", "/user", {**GOOD_USER, "organizationFeeBps": -1}, 422, "organizationFeeBps"),
        ("POST", "/user", {**GOOD_USER, "organizationFeeBps": "lots"}, 422, "organizationFeeBps"),
        ("POST", "/user", {**GOOD_USER, "name": MB_STRING}, 422, "name"),
        ("PUT", f"/user/{uid}", {"email": "bad@"}, 422, "email"),
        ("PUT", f"/user/{uid}", {"organizationFeeBps": 5000}, 422, "organizationFeeBps"),
        ("PUT", f"/user/{uid}", {"lastName": MB_STRING}, 422, "lastName"),
    ]
    key_cases = [
        ("POST", "/api-key", {"userId": oid}, 422, "name"),
        ("POST", "/api-key", {"name": "k"}, 422, "userId"),
        ("POST", "/api-key", {"name": "k", "userId": "me"}, 422, "userId"),
        ("POST", "/api-key", {"name": "k", "userId": -3}, 422, "userId"),
        ("POST", "/api-key", {"name": "k", "userId": oid, "test": "sometimes"}, 422, "test"),
        (
            "POST",
            "/api-key",
            {"name": "k", "userId": oid, "expiresAt": "tomorrow"},
            422,
            "expiresAt",
        ),
        (
            "POST",
            "/api-key",
            {"name": "k", "userId": oid, "expiresAt": "2001-01-01T00:00:00Z"},
            422,
            "expiresAt",
        ),
        ("POST", "/api-key", {"name": MB_STRING, "userId": oid}, 422, "name"),
    ]
    customer_cases = [
        ("POST", "/customer", {"name": "N", "lastName": "L"}, 422, "email"),
        ("POST", "/customer", {**GOOD_CUSTOMER, "email": "a@b"}, 422, "email"),
        ("POST", "/customer", {**GOOD_CUSTOMER, "walletAddress": "0x123"}, 422, "walletAddress"),
        (
            "POST",
            "/customer",
            {**GOOD_CUSTOMER, "walletAddress": "0x" + "g" * 40},
            422,
            "walletAddress",
        ),
        (
            "POST",
            "/customer",
            {**GOOD_CUSTOMER, "walletAddress": "0x52908400098527886e0F7030069857D2E4169EE7"},
            422,
            "walletAddress",
        ),
        ("POST", "/customer", {**GOOD_CUSTOMER, "telegramUserId": "@ada"}, 422, "telegramUserId"),
        ("POST", "/customer", {**GOOD_CUSTOMER, "telegramUserId": -5}, 422, "telegramUserId"),
        ("POST", "/customer", {**GOOD_CUSTOMER, "phoneNumber": "call me"}, 422, "phoneNumber"),
        ("POST", "/customer", {**GOOD_CUSTOMER, "address": MB_STRING}, 422, "address"),
        ("PUT", "/customer", {"name": "N"}, 422, "uuid"),
        ("PUT", "/customer", {"uuid": cuuid, "email": "nope"}, 422, "email"),
        ("PUT", "/customer", {"uuid": cuuid, "reference": "CHANGED"}, 422, "reference"),
        ("PUT", "/customer", {"uuid": cuuid, "walletAddress": "0xabc"}, 422, "walletAddress"),
        ("PUT", "/customer", {"uuid": cuuid, "name": MB_STRING}, 422, "name"),
    ]
    return product_cases + user_cases + key_cases + customer_cases


def test_every_bad_body_names_its_field_and_writes_nothing(api: Api, world: dict[str, Any]) -> None:
    before = state(api)
    for method, path, body, status, param in cases(world):
        response = api.request(method, path, json=body)
        assert response.status_code == status, (method, path, str(body)[:80], response.text[:300])
        payload = response.json()
        assert payload["param"] == param, (method, path, str(body)[:80], payload)
        assert isinstance(payload["error"], str)
        assert payload["error"]
        assert payload["code"]
    assert state(api) == before


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/product"),
        ("POST", "/user"),
        ("POST", "/api-key"),
        ("POST", "/customer"),
        ("PUT", "/customer"),
    ],
)
def test_malformed_json_and_wrong_content_type(api: Api, method: str, path: str) -> None:
    before = state(api)
    malformed = api.request(
        method, path, content=b'{"name": "x",', headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400
    assert malformed.json() == {
        "error": "Malformed JSON in request body",
        "code": "invalid_json",
        "param": "body",
    }

    nan = api.request(
        method, path, content=b'{"price": NaN}', headers={"Content-Type": "application/json"}
    )
    assert nan.status_code == 400

    wrong_type = api.request(
        method,
        path,
        content=b"name=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert wrong_type.status_code == 415
    assert wrong_type.json()["param"] == "Content-Type"

    empty = api.request(method, path, content=b"", headers={"Content-Type": "application/json"})
    assert empty.status_code == 422
    assert "body" in empty.json()["error"].lower()
    assert state(api) == before


def test_oversized_body_is_refused_before_parsing(api: Api) -> None:
    response = api.post("/product", json={**GOOD_PRODUCT, "description": "y" * (3 * 1024 * 1024)})
    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"


def test_bad_query_and_path_parameters_name_the_parameter(api: Api) -> None:
    for path, params, param in [
        ("/customer/all", {"limit": 0}, "limit"),
        ("/customer/all", {"limit": 101}, "limit"),
        ("/customer/all", {"limit": "many"}, "limit"),
        ("/customer/all", {"cursor": "not-a-cursor"}, "cursor"),
        ("/product/id/abc", None, "product_id"),
        ("/user/id/-1", None, "user_id"),
        ("/customer/email/not-an-email", None, "email"),
    ]:
        response = api.get(path, params=params)
        assert response.status_code == 422, (path, params, response.text)
        assert response.json()["param"] == param


def test_duplicates_conflict_with_409_naming_the_field(api: Api) -> None:
    make_product(api, reference="DUP")
    again = api.post("/product", json={**GOOD_PRODUCT, "reference": "DUP"})
    assert again.status_code == 409
    assert again.json()["param"] == "reference"
    customer = make_customer(api)
    clash = api.post("/customer", json={**GOOD_CUSTOMER, "email": customer["email"].upper()})
    assert clash.status_code == 409
    assert clash.json()["param"] == "email"
