"""The chain watcher against two real anvil nodes (6- and 18-decimal tokens), no mocked RPC."""

from __future__ import annotations

from typing import Any

import pytest

from chain.devnet import Devnet, transfer
from tests.harness.chains import devnet as devnet  # noqa: F401  (module-scoped fixture)
from tests.harness.chains import drain, watcher_settings
from tests.harness.factories import Api

pytestmark = pytest.mark.slow
A, B = 31337, 31338


def new_session(sandbox: Api, price: str = "10", **extra: Any) -> dict[str, Any]:
    response = sandbox.post(
        "/transaction/session-checkout",
        json={"productName": "Item", "description": "d", "price": price, **extra},
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def status_of(sandbox: Api, session: dict[str, Any]) -> dict[str, Any]:
    return dict(sandbox.get(f"/transaction/session-checkout/{session['uuid']}").json())


def pay(devnet: Devnet, chain_id: int, to: str, amount: int) -> str:
    node = devnet.node(chain_id)
    return transfer(node.rpc_url, devnet.tokens[chain_id][0], to, amount)


def test_exact_payment_is_seen_then_completed(
    devnet: Devnet, sandbox: Api, database_url: str
) -> None:
    settings = watcher_settings(database_url, devnet)
    session = new_session(sandbox)
    pay(devnet, A, session["depositAddress"], 10_000_000)
    drain(settings)
    seen = status_of(sandbox, session)
    assert seen["status"] == "waitingConfirmation"
    devnet.node(A).mine(1)
    drain(settings)
    done = status_of(sandbox, session)
    assert done["status"] == "completed"
    assert done["paidUsd"] == 10
    [payment] = sandbox.get("/transaction/payments").json()["items"]
    info = sandbox.get(f"/transaction/info/{payment['transactionHash']}").json()
    assert info["status"] == "confirmed"
    assert info["confirmations"] >= 2


def test_underpay_then_top_up_across_chains_and_decimals(
    devnet: Devnet, sandbox: Api, database_url: str
) -> None:
    settings = watcher_settings(database_url, devnet)
    session = new_session(sandbox, "19.99")
    pay(devnet, A, session["depositAddress"], 9_990_000)
    devnet.node(A).mine(2)
    drain(settings)
    pending = status_of(sandbox, session)
    assert pending["status"] == "pending"
    assert pending["remainingUsd"] == 10
    pay(devnet, B, session["depositAddress"], 10 * 10**18)
    devnet.node(B).mine(2)
    drain(settings)
    done = status_of(sandbox, session)
    assert done["status"] == "completed"
    assert done["underpaid"] is False
    amounts = sorted(
        p["amountBaseUnits"] for p in sandbox.get("/transaction/payments").json()["items"]
    )
    assert amounts == ["10000000000000000000", "9990000"]


def test_overpay_is_completed_and_flagged(devnet: Devnet, sandbox: Api, database_url: str) -> None:
    settings = watcher_settings(database_url, devnet)
    session = new_session(sandbox, "1")
    pay(devnet, B, session["depositAddress"], 1_500_000_000_000_000_001)
    devnet.node(B).mine(2)
    drain(settings)
    done = status_of(sandbox, session)
    assert (done["status"], done["overpaid"]) == ("completed", True)
    [payment] = sandbox.get("/transaction/payments").json()["items"]
    assert payment["amountBaseUnits"] == "1500000000000000001"
    assert (
        sandbox.get(f"/transaction/info/{payment['transactionHash']}").json()["amountUsd"]
        == 1.500000000000000001
    )


def test_zero_value_and_unknown_addresses_are_ignored(
    devnet: Devnet, sandbox: Api, database_url: str
) -> None:
    settings = watcher_settings(database_url, devnet)
    session = new_session(sandbox, "1")
    pay(devnet, A, session["depositAddress"], 0)
    pay(devnet, A, "0x000000000000000000000000000000000000dEaD", 5_000_000)
    devnet.node(A).mine(2)
    drain(settings)
    assert status_of(sandbox, session)["status"] == "created"
    assert sandbox.get("/transaction/payments").json()["items"] == []


def test_reorg_before_finality_orphans_the_payment(
    devnet: Devnet, sandbox: Api, database_url: str
) -> None:
    settings = watcher_settings(database_url, devnet)
    session = new_session(sandbox, "2")
    pay(devnet, A, session["depositAddress"], 2_000_000)
    drain(settings)
    assert status_of(sandbox, session)["status"] == "waitingConfirmation"
    devnet.node(A).rpc("anvil_reorg", [1, []])  # the block with the payment is replaced
    devnet.node(A).mine(3)
    drain(settings)
    after = status_of(sandbox, session)
    assert after["status"] == "created"
    payments = sandbox.get("/transaction/payments").json()["items"]
    assert payments == []  # orphaned payments are not credited
    events = event_types(database_url, session["uuid"])
    assert "payment.orphaned" in events
    assert "session.completed" not in events


def test_reorg_reincluding_the_transfer_credits_it_once(
    devnet: Devnet, sandbox: Api, database_url: str
) -> None:
    settings = watcher_settings(database_url, devnet)
    node = devnet.node(A)
    session = new_session(sandbox, "3")
    tx_hash = pay(devnet, A, session["depositAddress"], 3_000_000)
    drain(settings)
    assert status_of(sandbox, session)["status"] == "waitingConfirmation"
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
    done = status_of(sandbox, session)
    assert done["status"] == "completed"
    assert done["paidUsd"] == 3
    credited = sandbox.get("/transaction/payments").json()["items"]
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


def test_payment_after_expiry_is_recorded_as_late(sandbox: Api, database_url: str) -> None:
    """A chain of its own, since the test moves its clock past the session's expiry."""
    from tests.harness.chains import devnet_or_skip

    for late_net in devnet_or_skip(chains=((31339, 6),)):
        settings = watcher_settings(database_url, late_net)
        session = new_session(sandbox, "4")
        node = late_net.node(31339)
        node.rpc("evm_setNextBlockTimestamp", [session["expiresAt"] + 120])
        pay(late_net, 31339, session["depositAddress"], 4_000_000)
        node.mine(2)
        drain(settings)
        view = status_of(sandbox, session)
        assert view["late"] is True
        assert view["status"] != "completed"
        [payment] = sandbox.get("/transaction/payments").json()["items"]
        assert payment["late"] is True
        assert payment["amount"] == 4
        assert "payment.late" in event_types(database_url, session["uuid"])
