"""A product's `telegramChatId` (the paid group or channel): set on create, changed or unbound
on update, untouched by updates that do not mention it (the QBitFlow SDK's)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.harness.factories import Api, Tenant, make_product

CHANNEL = -1001234567890  # channels and supergroups: -100 followed by the id


def fetch(api: Api, product_id: int) -> dict[str, Any]:
    response = api.get(f"/product/id/{product_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_a_product_without_a_chat_says_null(api: Api) -> None:
    product = make_product(api)
    assert product["telegramChatId"] is None
    assert fetch(api, product["id"])["telegramChatId"] is None


def test_a_chat_set_on_create_comes_back_everywhere(api: Api) -> None:
    product = make_product(api, telegramChatId=CHANNEL)
    assert product["telegramChatId"] == CHANNEL
    assert fetch(api, product["id"])["telegramChatId"] == CHANNEL
    listed = {p["id"]: p for p in api.get("/product").json()}
    assert listed[product["id"]]["telegramChatId"] == CHANNEL


def test_update_changes_keeps_and_unbinds_the_chat(api: Api) -> None:
    product_id = make_product(api, telegramChatId=CHANNEL)["id"]

    changed = api.put(f"/product/{product_id}", json={"telegramChatId": -4001234567})
    assert changed.status_code == 200, changed.text
    assert changed.json()["telegramChatId"] == -4001234567

    # The SDK's update (name, description, price) never mentions the chat: it stays.
    renamed = api.put(
        f"/product/{product_id}", json={"name": "Renamed", "description": "D", "price": 3}
    )
    assert renamed.status_code == 200, renamed.text
    assert renamed.json()["telegramChatId"] == -4001234567
    # Null elsewhere still means "unchanged"; null for the chat unbinds it.
    kept = api.put(f"/product/{product_id}", json={"name": None, "isActive": None})
    assert kept.json()["telegramChatId"] == -4001234567
    unbound = api.put(f"/product/{product_id}", json={"telegramChatId": None})
    assert unbound.status_code == 200, unbound.text
    assert unbound.json()["telegramChatId"] is None
    assert unbound.json()["name"] == "Renamed"
    assert fetch(api, product_id)["telegramChatId"] is None


def test_64_bit_chat_ids_round_trip_exactly(api: Api) -> None:
    for chat_id in (-(2**63), 2**63 - 1, 2**53 + 1):
        product = make_product(api, telegramChatId=chat_id)
        assert fetch(api, product["id"])["telegramChatId"] == chat_id


@pytest.mark.parametrize("bad", [0, 2**63, -(2**63) - 1, "-1001234567890", 1.5, True])
def test_a_chat_id_that_is_not_a_64_bit_integer_is_a_422_naming_the_field(
    api: Api, bad: object
) -> None:
    created = api.post(
        "/product", json={"name": "P", "description": "D", "price": 1, "telegramChatId": bad}
    )
    assert created.status_code == 422, created.text
    assert created.json()["param"] == "telegramChatId"

    product_id = make_product(api)["id"]
    updated = api.put(f"/product/{product_id}", json={"telegramChatId": bad})
    assert updated.status_code == 422, updated.text
    assert updated.json()["param"] == "telegramChatId"


def test_another_organization_cannot_bind_a_chat_to_your_product(
    api: Api, base_url: str, tenant_factory: Callable[..., Tenant]
) -> None:
    product_id = make_product(api)["id"]
    stranger = Api(base_url, tenant_factory().key)
    refused = stranger.put(f"/product/{product_id}", json={"telegramChatId": CHANNEL})
    assert refused.status_code == 404, refused.text
    assert fetch(api, product_id)["telegramChatId"] is None
