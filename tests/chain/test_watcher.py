"""The chain watcher against two real anvil nodes (6- and 18-decimal tokens), no mocked RPC."""

from __future__ import annotations

from typing import Any

import pytest

from chain.devnet import Devnet, transfer
from tests.harness.chains import devnet as devnet  # noqa: F401  (module-scoped fixture)
from tests.harness.chains import drain, watcher_settings
from tests.harness.factories import Api, Tenant

pytestmark = pytest.mark.slow
A, B = 31337, 31338


@pytest.fixture
def box(base_url: str, tenant: Tenant, api: Api) -> Api:
    created = api.post(
        "/api-key", json={"name": "sandbox", "userId": tenant.owner_id, "test": True}
    )
    return Api(base_url, created.json()["key"])


def new_session(box: Api, price: str = "10", **extra: Any) -> dict[str, Any]:
    response = box.post(
        "/transaction/session-checkout",
        json={"productName": "Item", "description": "d", "price": price, **extra},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def status_of(box: Api, session: dict[str, Any]) -> dict[str, Any]:
    return dict(box.get(f"/transaction/session-checkout/{session['uuid']}").json())


def pay(devnet: Devnet, chain_id: int, to: str, amount: int) -> str:
    node = devnet.node(chain_id)
    return transfer(node.rpc_url, devnet.tokens[chain_id][0], to, amount)


def test_exact_payment_is_seen_then_completed(devnet: Devnet, box: Api, database_url: str) -> None:
    settings = watcher_settings(database_url, devnet)
    session = new_session(box)
    pay(devnet, A, session["depositAddress"], 10_000_000)
    drain(settings)
    seen = status_of(box, session)
    assert seen["status"] == "waitingConfirmation"
    devnet.node(A).mine(1)
    drain(settings)
    done = status_of(box, session)
    assert done["status"] == "completed"
    assert done["paidUsd"] == 10
    [payment] = box.get("/transaction/payments").json()["items"]
    info = box.get(f"/transaction/info/{payment['transactionHash']}").json()
    assert info["status"] == "confirmed"
    assert info["confirmations"] >= 2


def test_underpay_then_top_up_across_chains_and_decimals(
    devnet: Devnet, box: Api, database_url: str
) -> None:
    settings = watcher_settings(database_url, devnet)
    session = new_session(box, "19.99")
    pay(devnet, A, session["depositAddress"], 9_990_000)
    devnet.node(A).mine(2)
    drain(settings)
    pending = status_of(box, session)
    assert pending["status"] == "pending"
    assert pending["remainingUsd"] == 10
    pay(devnet, B, session["depositAddress"], 10 * 10**18)
    devnet.node(B).mine(2)
    drain(settings)
    done = status_of(box, session)
    assert done["status"] == "completed"
    assert done["underpaid"] is False
    amounts = sorted(p["amountBaseUnits"] for p in box.get("/transaction/payments").json()["items"])
    assert amounts == ["10000000000000000000", "9990000"]


def test_overpay_is_completed_and_flagged(devnet: Devnet, box: Api, database_url: str) -> None:
    settings = watcher_settings(database_url, devnet)
    session = new_session(box, "1")
    pay(devnet, B, session["depositAddress"], 1_500_000_000_000_000_001)
    devnet.node(B).mine(2)
    drain(settings)
    done = status_of(box, session)
    assert (done["status"], done["overpaid"]) == ("completed", True)
    [payment] = box.get("/transaction/payments").json()["items"]
    assert payment["amountBaseUnits"] == "1500000000000000001"
    assert (
        box.get(f"/transaction/info/{payment['transactionHash']}").json()["amountUsd"]
        == 1.500000000000000001
    )


def test_zero_value_and_unknown_addresses_are_ignored(
    devnet: Devnet, box: Api, database_url: str
) -> None:
    settings = watcher_settings(database_url, devnet)
    session = new_session(box, "1")
    pay(devnet, A, session["depositAddress"], 0)
    pay(devnet, A, "0x000000000000000000000000000000000000dEaD", 5_000_000)
    devnet.node(A).mine(2)
    drain(settings)
    assert status_of(box, session)["status"] == "created"
    assert box.get("/transaction/payments").json()["items"] == []


def test_reorg_before_finality_orphans_the_payment(
    devnet: Devnet, box: Api, database_url: str
) -> None:
    settings = watcher_settings(database_url, devnet)
    session = new_session(box, "2")
    pay(devnet, A, session["depositAddress"], 2_000_000)
    drain(settings)
    assert status_of(box, session)["status"] == "waitingConfirmation"
    devnet.node(A).rpc("anvil_reorg", [1, []])  # the block with the payment is replaced
    devnet.node(A).mine(3)
    drain(settings)
    after = status_of(box, session)
    assert after["status"] == "created"
    payments = box.get("/transaction/payments").json()["items"]
    assert payments == []  # orphaned payments are not credited
    events = event_types(database_url, session["uuid"])
    assert "payment.orphaned" in events
    assert "session.completed" not in events


def test_reorg_reincluding_the_transfer_credits_it_once(
    devnet: Devnet, box: Api, database_url: str
) -> None:
    settings = watcher_settings(database_url, devnet)
    node = devnet.node(A)
    session = new_session(box, "3")
    tx_hash = pay(devnet, A, session["depositAddress"], 3_000_000)
    drain(settings)
    assert status_of(box, session)["status"] == "waitingConfirmation"
    raw = node.rpc("eth_getTransactionByHash", [tx_hash])
    request = {
        "from": raw["from"],
        "to": raw["to"],
        "data": raw["input"],
        "gas": raw["gas"],
        "nonce": raw["nonce"],
    }
    node.rpc("anvil_reorg", [1, [[request, 0]]])  # same transfer, new block (and a new signature)
    node.mine(2)
    drain(settings)
    done = status_of(box, session)
    assert done["status"] == "completed"
    assert done["paidUsd"] == 3
    credited = box.get("/transaction/payments").json()["items"]
    assert len(credited) == 1
    assert credited[0]["amount"] == 3


def event_types(database_url: str, session_uuid: str) -> list[str]:
    import asyncio

    from sqlalchemy import select

    from core.db import create_engine, create_sessionmaker
    from core.models import CheckoutSession, Event

    async def run() -> list[str]:
        engine = create_engine(database_url, pool=False)
        try:
            async with create_sessionmaker(engine)() as session:
                checkout = await session.scalar(
                    select(CheckoutSession).where(CheckoutSession.uuid == session_uuid)
                )
                assert checkout is not None
                rows = await session.scalars(
                    select(Event.type).where(Event.session_id == checkout.id).order_by(Event.id)
                )
                return list(rows)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_payment_after_expiry_is_recorded_as_late(box: Api, database_url: str) -> None:
    """A chain of its own, since the test moves its clock past the session's expiry."""
    from tests.harness.chains import devnet_or_skip

    for late_net in devnet_or_skip(chains=((31339, 6),)):
        settings = watcher_settings(database_url, late_net)
        session = new_session(box, "4")
        node = late_net.node(31339)
        node.rpc("evm_setNextBlockTimestamp", [session["expiresAt"] + 120])
        pay(late_net, 31339, session["depositAddress"], 4_000_000)
        node.mine(2)
        drain(settings)
        view = status_of(box, session)
        assert view["late"] is True
        assert view["status"] != "completed"
        [payment] = box.get("/transaction/payments").json()["items"]
        assert payment["late"] is True
        assert payment["amount"] == 4
        assert "payment.late" in event_types(database_url, session["uuid"])
