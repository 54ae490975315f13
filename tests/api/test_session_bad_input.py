"""Bad session and invoice requests: a 4xx naming the field, and nothing written (no address
handed out, no product made)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx

from tests.harness.factories import Api, Tenant, make_product

ONE_TIME = {"productName": "P", "description": "D", "price": "5"}
MONTHLY = {"subscriptionType": "subscription", "frequency": {"value": 1, "unit": "months"}}


def written(api: Api) -> tuple[Any, ...]:
    return api.get("/wallet").json()["nextIndex"], api.get("/product").json()


def test_bad_sessions_name_their_field_and_write_nothing(
    api: Api, base_url: str, tenant_factory: Callable[..., Tenant]
) -> None:
    foreign = make_product(Api(base_url, tenant_factory().key))
    product = make_product(api)
    cases: list[tuple[dict[str, Any], int, str | None]] = [
        ({**ONE_TIME, "price": "0"}, 422, "price"),
        ({**ONE_TIME, "price": "-1"}, 422, "price"),
        ({**ONE_TIME, "price": "1e13"}, 422, "price"),
        ({"description": "D", "price": "5"}, 422, "productName"),
        ({"productName": "P", "price": "5"}, 422, "description"),
        ({"productName": "P", "description": "D"}, 422, "price"),
        ({"productId": 987654321}, 404, "productId"),
        ({"productId": foreign["id"]}, 404, "productId"),
        ({"productId": "one"}, 422, "productId"),
        ({**ONE_TIME, "customerUUID": "00000000-0000-4000-8000-000000000000"}, 404, "customerUUID"),
        ({**ONE_TIME, "successUrl": "not a url"}, 422, "successUrl"),
        ({**ONE_TIME, "cancelUrl": "ftp://shop.example/x"}, 422, "cancelUrl"),
        ({**ONE_TIME, "webhookUrl": "https://"}, 422, "webhookUrl"),
        ({**ONE_TIME, "successUrl": "https://" + "a" * 2100 + ".com"}, 422, "successUrl"),
        (
            {
                "productId": product["id"],
                "options": {**MONTHLY, "frequency": {"value": 23, "unit": "hours"}},
            },
            422,
            "options.frequency",
        ),
        (
            {
                "productId": product["id"],
                "options": {**MONTHLY, "frequency": {"value": 1, "unit": "fortnights"}},
            },
            422,
            "options.frequency.unit",
        ),
        (
            {
                "productId": product["id"],
                "options": {**MONTHLY, "frequency": {"value": 0, "unit": "days"}},
            },
            422,
            "options.frequency.value",
        ),
        (
            {
                "productId": product["id"],
                "options": {**MONTHLY, "trialPeriod": {"value": 13, "unit": "months"}},
            },
            422,
            "options.trialPeriod",
        ),
        (
            {"productId": product["id"], "options": {**MONTHLY, "minPeriods": 0}},
            422,
            "options.minPeriods",
        ),
        (
            # Pay-as-you-go starts without payment with free credits instead of a trial.
            {
                "productId": product["id"],
                "options": {
                    **MONTHLY,
                    "subscriptionType": "payAsYouGo",
                    "trialPeriod": {"value": 7, "unit": "days"},
                },
            },
            422,
            "options.trialPeriod",
        ),
        (
            {"productId": product["id"], "options": {**MONTHLY, "subscriptionType": "lifetime"}},
            422,
            "options.subscriptionType",
        ),
    ]
    before = written(api)
    for body, status, param in cases:
        response = api.post("/transaction/session-checkout", json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["param"] == param, (body, response.json())
    assert written(api) == before


def test_bad_invoices_name_their_field_and_write_nothing(
    api: Api, base_url: str, tenant: Tenant
) -> None:
    papaya = httpx.Client(base_url=base_url + "/api", headers={"X-API-Key": tenant.key})
    before = written(api)
    for body, param in [
        ({"rate": 0}, "rate"),
        ({"rate": -5}, "rate"),
        ({"rate": "abc"}, "rate"),
        ({}, "rate"),
        ({"rate": 5, "period": "PerFortnight"}, "period"),
        ({"rate": 5, "metadata": {"blob": "x" * 20_000}}, "metadata"),
        ({"rate": 5, "metadata": [1, 2]}, "metadata"),
        ({"rate": 5, "title": ""}, "title"),
    ]:
        response = papaya.post("/invoice", json=body)
        assert response.status_code == 422, (body, response.text)
        assert response.json()["param"] == param, (body, response.json())
    assert papaya.get("/invoice/0").status_code == 422
    assert papaya.get("/invoice/987654321").status_code == 404
    assert papaya.get("/subscriptions", params={"page": 0}).json()["param"] == "page"
    assert written(api) == before


def test_concurrent_creations_get_distinct_addresses(
    api: Api, base_url: str, tenant: Tenant
) -> None:
    """200 sessions created at once: 200 different indices and addresses (PostgreSQL row lock,
    SQLite write lock)."""
    start = api.get("/wallet").json()["nextIndex"]

    async def create_all() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            base_url=base_url + "/v1", headers={"X-API-Key": tenant.key}, timeout=120
        ) as client:
            return await asyncio.gather(
                *(client.post("/transaction/session-checkout", json=ONE_TIME) for _ in range(200))
            )

    responses = asyncio.run(create_all())
    assert [r.status_code for r in responses] == [200] * 200
    addresses = {r.json()["depositAddress"] for r in responses}
    assert len(addresses) == 200
    assert api.get("/wallet").json()["nextIndex"] == start + 200
