"""Payments, transaction info and subscriptions through the SDK, with transfers recorded by the
real payments service (the chain-watcher issue drives the same service from anvil)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from qbitflow import Duration, QBitFlow
from qbitflow.dto.transaction.status import TransactionStatusValue, TransactionType
from qbitflow.exceptions import InvalidRequestError

from tests.harness.factories import DEVNET_B_USDT, Api, Tenant, make_product, pay_session


@pytest.fixture
def sandbox(base_url: str, api: Api, tenant: Tenant) -> tuple[Api, str]:
    created = api.post(
        "/api-key", json={"name": "sandbox", "userId": tenant.owner_id, "test": True}
    )
    key = created.json()["key"]
    return Api(base_url, key), key


def new_session(api: Api, price: str = "10", **extra: object) -> dict[str, object]:
    response = api.post(
        "/transaction/session-checkout",
        json={"productName": "Course", "description": "Video course", "price": price, **extra},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_underpay_then_top_up_gives_two_payments(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow], database_url: str
) -> None:
    api, key = sandbox
    session = new_session(api)
    address = str(session["depositAddress"])
    pay_session(database_url, address, 4_000_000)
    pending = api.get(f"/transaction/session-checkout/{session['uuid']}").json()
    assert pending["status"] == "pending"
    assert pending["underpaid"] is True
    assert pending["remainingUsd"] == 6
    # The top-up arrives on the other test chain in its 18-decimal token: USD adds up.
    pay_session(database_url, address, 6 * 10**18, chain_id=31338, token=DEVNET_B_USDT)
    done = api.get(f"/transaction/session-checkout/{session['uuid']}").json()
    assert done["status"] == "completed"
    assert done["underpaid"] is False
    assert done["paidUsd"] == 10

    client = sdk(key)
    status = client.transaction_status.get(str(session["uuid"]), TransactionType.ONE_TIME_PAYMENT)
    assert status.status is TransactionStatusValue.COMPLETED
    page = client.one_time_payments.get_all(limit=10)
    assert len(page.items) == 2
    assert sorted(p.amount for p in page.items) == [4.0, 6.0]
    first = client.one_time_payments.get(page.items[0].uuid)
    assert first.to == address
    assert first.from_ == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert first.currency.test is True
    assert first.customer_uuid == ""
    combined = client.one_time_payments.get_all_combined()
    assert {p.source for p in combined.items} == {"payment"}


def test_unfinal_payment_waits_for_confirmation_then_completes(
    sandbox: tuple[Api, str], database_url: str
) -> None:
    api, _ = sandbox
    session = new_session(api, "2")
    tx = pay_session(database_url, str(session["depositAddress"]), 2_000_000, final=False)
    waiting = api.get(f"/transaction/session-checkout/{session['uuid']}").json()
    assert waiting["status"] == "waitingConfirmation"
    info = api.get(f"/transaction/info/{tx}").json()
    assert info["status"] == "seen"
    assert info["requiredConfirmations"] == 2


def test_transaction_info_has_the_fee_split_and_chain_facts(
    sandbox: tuple[Api, str], api: Api, tenant: Tenant, database_url: str
) -> None:
    box, _ = sandbox
    api.put(f"/user/{tenant.owner_id}", json={"organizationFeeBps": 0})
    session = new_session(box, "10")
    tx = pay_session(
        database_url,
        str(session["depositAddress"]),
        10 * 10**18,
        chain_id=31338,
        token=DEVNET_B_USDT,
    )
    info = box.get(f"/transaction/info/{tx}").json()
    assert info["chainId"] == 31338
    assert info["tokenSymbol"] == "USDT"
    assert info["decimals"] == 18
    assert info["amountBaseUnits"] == str(10 * 10**18)
    assert info["amountUsd"] == 10
    assert info["txHash"] == tx
    assert info["logIndex"] == 0
    assert info["blockNumber"] == 100
    assert info["organizationFeeBps"] == 0
    assert info["merchantAmountUsd"] == 10
    by_uuid = box.get(f"/transaction/info/{info['uuid']}").json()
    assert by_uuid["txHash"] == tx
    # Another organization cannot read it.
    assert api.get(f"/transaction/info/{tx}").status_code == 404


def test_fee_split_follows_the_creators_fee(base_url: str, api: Api, database_url: str) -> None:
    staff = api.post(
        "/user",
        json={
            "name": "S",
            "lastName": "F",
            "email": f"fee-{datetime.now(UTC).timestamp()}@shop.example",
            "password": "12345678",
            "role": "user",
            "organizationFeeBps": 250,
        },
    ).json()
    key = api.post("/api-key", json={"name": "staff", "userId": staff["id"], "test": True}).json()[
        "key"
    ]
    staff_api = Api(base_url, key)
    session = new_session(staff_api, "19.99")
    tx = pay_session(database_url, str(session["depositAddress"]), 19_990_000)
    info = staff_api.get(f"/transaction/info/{tx}").json()
    assert info["organizationFeeBps"] == 250
    assert (
        str(info["organizationFeeUsd"]) == "0.499750"[:-1] or info["organizationFeeUsd"] == 0.49975
    )
    assert info["merchantAmountUsd"] == 19.49025


def test_late_and_overpaid_money_is_recorded_and_flagged(
    sandbox: tuple[Api, str], database_url: str
) -> None:
    api, _ = sandbox
    session = new_session(api, "5")
    address = str(session["depositAddress"])
    pay_session(database_url, address, 5_000_000)
    pay_session(
        database_url, address, 1_000_000, block_timestamp=datetime.now(UTC) + timedelta(hours=2)
    )
    view = api.get(f"/transaction/session-checkout/{session['uuid']}").json()
    assert view["status"] == "completed"
    assert view["overpaid"] is True
    assert view["late"] is True
    payments = api.get("/transaction/payments").json()["items"]
    assert sorted(p["late"] for p in payments) == [False, True]


def test_subscription_lifecycle_through_the_sdk(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow], database_url: str
) -> None:
    api, key = sandbox
    client = sdk(key)
    product = make_product(api, price="7.5")
    link = client.subscriptions.create_session(
        product_id=product["id"], frequency=Duration(value=1, unit="months"), min_periods=2
    )
    address = api.get(f"/transaction/session-checkout/{link.uuid}").json()["depositAddress"]
    tx = pay_session(database_url, address, 7_500_000)
    status = client.transaction_status.get(link.uuid, TransactionType.CREATE_SUBSCRIPTION)
    assert status.status is TransactionStatusValue.COMPLETED
    assert status.tx_hash == tx

    [item] = api.get("/transaction/payments/combined").json()["items"]
    assert item["source"] == "subscription_history"
    subscription = client.subscriptions.get(item["subscriptionUUID"])
    assert subscription.subscription_status.value == "active"
    assert subscription.product_id == product["id"]
    assert subscription.allowance == 7.5
    assert subscription.frequency == 30 * 86_400
    assert subscription.from_ == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert subscription.to == address
    assert subscription.subscription_hash.startswith("0x")
    assert subscription.stopped is False
    assert subscription.minimum_cancellation_date is not None
    assert (
        client.subscriptions.get(subscription.uuid).subscription_hash
        == subscription.subscription_hash
    )

    history = client.subscriptions.get_payment_history(subscription.uuid)
    assert [h.transaction_hash for h in history] == [tx]
    assert history[0].subscription_uuid == subscription.uuid

    refused = api.post(f"/transaction/subscription/{subscription.uuid}/cancel")
    assert refused.status_code == 409
    assert refused.json()["code"] == "minimum_periods"
    assert client.subscriptions.force_cancel(subscription.uuid).message
    cancelled = client.subscriptions.get(subscription.uuid)
    assert cancelled.subscription_status.value == "cancelled"
    assert cancelled.stopped is True
    with pytest.raises(InvalidRequestError):
        client.subscriptions.force_cancel(subscription.uuid)


def test_papaya_invoice_and_subscription_are_the_same_objects_as_v1(
    sandbox: tuple[Api, str],
    base_url: str,
    database_url: str,
    tenant_factory: Callable[..., Tenant],
) -> None:
    box, key = sandbox
    papaya = Api(base_url, key)
    papaya.client.base_url = base_url + "/api"  # type: ignore[assignment]
    one_time = papaya.post(
        "/invoice",
        json={"title": "Consulting", "message": "1h call", "rate": 25, "metadata": {"order": 17}},
    )
    assert one_time.status_code == 200, one_time.text
    invoice = one_time.json()
    assert invoice["rate"] == 25
    assert invoice["botUrl"].startswith("https://t.me/chainpay_test_bot?start=")
    detail = papaya.get(f"/invoice/{invoice['id']}").json()
    assert detail["isPaid"] is False
    assert detail["recipient"] is None
    assert detail["metadata"] == {"order": 17}
    # The same session through /v1, and a /v1 session through /api/invoice.
    v1 = box.get(f"/transaction/session-checkout/{detail['uuid']}").json()
    assert v1["productName"] == "Consulting"
    assert v1["invoiceId"] == invoice["id"]
    v1_made = new_session(box, "3")
    assert papaya.get(f"/invoice/{v1_made['invoiceId']}").json()["rate"] == 3

    pay_session(database_url, v1["depositAddress"], 25_000_000)
    assert papaya.get(f"/invoice/{invoice['id']}").json()["isPaid"] is True

    monthly = papaya.post(
        "/invoice", json={"title": "VIP", "rate": "9.99", "period": "PerMonth"}
    ).json()
    monthly_detail = papaya.get(f"/invoice/{monthly['id']}").json()
    assert monthly_detail["period"] == "PerMonth"
    tx = pay_session(
        database_url,
        box.get(f"/transaction/session-checkout/{monthly_detail['uuid']}").json()["depositAddress"],
        9_990_000,
    )
    listing = papaya.get("/subscriptions", params={"page": 1, "limit": 50}).json()
    assert listing["totalCount"] == 1
    assert listing["totalPages"] == 1
    [sub] = listing["items"]
    assert (sub["chainId"], sub["tokenName"], sub["tx"], sub["isActive"]) == (
        31337,
        "USDT",
        tx,
        True,
    )
    assert sub["userAddress"] == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert papaya.get(f"/subscriptions/{sub['id']}").json()["tx"] == tx
    # Other organizations and live keys see none of it.
    stranger = Api(base_url, tenant_factory().key)
    stranger.client.base_url = base_url + "/api"  # type: ignore[assignment]
    assert stranger.get(f"/invoice/{invoice['id']}").status_code == 404
    assert stranger.get(f"/subscriptions/{sub['id']}").status_code == 404
    assert stranger.get("/subscriptions").json()["totalCount"] == 0


def test_payments_pagination_walks_each_payment_once(
    sandbox: tuple[Api, str], database_url: str
) -> None:
    api, _ = sandbox
    made = set()
    for _ in range(7):
        session = new_session(api, "1")
        made.add(pay_session(database_url, str(session["depositAddress"]), 1_000_000))
    seen: list[str] = []
    cursor = None
    while True:
        params: dict[str, object] = {"limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = api.get("/transaction/payments", params=params).json()
        seen += [p["transactionHash"] for p in page["items"]]
        cursor = page["nextCursor"]
        if not cursor:
            break
    assert len(seen) == 7
    assert set(seen) == made


def test_trial_starts_without_payment_and_the_first_payment_activates_it(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow], database_url: str
) -> None:
    from core.errors import Conflict
    from tests.harness.factories import start_trial

    api, key = sandbox
    client = sdk(key)
    product = make_product(api, price="5")
    link = client.subscriptions.create_session(
        product_id=product["id"],
        frequency=Duration(value=30, unit="days"),
        trial_period=Duration(value=7, unit="days"),
    )
    sub_uuid = start_trial(database_url, link.uuid, telegram_user_id=777)
    trial = client.subscriptions.get(sub_uuid)
    assert trial.subscription_status.value == "trial"
    assert trial.from_ == ""
    assert trial.currency_id == 0
    assert (
        6.9 * 86_400
        < (trial.next_billing_date - trial.created_at).total_seconds()
        <= 7 * 86_400 + 1
    )

    # One trial per Telegram user per product, even through another session.
    again = client.subscriptions.create_session(
        product_id=product["id"],
        frequency=Duration(value=30, unit="days"),
        trial_period=Duration(value=7, unit="days"),
    )
    with pytest.raises(Conflict, match="already had a trial"):
        start_trial(database_url, again.uuid, telegram_user_id=777)
    other_user = start_trial(database_url, again.uuid, telegram_user_id=778)
    assert other_user != sub_uuid

    address = api.get(f"/transaction/session-checkout/{link.uuid}").json()["depositAddress"]
    tx = pay_session(database_url, address, 5_000_000)
    active = client.subscriptions.get(sub_uuid)
    assert active.subscription_status.value == "active"
    assert active.from_ == "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
    assert active.currency_id > 0
    assert api.get(f"/transaction/subscription/{sub_uuid}").json()["tx"] == tx
    # The paid period starts when the trial ends.
    assert (
        36.9 * 86_400
        < (active.next_billing_date - active.created_at).total_seconds()
        <= 37 * 86_400 + 1
    )


def set_row(database_url: str, statement: str, **params: object) -> None:
    from sqlalchemy import text

    from core.db import create_engine, create_sessionmaker, transaction

    async def run() -> None:
        engine = create_engine(database_url, pool=False)
        try:
            async with transaction(create_sessionmaker(engine)) as session:
                await session.execute(text(statement), params)
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_expired_subscription_shows_as_cancelled_and_stopped_in_v1_and_inactive_in_papaya(
    sandbox: tuple[Api, str], sdk: Callable[[str], QBitFlow], base_url: str, database_url: str
) -> None:
    api, key = sandbox
    product = make_product(api, price="2")
    link = sdk(key).subscriptions.create_session(
        product_id=product["id"], frequency=Duration(value=1, unit="days")
    )
    pay_session(
        database_url,
        api.get(f"/transaction/session-checkout/{link.uuid}").json()["depositAddress"],
        2_000_000,
    )
    [item] = api.get("/transaction/payments/combined").json()["items"]
    # The scheduler issue expires subscriptions; here the row is put in that state directly.
    set_row(
        database_url,
        "UPDATE subscriptions SET status = 'expired' WHERE uuid = :u",
        u=item["subscriptionUUID"],
    )
    view = sdk(key).subscriptions.get(item["subscriptionUUID"])
    assert view.subscription_status.value == "cancelled"
    assert view.stopped is True
    assert (
        api.get(f"/transaction/subscription/{item['subscriptionUUID']}").json()["status"]
        == "expired"
    )
    papaya = httpx.Client(base_url=base_url + "/api", headers={"X-API-Key": key})
    [sub] = papaya.get("/subscriptions").json()["items"]
    assert sub["isActive"] is False


def test_expiry_job_expires_open_sessions_and_writes_the_event(
    sandbox: tuple[Api, str], database_url: str
) -> None:
    from sqlalchemy import select

    from core.checkout import settlement
    from core.checkout.context import CheckoutContext
    from core.db import create_engine, create_sessionmaker, transaction
    from core.models import CheckoutSession, Event
    from tests.harness.factories import test_settings

    api, _ = sandbox
    session = new_session(api, "1")
    set_row(
        database_url,
        "UPDATE checkout_sessions SET expires_at = :t WHERE uuid = :u",
        t=datetime.now(UTC) - timedelta(minutes=1),
        u=session["uuid"],
    )

    async def run() -> list[str]:
        engine = create_engine(database_url, pool=False)
        try:
            context = CheckoutContext.from_settings(test_settings(database_url))
            async with transaction(create_sessionmaker(engine)) as db:
                assert await settlement.expire_due_sessions(db, context) >= 1
            async with create_sessionmaker(engine)() as db:
                checkout = await db.scalar(
                    select(CheckoutSession).where(CheckoutSession.uuid == session["uuid"])
                )
                assert checkout is not None
                return list(
                    await db.scalars(select(Event.type).where(Event.session_id == checkout.id))
                )
        finally:
            await engine.dispose()

    assert asyncio.run(run()) == ["session.expired"]
    assert api.get(f"/transaction/session-checkout/{session['uuid']}").json()["status"] == "expired"


def test_invoice_metadata_keeps_exact_numbers(sandbox: tuple[Api, str], base_url: str) -> None:
    _, key = sandbox
    papaya = httpx.Client(base_url=base_url + "/api", headers={"X-API-Key": key})
    body = b'{"rate": "1", "metadata": {"": 0.0, "price": 0.30000000000000004, "n": [1, 2.5]}}'
    created = papaya.post("/invoice", content=body, headers={"Content-Type": "application/json"})
    assert created.status_code == 200, created.text
    raw = papaya.get(f"/invoice/{created.json()['id']}").text
    assert '"price":0.30000000000000004' in raw
    assert '"n":[1,2.5]' in raw
