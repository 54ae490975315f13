"""Checkout sessions through the unchanged QBitFlow SDK 1.1.0 and raw HTTP: the four kinds,
reads, cancellation, test mode, status lookups and the SDK field mapping."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from decimal import Decimal

import pytest
from qbitflow import Duration, QBitFlow
from qbitflow.dto.transaction.status import TransactionStatusValue, TransactionType
from qbitflow.exceptions import InvalidRequestError, NotFoundException

from tests.harness.factories import (
    DEVNET_A_USDT,
    DEVNET_B_USDT,
    Api,
    Tenant,
    make_customer,
    make_product,
)

ETH_USDT = "0xdAC17F958D2ee523a2206206994597C13D831ec7"


@pytest.fixture
def test_key(api: Api, tenant: Tenant) -> str:
    created = api.post(
        "/api-key", json={"name": "sandbox", "userId": tenant.owner_id, "test": True}
    )
    assert created.status_code == 200
    return str(created.json()["key"])


def test_one_time_session_without_product(
    sdk: Callable[[str], QBitFlow], tenant: Tenant, api: Api
) -> None:
    client = sdk(tenant.key)
    link = client.one_time_payments.create_session(
        product_name="Ebook",
        description="PDF",
        price=19.99,
        success_url="https://merchant.io/ok?s={{UUID}}",
    )
    assert link.link == f"https://pay.shop.example/pay/{link.uuid}"
    assert link.expires_at is not None
    assert 3500 <= link.expires_at - time.time() <= 3610

    session = client.one_time_payments.get_session(link.uuid)
    assert session.product_name == "Ebook"
    assert session.price == 19.99
    assert session.product_id is None
    assert session.customer_uuid == ""
    assert session.options is None
    assert session.success_url == "https://merchant.io/ok?s={{UUID}}"
    assert {(c.symbol, c.decimals, c.test) for c in session.available_currencies} == {
        ("USDT", 6, False),
        ("USDC", 6, False),
    }

    raw = api.get(f"/transaction/session-checkout/{link.uuid}").json()
    assert raw["status"] == "created"
    assert re.fullmatch(
        r"https://t\.me/chainpay_test_bot\?start=[A-Za-z0-9_-]{1,64}", raw["botUrl"]
    )
    assert re.fullmatch(r"0x[0-9a-fA-F]{40}", raw["depositAddress"])
    amounts = {a["contract"]: a for a in raw["amounts"]}
    assert amounts[ETH_USDT]["amountBaseUnits"] == "19990000"
    assert raw["remainingUsd"] == 19.99


def test_one_time_session_from_product_with_customer(
    sdk: Callable[[str], QBitFlow], tenant: Tenant, api: Api
) -> None:
    product = make_product(api, price="0.1")
    customer = make_customer(api)
    client = sdk(tenant.key)
    link = client.one_time_payments.create_session(
        product_id=product["id"], customer_uuid=customer["uuid"]
    )
    session = client.one_time_payments.get_session(link.uuid)
    assert session.product_id == product["id"]
    assert session.price == 0.1
    assert session.customer_uuid == customer["uuid"]
    assert session.organization_name == "Shop"


def test_subscription_sessions_with_and_without_trial(
    sdk: Callable[[str], QBitFlow], tenant: Tenant, api: Api
) -> None:
    product = make_product(api, price="9.99")
    client = sdk(tenant.key)
    plain = client.subscriptions.create_session(
        product_id=product["id"], frequency=Duration(value=1, unit="months")
    )
    session = client.subscriptions.get_session(plain.uuid)
    assert session.options is not None
    assert session.options.frequency == 30 * 86_400
    assert session.options.subscription_type == "subscription"
    assert session.options.trial_period is None

    trial = client.subscriptions.create_session(
        product_id=product["id"],
        frequency=Duration(value=1, unit="weeks"),
        trial_period=Duration(value=7, unit="days"),
        min_periods=3,
        webhook_url="https://localhost/hooks",  # private targets are allowed in the tests
    )
    with_trial = client.subscriptions.get_session(trial.uuid)
    assert with_trial.options is not None
    assert with_trial.options.trial_period == 7 * 86_400
    assert with_trial.options.min_periods == 3
    assert with_trial.options.frequency == 604_800
    assert plain.uuid != trial.uuid
    addresses = {
        api.get(f"/transaction/session-checkout/{u}").json()["depositAddress"]
        for u in (plain.uuid, trial.uuid)
    }
    assert len(addresses) == 2


def test_subscription_without_product_gets_one(api: Api) -> None:
    created = api.post(
        "/transaction/session-checkout",
        json={
            "productName": "Club",
            "description": "Monthly club",
            "price": "5",
            "options": {
                "subscriptionType": "subscription",
                "frequency": {"value": 30, "unit": "days"},
            },
        },
    )
    assert created.status_code == 200, created.text
    session = api.get(f"/transaction/session-checkout/{created.json()['uuid']}").json()
    assert session["productId"] is not None
    assert api.get(f"/product/id/{session['productId']}").json()["name"] == "Club"


def test_test_key_sessions_use_test_chains_with_exact_decimals(
    base_url: str, test_key: str, api: Api
) -> None:
    sandbox = Api(base_url, test_key)
    created = sandbox.post(
        "/transaction/session-checkout",
        json={"productName": "T", "description": "d", "price": "19.99"},
    )
    assert created.status_code == 200, created.text
    body = created.json()
    assert body["test"] is True
    amounts = {(a["chainId"], a["contract"]): a["amountBaseUnits"] for a in body["amounts"]}
    assert amounts == {
        (31337, DEVNET_A_USDT): "19990000",
        (31338, DEVNET_B_USDT): "19990000000000000000",
    }
    # Test and live never see each other.
    assert api.get(f"/transaction/session-checkout/{body['uuid']}").status_code == 404
    live = api.post(
        "/transaction/session-checkout", json={"productName": "L", "description": "d", "price": "1"}
    )
    assert sandbox.get(f"/transaction/session-checkout/{live.json()['uuid']}").status_code == 404


def test_cancel_open_session_then_refuse_again(api: Api) -> None:
    uuid = api.post(
        "/transaction/session-checkout", json={"productName": "C", "description": "d", "price": "3"}
    ).json()["uuid"]
    cancelled = api.post(f"/transaction/session-checkout/{uuid}/cancel")
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"
    again = api.post(f"/transaction/session-checkout/{uuid}/cancel")
    assert again.status_code == 409
    assert again.json()["code"] == "session_not_open"


def test_transaction_status_through_the_sdk(
    sdk: Callable[[str], QBitFlow], tenant: Tenant, api: Api
) -> None:
    client = sdk(tenant.key)
    link = client.one_time_payments.create_session(product_name="S", description="d", price=1)
    status = client.transaction_status.get(link.uuid, TransactionType.ONE_TIME_PAYMENT)
    assert status.status is TransactionStatusValue.CREATED
    assert status.type is TransactionType.ONE_TIME_PAYMENT
    with pytest.raises(InvalidRequestError):
        client.transaction_status.get(link.uuid, TransactionType.CREATE_SUBSCRIPTION)
    with pytest.raises(NotFoundException):
        client.transaction_status.get(
            "00000000-0000-4000-8000-000000000000", TransactionType.ONE_TIME_PAYMENT
        )


def test_close_to_expire_error_and_lifetime(
    base_url: str, database_url: str, tenant_factory: Callable[..., Tenant]
) -> None:
    from tests.harness.factories import test_settings
    from tests.harness.server import live_server

    tenant = tenant_factory()
    with live_server(test_settings(database_url, session_lifetime_minutes=1)) as short_base:
        short = Api(short_base, tenant.key)
        created = short.post(
            "/transaction/session-checkout",
            json={"productName": "E", "description": "d", "price": "1"},
        )
        assert created.json()["expiresAt"] - time.time() <= 61
        uuid = created.json()["uuid"]
        assert short.get(f"/transaction/session-checkout/{uuid}").status_code == 200
        near = short.get(
            f"/transaction/session-checkout/{uuid}", params={"closeToExpireError": "true"}
        )
        assert near.status_code == 410
        assert near.json()["code"] == "session_expiring"


def test_wallet_route_and_missing_wallet(
    base_url: str, tenant_factory: Callable[..., Tenant]
) -> None:
    bare = Api(base_url, tenant_factory(wallet=False).key)
    missing = bare.post(
        "/transaction/session-checkout", json={"productName": "W", "description": "d", "price": "1"}
    )
    assert missing.status_code == 409
    assert missing.json()["code"] == "wallet_not_configured"
    xpub = "xpub6Ce9NcJvTk36xtLSrJLZqE7wtgA5deCeYs7rSQtreh4cj6ByPtrg9sD7V2FNFLPnf8heNP3FGkeV9qwfzvZNSd54JoNXVsXFYSYwHsnJxqP"
    first = bare.put("/wallet", json={"xpub": xpub})
    if first.status_code == 409:  # another test's tenant registered the anvil account already
        assert first.json()["code"] == "xpub_taken"
        return
    assert first.status_code == 200, first.text
    assert first.json()["firstAddress"] == "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
    other = Api(base_url, tenant_factory(wallet=False).key)
    taken = other.put("/wallet", json={"xpub": xpub})
    assert taken.status_code == 409
    assert taken.json()["param"] == "xpub"


def test_quotes_in_the_session_are_exact(api: Api) -> None:
    for price, expected in [
        ("0.1", "100000"),
        ("19.99", "19990000"),
        ("0.000001", "1"),
        ("1000000000", "1000000000000000"),
    ]:
        body = api.post(
            "/transaction/session-checkout",
            json={"productName": "Q", "description": "d", "price": price},
        ).json()
        assert {a["amountBaseUnits"] for a in body["amounts"]} == {expected}, price
        assert {Decimal(str(a["amount"])) for a in body["amounts"]} == {Decimal(price)}
