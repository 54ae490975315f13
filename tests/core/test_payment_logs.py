"""`serve` says what happened to money: one structured line per payment seen, confirmed or
orphaned, per session status change and per failed webhook delivery; only once its transaction
has committed, and never with a secret in it. (The watcher's own lines: tests/chain/.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, MutableMapping
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import select, update

from core.chains import ChainConfig, TokenConfig
from core.checkout import settlement
from core.checkout.context import CheckoutContext
from core.db import create_engine, create_sessionmaker, transaction
from core.models import CheckoutSession
from core.payments import ingest as payments_ingest
from core.payments.schemas import Transfer
from tests.harness.factories import Api, Tenant, test_settings
from tests.harness.logs import captured_logs, lines_of, rendered
from tests.harness.receiver import Receiver, running_receiver
from tests.webhooks.conftest import send_due, settle_leftovers
from tests.webhooks.test_delivery import new_endpoint, queue_test

CHAIN = 31378  # handed-over transfers only: its RPC URL is never called
TOKEN = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    with running_receiver() as running:
        yield running


def new_session(api: Api, price: str = "2", **extra: Any) -> dict[str, Any]:
    created = api.post(
        "/transaction/session-checkout",
        json={"productName": "Logged", "description": "d", "price": price, **extra},
    )
    assert created.status_code == 200, created.text
    return dict(created.json())


def sighting(to: str, *, final: bool, tx_hash: str) -> Transfer:
    return Transfer(
        chain_id=CHAIN,
        tx_hash=tx_hash,
        log_index=7,
        block_number=20,
        block_hash="0x" + "12" * 32,
        block_timestamp=datetime.now(UTC),
        from_address="0x" + "cd" * 20,
        to_address=to.lower(),
        token_contract=TOKEN.lower(),
        amount_base_units=2_000_000,
        final=final,
    )


def chain_settings(database_url: str) -> Any:
    chain = ChainConfig(
        id=CHAIN,
        rpc_urls=("http://127.0.0.1:9",),
        confirmations=2,
        test=True,
        tokens=(TokenConfig(symbol="USDT", contract=TOKEN, decimals=6),),
    )
    return test_settings(database_url, chains=[chain])


def test_a_payment_is_logged_when_its_transaction_commits_never_when_it_rolls_back(
    sandbox: Api, database_url: str
) -> None:
    session = new_session(sandbox)
    tx_hash = "0x" + "9a" * 32
    context = CheckoutContext.from_settings(chain_settings(database_url))
    seen = sighting(session["depositAddress"], final=False, tx_hash=tx_hash)

    async def run(lines: list[MutableMapping[str, Any]]) -> None:
        engine = create_engine(database_url)
        try:
            sessionmaker = create_sessionmaker(engine)
            async with sessionmaker() as db:
                # The first step on this chain also inserts its currency row; the rollback takes
                # it back, so the context must not keep that row's id for the next step.
                await payments_ingest.apply_transfers(db, context, [seen])
                await db.rollback()  # the step failed: nothing it decided happened
                await db.execute(select(CheckoutSession.id).limit(1))
                await db.commit()  # a later transaction of the same session writes none of it
            assert lines_of(lines, "payment_seen", session_uuid=session["uuid"]) == []
            assert lines_of(lines, "session_status_changed", session_uuid=session["uuid"]) == []
            async with transaction(sessionmaker) as db:
                await payments_ingest.apply_transfers(db, context, [seen])
                async with db.begin_nested():  # a savepoint released is not the commit
                    await db.execute(select(CheckoutSession.id).limit(1))
                assert lines_of(lines, "payment_seen", session_uuid=session["uuid"]) == []
            async with transaction(sessionmaker) as db:  # seen again by the next step: no line
                await payments_ingest.apply_transfers(db, context, [seen])
        finally:
            await engine.dispose()

    with captured_logs() as lines:
        asyncio.run(run(lines))
    [line] = lines_of(lines, "payment_seen", session_uuid=session["uuid"])
    assert line["log_level"] == "info"
    assert line["chain_id"] == CHAIN
    assert line["tx_hash"] == tx_hash
    assert line["log_index"] == 7
    assert line["amount_base_units"] == "2000000"
    assert line["amount_usd"] == "2"
    assert line["token"] == "USDT"
    assert line["token_contract"] == TOKEN
    assert line["payment_uuid"]
    [change] = lines_of(lines, "session_status_changed", session_uuid=session["uuid"])
    assert (change["previous"], change["status"]) == ("created", "waitingConfirmation")
    assert (change["chain_id"], change["tx_hash"]) == (CHAIN, tx_hash)
    assert (change["price_usd"], change["paid_usd"]) == ("2", "2")
    for logged in lines:
        rendered(logged)


def test_a_payment_found_already_final_logs_seen_then_confirmed_like_its_events(
    sandbox: Api, database_url: str
) -> None:
    session = new_session(sandbox)
    tx_hash = "0x" + "9b" * 32
    context = CheckoutContext.from_settings(chain_settings(database_url))

    async def run() -> None:
        engine = create_engine(database_url)
        try:
            async with transaction(create_sessionmaker(engine)) as db:
                await payments_ingest.apply_transfers(
                    db, context, [sighting(session["depositAddress"], final=True, tx_hash=tx_hash)]
                )
        finally:
            await engine.dispose()

    with captured_logs() as lines:
        asyncio.run(run())
    mine = [line for line in lines if line.get("session_uuid") == session["uuid"]]
    assert [line["event"] for line in mine] == [
        "payment_seen",
        "payment_confirmed",
        "session_status_changed",
    ]
    assert (mine[2]["previous"], mine[2]["status"]) == ("created", "completed")


def test_cancelling_through_the_api_logs_the_status_change(sandbox: Api) -> None:
    session = new_session(sandbox, "3")
    with captured_logs() as lines:
        cancelled = sandbox.post(f"/transaction/session-checkout/{session['uuid']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        refused = sandbox.post(f"/transaction/session-checkout/{session['uuid']}/cancel")
        assert refused.status_code == 409, refused.text
    [change] = lines_of(lines, "session_status_changed", session_uuid=session["uuid"])
    assert (change["previous"], change["status"]) == ("created", "cancelled")
    assert (change["chain_id"], change["tx_hash"]) == (None, None)
    assert (change["price_usd"], change["paid_usd"]) == ("3", "0")
    rendered(change)


def test_expiry_logs_the_status_change(sandbox: Api, database_url: str) -> None:
    session = new_session(sandbox, "4")
    context = CheckoutContext.from_settings(test_settings(database_url))

    async def run() -> None:
        engine = create_engine(database_url)
        try:
            async with transaction(create_sessionmaker(engine)) as db:
                await db.execute(
                    update(CheckoutSession)
                    .where(CheckoutSession.uuid == session["uuid"])
                    .values(expires_at=datetime(2000, 1, 1, tzinfo=UTC))
                )
            async with transaction(create_sessionmaker(engine)) as db:
                await settlement.expire_due_sessions(db, context)
        finally:
            await engine.dispose()

    with captured_logs() as lines:
        asyncio.run(run())
    [change] = lines_of(lines, "session_status_changed", session_uuid=session["uuid"])
    assert (change["previous"], change["status"]) == ("created", "expired")


def test_failed_webhook_deliveries_are_logged_without_secrets_urls_or_answers(
    sandbox: Api, tenant: Tenant, receiver: Receiver, database_url: str, settings: Any
) -> None:
    settle_leftovers(database_url)  # only this test's deliveries are due
    receiver.answer("/down", (500, {}, "receiver says: internal detail"))
    endpoint = new_endpoint(sandbox, receiver.url("/down"), eventTypes=["webhook.test"])
    event = queue_test(sandbox, endpoint)
    # A session's own webhookUrl whose query carries the merchant's token, on a closed port.
    session = new_session(sandbox, webhookUrl="http://127.0.0.1:9/hook?token=tok_do_not_log")
    assert sandbox.post(f"/transaction/session-checkout/{session['uuid']}/cancel").is_success
    with captured_logs() as lines:
        assert send_due(database_url, settings) == 2
    settle_leftovers(database_url)
    [failed] = lines_of(lines, "webhook_delivery_failed", endpoint_uuid=endpoint["uuid"])
    assert failed["log_level"] == "warning"
    assert failed["event_id"] == event["eventId"]
    assert failed["event_type"] == "webhook.test"
    assert (failed["attempt"], failed["status_code"], failed["error"]) == (1, 500, "HTTP 500")
    assert failed["next_attempt_at"] is not None
    assert failed["gave_up"] is False
    [own] = lines_of(lines, "webhook_delivery_failed", event_type="session.cancelled")
    assert own["endpoint_uuid"] is None
    assert own["target_host"] == "127.0.0.1"
    assert own["status_code"] is None
    assert own["error"].startswith("connection failed")
    text = "\n".join(rendered(line) for line in lines)
    for secret in (
        endpoint["secret"],
        tenant.webhook_secret,
        tenant.key,
        sandbox.client.headers["X-API-Key"],
        "tok_do_not_log",
        "internal detail",
    ):
        assert secret
        assert secret not in text
