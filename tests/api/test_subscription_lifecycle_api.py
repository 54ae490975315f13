"""The subscription lifecycle through the API and the real QBitFlow 1.1.0 SDK: the test billing
cycle, a trial started by the merchant's own front end, products' grace and late-payment
settings, the open bill (`amountDue`), and cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from qbitflow import Duration, QBitFlow
from qbitflow.dto.product import CreateProductDto
from qbitflow.exceptions import InvalidRequestError, NotFoundException
from sqlalchemy import text

from core.db import create_engine, create_sessionmaker, transaction
from tests.harness.factories import Api, Tenant, make_customer, make_product, pay_session

DAY = 86_400


@pytest.fixture
def sandbox(base_url: str, api: Api, tenant: Tenant) -> tuple[Api, str]:
    created = api.post(
        "/api-key", json={"name": "sandbox", "userId": tenant.owner_id, "test": True}
    )
    key = created.json()["key"]
    return Api(base_url, key), key


def sql(database_url: str, statement: str, **params: object) -> list[Any]:
    """Run one statement on the suite's database (committed); the rows it returns."""

    async def run() -> list[Any]:
        engine = create_engine(database_url, pool=False)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                result = await session.execute(text(statement), params)
                return list(result.all()) if statement.lstrip().upper().startswith("SELECT") else []
        finally:
            await engine.dispose()

    return asyncio.run(run())


def events_of(database_url: str, subscription_uuid: str) -> list[str]:
    rows = sql(
        database_url,
        "SELECT e.type FROM events e JOIN subscriptions s ON s.id = e.subscription_id "
        "WHERE s.uuid = :u ORDER BY e.id",
        u=subscription_uuid,
    )
    return [row[0] for row in rows]


def reminders_of(database_url: str, subscription_uuid: str) -> int:
    [(count,)] = sql(
        database_url,
        "SELECT count(*) FROM telegram_outbox o JOIN subscriptions s ON s.id = o.subscription_id "
        "WHERE s.uuid = :u AND o.dedupe_key LIKE 'remind:%'",
        u=subscription_uuid,
    )
    return int(count)


def subscribe(
    api: Api,
    client: QBitFlow,
    database_url: str,
    *,
    price: str = "10",
    telegram_user_id: int | None = None,
    min_periods: int | None = None,
    **product_fields: object,
) -> str:
    """A 30-day subscription paid for one period; its uuid."""
    product = make_product(api, price=price, **product_fields)
    options: dict[str, Any] = {"min_periods": min_periods} if min_periods else {}
    link = client.subscriptions.create_session(
        product_id=product["id"], frequency=Duration(value=30, unit="days"), **options
    )
    session = api.get(f"/transaction/session-checkout/{link.uuid}").json()
    if telegram_user_id is not None:
        sql(
            database_url,
            "UPDATE checkout_sessions SET telegram_user_id = :t WHERE uuid = :u",
            t=telegram_user_id,
            u=link.uuid,
        )
    pay_session(database_url, session["depositAddress"], int(Decimal(price) * 10**6))
    [uuid] = [
        row[0]
        for row in sql(
            database_url,
            "SELECT uuid FROM subscriptions WHERE deposit_address = :a",
            a=session["depositAddress"],
        )
    ]
    return str(uuid)


def billing(api: Api, uuid: str) -> Any:
    return api.get(f"/transaction/subscription/processing/execute-billing/{uuid}")


def instant(value: str) -> datetime:
    return datetime.fromisoformat(value)


# --- the test billing cycle -------------------------------------------------------------------


