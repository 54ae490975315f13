"""Pay-as-you-go through the API and the real QBitFlow 1.1.0 SDK (`client.pay_as_you_go`):
the session, the start without paying, usage (exact, idempotent, capped), the view, the test
billing cycle's period end with its bill, and paying it."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from qbitflow import Duration, QBitFlow
from qbitflow.dto.transaction.session import LinkResponse
from qbitflow.dto.transaction.subscription import PayAsYouGoSubscription
from qbitflow.exceptions import InvalidRequestError

from tests.api.test_subscription_lifecycle_api import events_of, sql
from tests.harness.factories import Api, Tenant, make_product, pay_session

INCREASE = "/transaction/subscription/payg/increase-units-current-period"


@pytest.fixture
def sandbox(base_url: str, api: Api, tenant: Tenant) -> tuple[Api, str]:
    created = api.post(
        "/api-key", json={"name": "sandbox", "userId": tenant.owner_id, "test": True}
    )
    key = created.json()["key"]
    return Api(base_url, key), key


def exact(response: httpx.Response) -> Any:
    """The body with its numbers as decimals (they are exact on the wire)."""
    return json.loads(response.text, parse_float=Decimal)


def start(
    api: Api, client: QBitFlow, *, price: str, free_credits: float | None, **product: Any
) -> tuple[LinkResponse, dict[str, Any]]:
    """A 30-day PAYG session of a new product, started for Telegram user 9191; (session, view)."""
    made = make_product(api, price=price, **product)
    link = client.pay_as_you_go.create_session(
        product_id=made["id"], frequency=Duration(value=30, unit="days"), free_credits=free_credits
    )
    started = api.post(
        f"/transaction/session-checkout/{link.uuid}/start", json={"telegramUserId": 9191}
    )
    assert started.status_code == 200, started.text
    return link, started.json()


def deposit_address(api: Api, session_uuid: str) -> str:
    return str(api.get(f"/transaction/session-checkout/{session_uuid}").json()["depositAddress"])


def test_payg_session_starts_without_paying_and_reads_as_the_sdks_payg_subscription(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow]
) -> None:
    api, key = sandbox
    client = sdk(key)
    link, started = start(api, client, price="0.25", free_credits=1.5)
    session = client.pay_as_you_go.get_session(link.uuid)
    assert session.options is not None
    assert session.options.subscription_type == "payAsYouGo"
    session_out = exact(api.get(f"/transaction/session-checkout/{link.uuid}"))
    assert session_out["options"]["freeCredits"] == Decimal("1.5")

    assert started["status"] == "active"
    assert started["to"] == deposit_address(api, link.uuid)
    assert started["amountDue"] == 0
    payg = client.pay_as_you_go.get(started["uuid"])
    assert isinstance(payg, PayAsYouGoSubscription)
    assert payg.units_current_period == 0
    assert payg.free_credits == 1.5
    assert payg.max_spending_per_period == 1000  # the product sets none
    assert payg.to == started["to"]
    raw = exact(api.get(f"/transaction/subscription/{started['uuid']}"))
    assert raw["unitPrice"] == Decimal("0.25")
    assert raw["billDueAt"] is None

    # One start per payer per product, even from another session.
    again = client.pay_as_you_go.create_session(
        product_id=payg.product_id, frequency=Duration(value=30, unit="days")
    )
    refused = api.post(
        f"/transaction/session-checkout/{again.uuid}/start", json={"telegramUserId": 9191}
    )
    assert refused.status_code == 409
    assert refused.json()["code"] == "payg_started"


def test_a_payg_session_takes_no_trial_period(sandbox: tuple[Api, str]) -> None:
    api, _ = sandbox
    product = make_product(api, price="1")
    response = api.post(
        "/transaction/session-checkout",
        json={
            "productId": product["id"],
            "options": {
                "subscriptionType": "payAsYouGo",
                "frequency": {"value": 30, "unit": "days"},
                "trialPeriod": {"value": 7, "unit": "days"},
            },
        },
    )
    assert response.status_code == 422
    assert response.json()["param"] == "options.trialPeriod"


def test_usage_adds_exactly_once_per_idempotency_key_and_is_capped_by_the_product(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow]
) -> None:
    api, key = sandbox
    client = sdk(key)
    _, started = start(api, client, price="0.1", free_credits=None, maxSpendingPerPeriod="5")
    uuid = started["uuid"]
    assert client.pay_as_you_go.get(uuid).max_spending_per_period == 5

    # Exact decimals: 0.1 + 0.2 is 0.3 here, and 18 places survive.
    client.pay_as_you_go.increase_units_current_period(uuid, 0.1)
    after = client.pay_as_you_go.increase_units_current_period(uuid, 0.2)
    assert after.units_current_period == 0.3
    body = {"subscriptionUUID": uuid, "increaseByAmount": "0.000000000000000001"}
    first = api.post(INCREASE, json=body, headers={"Idempotency-Key": "usage-1"})
    replay = api.post(INCREASE, json=body, headers={"Idempotency-Key": "usage-1"})
    assert first.status_code == replay.status_code == 200
    assert exact(first)["unitsCurrentPeriod"] == Decimal("0.300000000000000001")
    assert replay.text == first.text
    reused = api.post(
        INCREASE,
        json={**body, "increaseByAmount": 2},
        headers={"Idempotency-Key": "usage-1"},
    )
    assert reused.status_code == 422
    read = exact(api.get(f"/transaction/subscription/{uuid}"))
    assert read["unitsCurrentPeriod"] == Decimal("0.300000000000000001")

    # The cap: 5 USD at 0.1 a unit is 50 units; one unit more is refused, saying so.
    api.post(INCREASE, json={"subscriptionUUID": uuid, "increaseByAmount": "49.699999999999999999"})
    beyond = api.post(INCREASE, json={"subscriptionUUID": uuid, "increaseByAmount": 1})
    assert beyond.status_code == 422
    assert beyond.json()["param"] == "increaseByAmount"
    assert "maxSpendingPerPeriod" in beyond.json()["error"]
    assert beyond.json()["code"] == "max_spending_exceeded"
    with pytest.raises(InvalidRequestError):
        client.pay_as_you_go.increase_units_current_period(uuid, 1)
    assert client.pay_as_you_go.get(uuid).units_current_period == 50

    # Raising the product's cap lets it through.
    raised = api.put(f"/product/{started['productId']}", json={"maxSpendingPerPeriod": 6})
    assert raised.status_code == 200, raised.text
    assert raised.json()["maxSpendingPerPeriod"] == 6
    assert client.pay_as_you_go.increase_units_current_period(uuid, 1).units_current_period == 51


def test_bad_usage_requests_name_their_field(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow]
) -> None:
    api, key = sandbox
    client = sdk(key)
    _, started = start(api, client, price="1", free_credits=None)
    cases: list[tuple[dict[str, Any], int, str]] = [
        ({"subscriptionUUID": "nope", "increaseByAmount": 1}, 404, "subscriptionUUID"),
        ({"subscriptionUUID": started["uuid"], "increaseByAmount": 0}, 422, "increaseByAmount"),
        ({"subscriptionUUID": started["uuid"], "increaseByAmount": -1}, 422, "increaseByAmount"),
        ({"subscriptionUUID": started["uuid"], "increaseByAmount": True}, 422, "increaseByAmount"),
        ({"increaseByAmount": 1}, 422, "subscriptionUUID"),
    ]
    for body, status, param in cases:
        response = api.post(INCREASE, json=body)
        assert response.status_code == status, (body, response.text)
        assert response.json()["param"] == param, (body, response.json())


def test_a_normal_subscription_refuses_usage_and_keeps_its_shape(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow], database_url: str
) -> None:
    api, key = sandbox
    client = sdk(key)
    product = make_product(api, price="3")
    link = client.subscriptions.create_session(
        product_id=product["id"], frequency=Duration(value=30, unit="days")
    )
    address = deposit_address(api, link.uuid)
    pay_session(database_url, address, 3_000_000)
    [(uuid,)] = sql(
        database_url, "SELECT uuid FROM subscriptions WHERE deposit_address = :a", a=address
    )
    refused = api.post(INCREASE, json={"subscriptionUUID": uuid, "increaseByAmount": 1})
    assert refused.status_code == 409
    assert refused.json()["code"] == "not_payg"
    view = api.get(f"/transaction/subscription/{uuid}").json()
    assert "unitsCurrentPeriod" not in view
    assert view["allowance"] == 3


def test_period_end_bills_usage_less_free_credits_then_paying_starts_the_next_period(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow], database_url: str
) -> None:
    api, key = sandbox
    client = sdk(key)
    link, started = start(api, client, price="0.25", free_credits=1.5)
    uuid = started["uuid"]
    client.pay_as_you_go.increase_units_current_period(uuid, 10)
    period_end = datetime.fromisoformat(started["nextBillingDate"])

    # The test billing cycle reaches the period end: 10 x 0.25 = 2.5, less 1.5 of credits.
    step = client.pay_as_you_go.execute_test_billing_cycle(uuid)
    assert step.status_link.endswith(f"/v1/transaction/subscription/{uuid}")
    billed = api.get(f"/transaction/subscription/{uuid}").json()
    assert billed["amountDue"] == 1
    assert billed["unitsCurrentPeriod"] == 0
    assert billed["freeCredits"] == 0
    assert billed["status"] == "active"
    assert datetime.fromisoformat(billed["nextBillingDate"]) == period_end + timedelta(days=30)
    assert datetime.fromisoformat(billed["billDueAt"]) == period_end + timedelta(days=3)
    assert events_of(database_url, uuid) == ["subscription.created", "subscription.renewal_due"]

    # Usage during the open bill counts toward the new period.
    client.pay_as_you_go.increase_units_current_period(uuid, 2)
    pay_session(database_url, started["to"], 1_000_000)
    paid = client.pay_as_you_go.get(uuid)
    assert paid.subscription_status.value == "active"
    assert paid.units_current_period == 2
    raw = api.get(f"/transaction/subscription/{uuid}").json()
    assert raw["amountDue"] == 0
    assert raw["billDueAt"] is None
    assert events_of(database_url, uuid)[-1] == "subscription.renewed"
    history = client.pay_as_you_go.get_payment_history(uuid)
    assert [h.amount for h in history] == [1]


def test_test_billing_cycle_takes_an_unpaid_bill_to_past_due_then_expired(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow], database_url: str
) -> None:
    api, key = sandbox
    client = sdk(key)
    _, started = start(api, client, price="2", free_credits=None)
    uuid = started["uuid"]
    client.pay_as_you_go.increase_units_current_period(uuid, 3)
    client.pay_as_you_go.execute_test_billing_cycle(uuid)  # period end: a bill of 6
    assert api.get(f"/transaction/subscription/{uuid}").json()["amountDue"] == 6
    client.pay_as_you_go.execute_test_billing_cycle(uuid)  # the bill's deadline: past due
    assert api.get(f"/transaction/subscription/{uuid}").json()["status"] == "past_due"
    client.pay_as_you_go.execute_test_billing_cycle(uuid)  # grace over: expired
    view = client.pay_as_you_go.get(uuid)
    assert view.stopped
    assert view.subscription_status.value == "cancelled"  # v1 shows expired as cancelled
    assert events_of(database_url, uuid) == [
        "subscription.created",
        "subscription.renewal_due",
        "subscription.past_due",
        "subscription.expired",
    ]
    refused = api.post(INCREASE, json={"subscriptionUUID": uuid, "increaseByAmount": 1})
    assert refused.status_code == 409


def test_a_zero_bill_starts_the_next_period_at_once_through_the_sdk(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow], database_url: str
) -> None:
    api, key = sandbox
    client = sdk(key)
    _, started = start(api, client, price="1", free_credits=5)
    uuid = started["uuid"]
    client.pay_as_you_go.increase_units_current_period(uuid, 4)
    first_end = datetime.fromisoformat(started["nextBillingDate"])
    step = client.pay_as_you_go.execute_test_billing_cycle(uuid)
    assert "subscription.renewed" in step.message
    view = client.pay_as_you_go.get(uuid)
    assert view.units_current_period == 0
    assert view.free_credits == 1
    assert view.next_billing_date == first_end + timedelta(days=30)
    assert api.get(f"/transaction/subscription/{uuid}").json()["amountDue"] == 0
    assert events_of(database_url, uuid) == ["subscription.created", "subscription.renewed"]


def test_another_organizations_usage_call_is_404_and_changes_nothing(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow], tenant_factory: Any, base_url: str
) -> None:
    api, key = sandbox
    client = sdk(key)
    _, started = start(api, client, price="1", free_credits=None)
    stranger = Api(base_url, tenant_factory(test=True).key)
    response = stranger.post(
        INCREASE, json={"subscriptionUUID": started["uuid"], "increaseByAmount": 5}
    )
    assert response.status_code == 404, response.text
    assert response.json()["param"] == "subscriptionUUID"
    assert stranger.get(f"/transaction/subscription/{started['uuid']}").status_code == 404
    assert client.pay_as_you_go.get(started["uuid"]).units_current_period == 0
