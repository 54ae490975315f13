"""Tenancy: another organization's objects answer 404 on every route; roles inside an org;
test-mode objects are invisible to live keys and back."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.harness.factories import Api, Tenant, make_customer, make_member, make_product


@pytest.fixture
def org_a(base_url: str, tenant_factory: Callable[..., Tenant]) -> dict[str, Any]:
    owner = Api(base_url, tenant_factory().key)
    member, member_key = make_member(owner, "user")
    product = make_product(owner, reference="A-REF")
    customer = make_customer(owner, reference="A-CUST")
    member_api = Api(base_url, member_key)
    key_id = member_api.get("/api-key").json()[0]["id"]
    return {
        "owner": owner,
        "member": member,
        "product": product,
        "customer": customer,
        "key_id": key_id,
    }


def snapshot(a: dict[str, Any]) -> tuple[Any, ...]:
    owner: Api = a["owner"]
    return (
        owner.get(f"/product/id/{a['product']['id']}").json(),
        owner.get(f"/customer/uuid/{a['customer']['uuid']}").json(),
        owner.get(f"/user/id/{a['member']['id']}").json(),
        [k["id"] for k in owner.get(f"/api-key/user/{a['member']['id']}").json()],
    )


def test_every_route_answers_404_for_another_organizations_objects(
    org_a: dict[str, Any], base_url: str, tenant_factory: Callable[..., Tenant]
) -> None:
    before = snapshot(org_a)
    intruder = Api(base_url, tenant_factory().key)
    product_id, customer = org_a["product"]["id"], org_a["customer"]
    member_id, key_id = org_a["member"]["id"], org_a["key_id"]
    attempts = [
        ("GET", f"/product/id/{product_id}", None),
        ("GET", "/product/reference/A-REF", None),
        ("PUT", f"/product/{product_id}", {"name": "stolen"}),
        ("DELETE", f"/product/{product_id}", None),
        ("GET", f"/customer/uuid/{customer['uuid']}", None),
        ("GET", f"/customer/email/{customer['email']}", None),
        ("PUT", "/customer", {"uuid": customer["uuid"], "name": "stolen"}),
        ("DELETE", f"/customer/uuid/{customer['uuid']}", None),
        ("GET", f"/user/id/{member_id}", None),
        ("PUT", f"/user/{member_id}", {"name": "stolen"}),
        ("DELETE", f"/user/{member_id}", None),
        ("GET", f"/api-key/user/{member_id}", None),
        ("DELETE", f"/api-key/{key_id}", None),
        ("POST", "/api-key", {"name": "stolen", "userId": member_id, "test": False}),
    ]
    for method, path, body in attempts:
        response = intruder.request(method, path, json=body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "not_found"

    assert intruder.get("/product").json() == []
    assert intruder.get("/customer/all").json()["items"] == []
    assert member_id not in {u["id"] for u in intruder.get("/user/all").json()}
    assert snapshot(org_a) == before


def test_plain_user_sees_and_changes_only_its_own(org_a: dict[str, Any], base_url: str) -> None:
    owner: Api = org_a["owner"]
    _, key = make_member(owner, "user")
    user = Api(base_url, key)
    me = user.get("/user").json()

    own = make_product(user, name="Mine")
    assert [p["id"] for p in user.get("/product").json()] == [own["id"]]
    assert user.get(f"/product/id/{org_a['product']['id']}").status_code == 404
    assert user.put(f"/product/{org_a['product']['id']}", json={"name": "x"}).status_code == 404
    assert user.get(f"/customer/uuid/{org_a['customer']['uuid']}").status_code == 404
    assert user.get("/customer/all").json()["items"] == []
    # The organization's admins see what the user made.
    assert own["id"] in {p["id"] for p in owner.get("/product").json()}

    assert user.get("/user/all").status_code == 403
    assert user.get(f"/user/id/{org_a['member']['id']}").status_code == 403
    assert user.get(f"/user/id/{me['id']}").status_code == 200
    assert (
        user.post(
            "/user",
            json={
                "name": "N",
                "lastName": "N",
                "email": "n@shop.example",
                "password": "12345678",
                "role": "user",
            },
        ).status_code
        == 403
    )
    assert user.delete(f"/user/{org_a['member']['id']}").status_code == 403
    assert user.put(f"/user/{org_a['member']['id']}", json={"name": "x"}).status_code == 403
    assert user.get(f"/api-key/user/{org_a['member']['id']}").status_code == 403
    assert (
        user.post(
            "/api-key", json={"name": "k", "userId": org_a["member"]["id"], "test": False}
        ).status_code
        == 403
    )
    assert user.delete(f"/api-key/{org_a['key_id']}").status_code == 404
    assert (
        user.post("/api-key", json={"name": "mine", "userId": me["id"], "test": False}).status_code
        == 200
    )


def test_admin_manages_users_but_not_admins_or_the_owner(
    base_url: str, tenant: Tenant, api: Api
) -> None:
    admin_user, admin_key = make_member(api, "admin")
    admin = Api(base_url, admin_key)
    member, _ = make_member(admin, "user")
    assert admin.get("/user/all").status_code == 200
    assert (
        admin.put(f"/user/{member['id']}", json={"organizationFeeBps": 300}).json()[
            "organizationFeeBps"
        ]
        == 300
    )
    assert (
        admin.post("/api-key", json={"name": "for member", "userId": member["id"]}).status_code
        == 200
    )

    other_admin = {
        "name": "A",
        "lastName": "B",
        "email": "adm2@shop.example",
        "password": "12345678",
        "role": "admin",
    }
    refused = admin.post("/user", json=other_admin)
    assert refused.status_code == 403
    assert admin.put(f"/user/{tenant.owner_id}", json={"name": "x"}).status_code == 403
    assert admin.delete(f"/user/{tenant.owner_id}").status_code in (403, 409)
    assert admin.delete(f"/user/{member['id']}").status_code == 200

    # Only the owner creates and removes admins; nobody creates a second owner.
    assert api.post("/user", json={**other_admin, "email": "adm3@shop.example"}).status_code == 200
    owner_again = api.post(
        "/user", json={**other_admin, "email": "own2@shop.example", "role": "owner"}
    )
    assert owner_again.status_code == 403
    assert owner_again.json()["param"] == "role"
    assert api.delete(f"/user/{admin_user['id']}").status_code == 200
    assert api.delete(f"/user/{tenant.owner_id}").status_code == 409
    # Deleting a user revokes its keys.
    assert admin.get("/user").status_code == 401


def test_test_mode_objects_are_invisible_to_live_keys(
    base_url: str, tenant: Tenant, api: Api
) -> None:
    created = api.post(
        "/api-key", json={"name": "sandbox", "userId": tenant.owner_id, "test": True}
    )
    sandbox = Api(base_url, created.json()["key"])
    test_product = make_product(sandbox, reference="SAME")
    live_product = make_product(api, reference="SAME")
    assert test_product["test"] is True
    assert live_product["test"] is False
    assert [p["id"] for p in sandbox.get("/product").json()] == [test_product["id"]]
    assert [p["id"] for p in api.get("/product").json()] == [live_product["id"]]
    assert api.get(f"/product/id/{test_product['id']}").status_code == 404
    assert sandbox.get(f"/product/id/{live_product['id']}").status_code == 404

    test_customer = make_customer(sandbox, email="same@shop.example")
    make_customer(api, email="same@shop.example")
    assert test_customer["test"] is True
    assert api.get(f"/customer/uuid/{test_customer['uuid']}").status_code == 404
    # A test key cannot mint live keys.
    escalate = sandbox.post(
        "/api-key", json={"name": "live", "userId": tenant.owner_id, "test": False}
    )
    assert escalate.status_code == 403
    assert escalate.json()["param"] == "test"


def test_payment_side_routes_answer_404_across_organizations(
    base_url: str, database_url: str, tenant_factory: Callable[..., Tenant]
) -> None:
    from tests.harness.factories import pay_session

    owner_a, owner_b = tenant_factory(), tenant_factory()
    a = Api(base_url, sandbox_key_of(base_url, owner_a))
    b = Api(base_url, sandbox_key_of(base_url, owner_b))
    product = make_product(a)
    one_time = a.post(
        "/transaction/session-checkout", json={"productName": "P", "description": "d", "price": "1"}
    ).json()
    monthly = a.post(
        "/transaction/session-checkout",
        json={
            "productId": product["id"],
            "options": {
                "subscriptionType": "subscription",
                "frequency": {"value": 1, "unit": "months"},
            },
        },
    ).json()
    tx = pay_session(database_url, one_time["depositAddress"], 1_000_000)
    pay_session(database_url, monthly["depositAddress"], 9_990_000)
    payment = a.get("/transaction/payments").json()["items"][0]
    subscription_uuid = a.get("/transaction/payments/combined").json()["items"][0][
        "subscriptionUUID"
    ]
    papaya_a = httpx_client(base_url, a)
    subscription_id = papaya_a.get("/subscriptions").json()["items"][0]["id"]

    attempts = [
        ("GET", f"/transaction/session-checkout/{one_time['uuid']}"),
        ("POST", f"/transaction/session-checkout/{one_time['uuid']}/cancel"),
        (
            "GET",
            f"/transaction/status?transactionUUID={one_time['uuid']}&transactionStatusType=payment",
        ),
        ("GET", f"/transaction/payment/{payment['uuid']}"),
        ("GET", f"/transaction/info/{tx}"),
        ("GET", f"/transaction/info/{payment['uuid']}"),
        ("GET", f"/transaction/subscription/{subscription_uuid}"),
        ("GET", f"/transaction/subscription/history/{subscription_uuid}"),
        ("POST", f"/transaction/subscription/{subscription_uuid}/cancel"),
        ("GET", f"/transaction/subscription/processing/force-cancel/{subscription_uuid}"),
    ]
    for method, path in attempts:
        response = b.request(method, path)
        assert response.status_code == 404, (method, path, response.text)
    papaya_b = httpx_client(base_url, b)
    assert papaya_b.get(f"/invoice/{one_time['invoiceId']}").status_code == 404
    assert papaya_b.get(f"/subscriptions/{subscription_id}").status_code == 404
    assert b.get("/transaction/payments").json()["items"] == []
    assert b.get("/transaction/payments/combined").json()["items"] == []
    # Nothing of A changed.
    assert (
        a.get(f"/transaction/subscription/{subscription_uuid}").json()["subscriptionStatus"]
        == "active"
    )
    assert (
        a.get(f"/transaction/session-checkout/{one_time['uuid']}").json()["status"] == "completed"
    )


def sandbox_key_of(base_url: str, tenant: Tenant) -> str:
    owner = Api(base_url, tenant.key)
    created = owner.post(
        "/api-key", json={"name": "sandbox", "userId": tenant.owner_id, "test": True}
    )
    return str(created.json()["key"])


sandbox_key_of.__test__ = False  # type: ignore[attr-defined]


def httpx_client(base_url: str, api: Api) -> httpx.Client:
    return httpx.Client(base_url=base_url + "/api", headers=dict(api.client.headers))