def test_test_billing_cycle_steps_renewal_past_due_expired_each_once_through_the_sdk(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow], database_url: str
) -> None:
    api, key = sandbox
    client = sdk(key)
    uuid = subscribe(api, client, database_url, telegram_user_id=5151, gracePeriodDays=1)
    before = api.get(f"/transaction/subscription/{uuid}").json()
    assert events_of(database_url, uuid) == ["subscription.created"]
    assert before["amountDue"] == 0

    opened = client.subscriptions.execute_test_billing_cycle(uuid)
    assert opened.message
    assert opened.status_link.endswith(f"/v1/transaction/subscription/{uuid}")
    view = api.get(f"/transaction/subscription/{uuid}").json()
    assert view["status"] == "active"
    assert view["amountDue"] == 10
    assert view["nextBillingDate"] == before["nextBillingDate"]
    assert events_of(database_url, uuid) == ["subscription.created", "subscription.renewal_due"]
    assert reminders_of(database_url, uuid) == 1

    # A partial payment toward the open renewal lowers the bill, not the period end.
    partial_tx = pay_session(database_url, view["to"], 4_000_000)
    assert api.get(f"/transaction/subscription/{uuid}").json()["amountDue"] == 6

    # The history: the first period paid, the renewal's bill open with the partial payment
    # against it, through the SDK (its SubscriptionHistory shape) and as chainpay's fields.
    paid, renewal = client.subscriptions.get_payment_history(uuid)
    assert paid.amount == 10
    assert renewal.amount == 10
    assert renewal.transaction_hash == partial_tx
    assert renewal.subscription_uuid == uuid
    raw = api.get(f"/transaction/subscription/history/{uuid}").json()
    assert [b["status"] for b in raw] == ["paid", "open"]
    assert raw[0]["periodEnd"] == raw[1]["periodStart"] == before["nextBillingDate"]
    assert [raw[1]["paidUsd"], raw[1]["amountDue"]] == [4, 6]
    assert [p["transactionHash"] for p in raw[1]["payments"]] == [partial_tx]

    second = billing(api, uuid).json()
    assert second["events"] == ["subscription.past_due"]
    assert second["status"] == "past_due"
    # The product's one day of grace, from the unchanged period end.
    end = instant(before["nextBillingDate"])
    assert instant(second["nextActionAt"]) == end + timedelta(days=1)
    past_due = client.subscriptions.get(uuid)
    assert past_due.subscription_status.value == "past_due"
    assert past_due.next_billing_date == end
    assert api.get(f"/transaction/subscription/{uuid}").json()["amountDue"] == 6
    assert reminders_of(database_url, uuid) == 3  # the other two on the way, each once

    third = billing(api, uuid).json()
    assert third["events"] == ["subscription.expired"]
    assert third["nextActionAt"] is None
    expired = client.subscriptions.get(uuid)
    assert expired.subscription_status.value == "cancelled"
    assert expired.stopped is True
    assert expired.next_billing_date == end
    assert api.get(f"/transaction/subscription/{uuid}").json()["amountDue"] == 0
    history = api.get(f"/transaction/subscription/history/{uuid}").json()
    assert [(b["status"], b["paidUsd"], b["amountDue"]) for b in history] == [
        ("paid", 10, 0),
        ("unpaid", 4, 0),
    ]

    done = billing(api, uuid)
    assert done.status_code == 409
    assert done.json()["code"] == "nothing_to_bill"
    with pytest.raises(InvalidRequestError):
        client.subscriptions.execute_test_billing_cycle(uuid)
    assert events_of(database_url, uuid) == [
        "subscription.created",
        "subscription.renewal_due",
        "subscription.past_due",
        "subscription.expired",
    ]
    assert reminders_of(database_url, uuid) == 3


def test_test_billing_cycle_ends_a_subscription_cancelled_at_period_end(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow], database_url: str
) -> None:
    api, key = sandbox
    client = sdk(key)
    uuid = subscribe(api, client, database_url)
    cancelled = api.post(f"/transaction/subscription/{uuid}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    ends = cancelled.json()["nextBillingDate"]
    step = billing(api, uuid).json()
    assert step["events"] == ["subscription.expired"]
    assert step["status"] == "expired"
    view = api.get(f"/transaction/subscription/{uuid}").json()
    assert view["status"] == "expired"
    assert view["nextBillingDate"] == ends
    assert events_of(database_url, uuid) == [
        "subscription.created",
        "subscription.cancelled",
        "subscription.expired",
    ]


def test_test_billing_cycle_refuses_live_subscriptions_and_hides_other_organizations(
    sandbox: tuple[Api, str],
    api: Api,
    sdk: Callable[[str], QBitFlow],
    database_url: str,
    tenant_factory: Callable[..., Tenant],
    base_url: str,
) -> None:
    box, key = sandbox
    uuid = subscribe(box, sdk(key), database_url)
    stranger = tenant_factory(test=True)
    with pytest.raises(NotFoundException):
        sdk(stranger.key).subscriptions.execute_test_billing_cycle(uuid)
    assert billing(Api(base_url, stranger.key), uuid).status_code == 404
    # The same subscription made live: the live key sees it and is refused.
    sql(database_url, "UPDATE subscriptions SET test = false WHERE uuid = :u", u=uuid)
    refused = billing(api, uuid)
    assert refused.status_code == 400
    assert refused.json()["code"] == "live_subscription"
    assert refused.json()["param"] == "uuid"
    assert events_of(database_url, uuid) == ["subscription.created"]


# --- a trial started by the merchant's front end ----------------------------------------------


def trial_session(client: QBitFlow, product_id: int) -> str:
    link = client.subscriptions.create_session(
        product_id=product_id,
        frequency=Duration(value=30, unit="days"),
        trial_period=Duration(value=7, unit="days"),
    )
    return str(link.uuid)


def test_start_route_begins_a_trial_once_per_payer_and_product(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow]
) -> None:
    api, key = sandbox
    client = sdk(key)
    product = make_product(api, price="5")
    session_uuid = trial_session(client, product["id"])
    started = api.post(
        f"/transaction/session-checkout/{session_uuid}/start", json={"telegramUserId": 8181}
    )
    assert started.status_code == 200, started.text
    body = started.json()
    assert body["status"] == "trial"
    assert body["telegramUserId"] == 8181
    assert body["sessionUUID"] == session_uuid
    assert body["amountDue"] == 0
    assert api.get(f"/transaction/subscription/{body['uuid']}").json() == body
    assert client.subscriptions.get(body["uuid"]).subscription_status.value == "trial"
    # The trial is the first history entry: nothing billed, nothing paid, no currency yet.
    [trial] = client.subscriptions.get_payment_history(body["uuid"])
    assert (trial.amount, trial.transaction_hash, trial.currency_id) == (0, "", 0)
    [raw] = api.get(f"/transaction/subscription/history/{body['uuid']}").json()
    assert (raw["status"], raw["periodEnd"], raw["payments"]) == (
        "trial",
        body["nextBillingDate"],
        [],
    )

    again = api.post(
        f"/transaction/session-checkout/{trial_session(client, product['id'])}/start",
        json={"telegramUserId": 8181},
    )
    assert again.status_code == 409
    assert again.json()["code"] == "trial_used"
    twice = api.post(
        f"/transaction/session-checkout/{session_uuid}/start", json={"telegramUserId": 8182}
    )
    assert twice.status_code == 409
    assert twice.json()["code"] == "subscription_exists"


