"""A payment on a real anvil chain ends as a signed `session.completed` at the merchant."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from qbitflow.dto.transaction.session import SessionWebhookResponse
from qbitflow.dto.transaction.status import TransactionStatusValue
from standardwebhooks import Webhook

from chain.devnet import Devnet, transfer
from tests.harness import qbitflow21
from tests.harness.chains import devnet_or_skip, drain, watcher_settings
from tests.harness.factories import Api, Tenant
from tests.harness.receiver import Receiver
from tests.webhooks.conftest import send_due
from tests.webhooks.test_delivery import new_endpoint

pytestmark = pytest.mark.slow
# A chain id of its own: the suite's database keeps other modules' cursors for 31337/31338.
CHAIN = 31361  # (31339-31352 are taken by tests/chain modules)


@pytest.fixture(scope="module")
def devnet() -> Iterator[Devnet]:
    yield from devnet_or_skip(chains=((CHAIN, 6),))


def test_anvil_payment_is_delivered_as_session_completed(
    devnet: Devnet, sandbox: Api, tenant: Tenant, receiver: Receiver, database_url: str
) -> None:
    settings = watcher_settings(database_url, devnet)
    endpoint = new_endpoint(sandbox, receiver.url("/merchant"))
    created = sandbox.post(
        "/transaction/session-checkout",
        json={
            "productName": "Ebook",
            "description": "PDF",
            "price": "12.5",
            "webhookUrl": receiver.url("/session-hook"),
        },
    )
    assert created.status_code == 200, created.text
    session: dict[str, Any] = created.json()
    node = devnet.node(CHAIN)
    tx = transfer(node.rpc_url, devnet.tokens[CHAIN][0], session["depositAddress"], 12_500_000)
    drain(settings)
    send_due(database_url, settings)
    seen = [json.loads(r.body)["type"] for r in receiver.at("/merchant")]
    assert seen == ["payment.detected"]  # one block: seen, not final yet
    node.mine(2)
    drain(settings)
    send_due(database_url, settings)

    by_type = {json.loads(r.body)["type"]: r for r in receiver.at("/merchant")}
    assert set(by_type) == {"payment.detected", "payment.confirmed", "session.completed"}
    completed = by_type["session.completed"]
    assert Webhook(endpoint["secret"]).verify(completed.body, completed.headers)
    headers = completed.headers
    assert (
        qbitflow21.verify(
            endpoint["secret"],
            headers["x-webhook-timestamp"],
            headers["x-webhook-signature-256"],
            completed.body,
        )
        is True
    )
    parsed = SessionWebhookResponse.model_validate_json(completed.body)
    assert parsed.uuid == session["uuid"]
    assert parsed.status.status is TransactionStatusValue.COMPLETED
    assert parsed.status.tx_hash == tx.lower()
    assert parsed.session.price == 12.5
    # Payment events carry the session as that payment left it.
    detected = SessionWebhookResponse.model_validate_json(by_type["payment.detected"].body)
    assert detected.status.status is TransactionStatusValue.WAITING_CONFIRMATION
    payment_done = SessionWebhookResponse.model_validate_json(by_type["payment.confirmed"].body)
    assert payment_done.status.status is TransactionStatusValue.COMPLETED
    confirmed = json.loads(by_type["payment.confirmed"].body)["data"]
    assert confirmed["txHash"] == tx.lower()
    assert confirmed["amountBaseUnits"] == "12500000"
    assert confirmed["confirmations"] >= 2

    # The session's own webhookUrl hears the same story, signed with the organization's secret.
    own = receiver.at("/session-hook")
    assert sorted(json.loads(r.body)["type"] for r in own) == sorted(by_type)
    for received in own:
        assert Webhook(tenant.webhook_secret).verify(received.body, received.headers)
