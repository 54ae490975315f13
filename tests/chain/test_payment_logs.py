"""The watcher's steps against a real anvil node log each payment seen, confirmed and orphaned,
and each session status change they decide, once (the lines' rules: tests/core/)."""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping
from typing import Any

import pytest

from chain.devnet import Devnet, transfer
from tests.harness.chains import devnet_or_skip, drain, watcher_settings
from tests.harness.factories import Api
from tests.harness.logs import captured_logs, lines_of, rendered

pytestmark = pytest.mark.slow
CHAIN = 31377  # a chain of its own: the suite's database keeps other modules' cursors


@pytest.fixture(scope="module")
def devnet() -> Iterator[Devnet]:
    yield from devnet_or_skip(chains=((CHAIN, 6),))


def new_session(sandbox: Api, price: str) -> dict[str, Any]:
    created = sandbox.post(
        "/transaction/session-checkout",
        json={"productName": "Logged", "description": "d", "price": price},
    )
    assert created.status_code == 200, created.text
    return dict(created.json())


def changes(
    lines: list[MutableMapping[str, Any]], session: dict[str, Any]
) -> list[tuple[str, str]]:
    return [
        (line["previous"], line["status"])
        for line in lines_of(lines, "session_status_changed", session_uuid=session["uuid"])
    ]


def test_a_payment_is_logged_when_seen_then_when_confirmed(
    devnet: Devnet, sandbox: Api, database_url: str
) -> None:
    settings = watcher_settings(database_url, devnet)
    session = new_session(sandbox, "5")
    node = devnet.node(CHAIN)
    with captured_logs() as lines:
        tx = transfer(node.rpc_url, devnet.tokens[CHAIN][0], session["depositAddress"], 5_000_000)
        drain(settings)
        [seen] = lines_of(lines, "payment_seen", session_uuid=session["uuid"])
        assert lines_of(lines, "payment_confirmed", session_uuid=session["uuid"]) == []
        assert changes(lines, session) == [("created", "waitingConfirmation")]
        node.mine(2)
        drain(settings)
        drain(settings)  # a step with nothing new says nothing again
    assert (seen["chain_id"], seen["tx_hash"]) == (CHAIN, tx.lower())
    assert (seen["amount_base_units"], seen["amount_usd"], seen["token"]) == (
        "5000000",
        "5",
        "USDT",
    )
    [confirmed] = lines_of(lines, "payment_confirmed", session_uuid=session["uuid"])
    assert confirmed["payment_uuid"] == seen["payment_uuid"]
    assert (confirmed["tx_hash"], confirmed["amount_base_units"]) == (tx.lower(), "5000000")
    assert len(lines_of(lines, "payment_seen", session_uuid=session["uuid"])) == 1
    assert changes(lines, session) == [
        ("created", "waitingConfirmation"),
        ("waitingConfirmation", "completed"),
    ]
    [completed] = lines_of(
        lines, "session_status_changed", session_uuid=session["uuid"], status="completed"
    )
    assert (completed["chain_id"], completed["tx_hash"]) == (CHAIN, tx.lower())
    assert completed["paid_usd"] == "5"
    for line in lines:
        rendered(line)


def test_a_reorg_logs_the_orphaned_payment_and_the_session_going_back(
    devnet: Devnet, sandbox: Api, database_url: str
) -> None:
    settings = watcher_settings(database_url, devnet)
    session = new_session(sandbox, "2")
    node = devnet.node(CHAIN)
    with captured_logs() as lines:
        tx = transfer(node.rpc_url, devnet.tokens[CHAIN][0], session["depositAddress"], 2_000_000)
        drain(settings)
        node.rpc("anvil_reorg", [1, []])  # the block with the payment is replaced
        node.mine(3)
        drain(settings)
    [orphaned] = lines_of(lines, "payment_orphaned", session_uuid=session["uuid"])
    assert orphaned["log_level"] == "warning"
    assert (orphaned["chain_id"], orphaned["tx_hash"]) == (CHAIN, tx.lower())
    assert orphaned["amount_base_units"] == "2000000"
    assert lines_of(lines, "payment_confirmed", session_uuid=session["uuid"]) == []
    assert changes(lines, session) == [
        ("created", "waitingConfirmation"),
        ("waitingConfirmation", "created"),
    ]
    [back] = lines_of(
        lines, "session_status_changed", session_uuid=session["uuid"], status="created"
    )
    assert (back["chain_id"], back["tx_hash"], back["paid_usd"]) == (None, None, "0")