def test_start_route_with_a_customer_keys_the_trial_on_that_customer(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow]
) -> None:
    api, key = sandbox
    client = sdk(key)
    product = make_product(api, price="5")
    customer = make_customer(api)
    started = api.post(
        f"/transaction/session-checkout/{trial_session(client, product['id'])}/start",
        json={"customerUUID": customer["uuid"]},
    )
    assert started.status_code == 200, started.text
    assert started.json()["customerUUID"] == customer["uuid"]
    assert started.json()["status"] == "trial"
    again = api.post(
        f"/transaction/session-checkout/{trial_session(client, product['id'])}/start",
        json={"customerUUID": customer["uuid"], "telegramUserId": 8383},
    )
    assert again.status_code == 409
    assert again.json()["code"] == "trial_used"


def test_start_route_refuses_no_trial_no_payer_and_foreign_customers(
    sandbox: tuple[Api, str],
    sdk: Callable[[str], QBitFlow],
    tenant_factory: Callable[..., Tenant],
    base_url: str,
) -> None:
    api, key = sandbox
    client = sdk(key)
    product = make_product(api, price="5")
    plain = client.subscriptions.create_session(
        product_id=product["id"], frequency=Duration(value=30, unit="days")
    )
    no_trial = api.post(
        f"/transaction/session-checkout/{plain.uuid}/start", json={"telegramUserId": 1}
    )
    assert no_trial.status_code == 409
    assert no_trial.json()["code"] == "no_trial"

    session_uuid = trial_session(client, product["id"])
    nobody = api.post(f"/transaction/session-checkout/{session_uuid}/start", json={})
    assert nobody.status_code == 422
    assert nobody.json()["param"] == "telegramUserId"
    bad_id = api.post(
        f"/transaction/session-checkout/{session_uuid}/start", json={"telegramUserId": "x"}
    )
    assert bad_id.status_code == 422
    assert bad_id.json()["param"] == "telegramUserId"

    stranger = tenant_factory(test=True)
    foreign = make_customer(Api(base_url, stranger.key))
    refused = api.post(
        f"/transaction/session-checkout/{session_uuid}/start",
        json={"customerUUID": foreign["uuid"]},
    )
    assert refused.status_code == 404
    assert refused.json()["param"] == "customerUUID"
    # Nor can the stranger start this organization's session.
    assert (
        Api(base_url, stranger.key)
        .post(f"/transaction/session-checkout/{session_uuid}/start", json={"telegramUserId": 2})
        .status_code
        == 404
    )


# --- products' lifecycle settings ---------------------------------------------------------------


def test_product_grace_days_and_late_reactivation_round_trip(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow], database_url: str
) -> None:
    api, key = sandbox
    plain = make_product(api)
    assert plain["gracePeriodDays"] is None
    assert plain["reactivateOnLatePayment"] is False

    product = make_product(api, gracePeriodDays=5, reactivateOnLatePayment=True)
    assert (product["gracePeriodDays"], product["reactivateOnLatePayment"]) == (5, True)
    [(seconds, reactivate)] = sql(
        database_url,
        "SELECT grace_seconds, reactivate_on_late_payment FROM products WHERE id = :i",
        i=product["id"],
    )
    assert (seconds, bool(reactivate)) == (5 * DAY, True)

    # Absent stays, null restores the default.
    renamed = api.put(f"/product/{product['id']}", json={"name": "Renamed"}).json()
    assert (renamed["gracePeriodDays"], renamed["reactivateOnLatePayment"]) == (5, True)
    reset = api.put(
        f"/product/{product['id']}",
        json={"gracePeriodDays": None, "reactivateOnLatePayment": False},
    ).json()
    assert (reset["gracePeriodDays"], reset["reactivateOnLatePayment"]) == (None, False)
    zero = api.put(f"/product/{product['id']}", json={"gracePeriodDays": 0}).json()
    assert zero["gracePeriodDays"] == 0
    assert api.get(f"/product/id/{product['id']}").json()["gracePeriodDays"] == 0

    for bad in (-1, 366, "3", 1.5, True):
        refused = api.post(
            "/product", json={"name": "P", "description": "D", "price": 1, "gracePeriodDays": bad}
        )
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["param"] == "gracePeriodDays"
    refused = api.put(f"/product/{product['id']}", json={"reactivateOnLatePayment": "yes"})
    assert refused.status_code == 422
    assert refused.json()["param"] == "reactivateOnLatePayment"

    # The SDK reads and writes products as before.
    client = sdk(key)
    made = client.products.create(CreateProductDto(name="SDK", description="D", price=3.5))
    assert client.products.get(made.id).price == 3.5
    assert api.get(f"/product/id/{made.id}").json()["reactivateOnLatePayment"] is False


# --- cancellation ---------------------------------------------------------------------------


def papaya_active(base_url: str, key: str, subscription_uuid: str, database_url: str) -> bool:
    [(subscription_id,)] = sql(
        database_url, "SELECT id FROM subscriptions WHERE uuid = :u", u=subscription_uuid
    )
    papaya = Api(base_url, key)
    papaya.client.base_url = base_url + "/api"
    return bool(papaya.get(f"/subscriptions/{subscription_id}").json()["isActive"])


@pytest.mark.parametrize(
    ("body", "keeps_access"),
    [({"when": "now"}, False), ({"when": "end-of-period"}, True), (None, True)],
)
def test_cancel_ends_access_now_or_at_the_period_end(
    sandbox: tuple[Api, str],
    sdk: Callable[[str], QBitFlow],
    database_url: str,
    base_url: str,
    body: dict[str, str] | None,
    keeps_access: bool,
) -> None:
    api, key = sandbox
    uuid = subscribe(api, sdk(key), database_url)
    before = api.get(f"/transaction/subscription/{uuid}").json()
    response = api.post(f"/transaction/subscription/{uuid}/cancel", json=body)
    assert response.status_code == 200, response.text
    cancelled = response.json()
    assert (cancelled["status"], cancelled["stopped"]) == ("cancelled", True)
    assert cancelled["nextBillingDate"] == before["nextBillingDate"]
    assert papaya_active(base_url, key, uuid, database_url) is keeps_access
    [(ends_at,)] = sql(database_url, "SELECT ends_at FROM subscriptions WHERE uuid = :u", u=uuid)
    ends = ends_at if isinstance(ends_at, datetime) else datetime.fromisoformat(ends_at)
    period_end = instant(before["nextBillingDate"]).replace(tzinfo=None)
    assert (ends.replace(tzinfo=None) == period_end) is keeps_access
    again = api.post(f"/transaction/subscription/{uuid}/cancel", json=body)
    assert again.status_code == 409
    assert again.json()["code"] == "subscription_not_live"
    assert events_of(database_url, uuid).count("subscription.cancelled") == 1


def test_cancel_refuses_an_unknown_when_and_honours_min_periods_unless_forced(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow], database_url: str
) -> None:
    api, key = sandbox
    client = sdk(key)
    uuid = subscribe(api, client, database_url, min_periods=3)
    bad = api.post(f"/transaction/subscription/{uuid}/cancel", json={"when": "tomorrow"})
    assert bad.status_code == 422
    assert bad.json()["param"] == "when"
    for body in ({"when": "now"}, {"when": "end-of-period"}, None):
        refused = api.post(f"/transaction/subscription/{uuid}/cancel", json=body)
        assert refused.status_code == 409
        assert refused.json()["code"] == "minimum_periods"
    assert client.subscriptions.get(uuid).subscription_status.value == "active"
    assert client.subscriptions.force_cancel(uuid).message
    forced = client.subscriptions.get(uuid)
    assert forced.subscription_status.value == "cancelled"
    assert forced.stopped is True
    [(ends_at, cancelled_at)] = sql(
        database_url, "SELECT ends_at, cancelled_at FROM subscriptions WHERE uuid = :u", u=uuid
    )
    assert ends_at == cancelled_at  # forced: access ends at once
    assert events_of(database_url, uuid) == ["subscription.created", "subscription.cancelled"]
