"""Backfill on a real anvil node: ranges fetched ahead while the previous step commits, block
times with and without the node's `blockTimestamp`, batches that see a transfer twice, and
deposit addresses whose sessions commit out of id order."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from eth_utils import to_checksum_address
from sqlalchemy import select

from chain.devnet import transfer
from chain.rpc import RpcPool, T
from chain.watcher import ChainWatcher
from core.chains import ChainConfig, TokenConfig
from core.checkout.context import CheckoutContext
from core.db import create_engine, create_sessionmaker, transaction
from core.models import CheckoutSession, DepositAddress, Event, Payment
from core.payments import ingest as payments_ingest
from core.payments.schemas import Transfer
from tests.chain.test_watcher_resilience import db_counts, own_devnet
from tests.harness.chains import watcher_settings
from tests.harness.databases import suite_backend
from tests.harness.factories import Api, Tenant, test_settings

pytestmark = pytest.mark.slow


@dataclass
class RecordingPool(RpcPool):
    """Notes every eth_getLogs range; can hide `blockTimestamp` as nodes without it do."""

    without_block_time: bool = False
    journal: list[tuple[str, int, int]] = field(default_factory=list)

    async def scan_logs(
        self,
        from_block: int,
        to_block: int,
        addresses: list[str],
        topic0: str,
        select: Any,
    ) -> tuple[int, list[T]]:
        self.journal.append(("fetch", from_block, to_block))
        keep = select
        if self.without_block_time:

            def keep(logs: list[dict[str, Any]]) -> Any:
                return select(
                    [{k: v for k, v in log.items() if k != "blockTimestamp"} for log in logs]
                )

        return await super().scan_logs(from_block, to_block, addresses, topic0, keep)


class JournaledWatcher(ChainWatcher):
    """Notes when each step's transaction has committed (in the pool's journal)."""

    async def _commit(
        self, head: int, head_block: Any, final: int, scanned_through: int, **kw: Any
    ) -> None:
        await super()._commit(head, head_block, final, scanned_through, **kw)
        assert isinstance(self.rpc, RecordingPool)
        self.rpc.journal.append(("committed", 0, scanned_through))


def new_session(sandbox: Api, price: str = "1") -> dict[str, Any]:
    created = sandbox.post(
        "/transaction/session-checkout",
        json={"productName": "B", "description": "d", "price": price},
    )
    assert created.status_code == 200, created.text
    return dict(created.json())


def run_watcher(
    database_url: str, settings: Any, chain_id: int, pool: RecordingPool, **kw: Any
) -> None:
    async def run() -> None:
        engine = create_engine(database_url)
        try:
            context = CheckoutContext.from_settings(settings)
            watcher = JournaledWatcher(
                context.registry.chains[chain_id],
                create_sessionmaker(engine),
                context,
                start_block=0,
                rpc=pool,
                **kw,
            )
            try:
                for _ in range(200):
                    if not await watcher.step():
                        break
                else:
                    raise AssertionError("the watcher is still busy")
            finally:
                await watcher.close()
        finally:
            await engine.dispose()

    asyncio.run(run())


def test_backfill_fetches_the_next_range_while_committing_and_credits_each_payment_once(
    sandbox: Api, database_url: str
) -> None:
    with own_devnet(31345) as devnet:
        node = devnet.node(31345)
        token = devnet.tokens[31345][0]
        sessions = [new_session(sandbox) for _ in range(6)]
        for session in sessions:  # one block each, with strangers' transfers in between
            transfer(node.rpc_url, token, session["depositAddress"], 1_000_000)
            transfer(node.rpc_url, token, "0x" + secrets.token_hex(20), 1_000_000)
        node.mine(4)
        head = int(node.rpc("eth_blockNumber"), 16)
        pool = RecordingPool([node.rpc_url])
        run_watcher(
            database_url,
            watcher_settings(database_url, devnet),
            31345,
            pool,
            chunk_blocks=3,
            max_chunk_blocks=3,
        )
    addresses = [s["depositAddress"] for s in sessions]
    assert db_counts(database_url, addresses) == {"payments": 6, "completed": 6, "events": 6}
    fetched = [(start, end) for kind, start, end in pool.journal if kind == "fetch"]
    # Every block asked for exactly once, in order, and never past the head.
    assert fetched[0][0] == 0
    assert all(b[0] == a[1] + 1 for a, b in zip(fetched, fetched[1:], strict=False))
    assert fetched[-1][1] == head
    # Ranges were asked for before the previous step had committed (that is the pipelining).
    ahead = [
        start
        for i, (kind, start, _) in enumerate(pool.journal)
        if kind == "fetch" and ("committed", 0, start - 1) not in pool.journal[:i]
    ]
    assert len(ahead) >= 3


@pytest.mark.parametrize("without_block_time", [False, True])
def test_payments_carry_their_blocks_time_whether_or_not_the_node_sends_it(
    sandbox: Api, database_url: str, without_block_time: bool
) -> None:
    chain_id = 31346 + int(without_block_time)
    with own_devnet(chain_id) as devnet:
        node = devnet.node(chain_id)
        sessions = [new_session(sandbox) for _ in range(2)]
        start = int(node.rpc("eth_getBlockByNumber", ["latest", False])["timestamp"], 16)
        for i, session in enumerate(sessions):
            node.rpc("evm_setNextBlockTimestamp", [start + 1000 * (i + 1)])
            transfer(node.rpc_url, devnet.tokens[chain_id][0], session["depositAddress"], 10**6)
        node.mine(3)
        pool = RecordingPool([node.rpc_url], without_block_time=without_block_time)
        run_watcher(database_url, watcher_settings(database_url, devnet), chain_id, pool)
        blocks = {
            s["depositAddress"]: node.rpc(
                "eth_getBlockByNumber",
                [
                    node.rpc(
                        "eth_getLogs",
                        [
                            {
                                "fromBlock": "0x0",
                                "toBlock": "latest",
                                "topics": [
                                    None,
                                    None,
                                    "0x" + "0" * 24 + s["depositAddress"][2:].lower(),
                                ],
                            }
                        ],
                    )[0]["blockNumber"],
                    False,
                ],
            )
            for s in sessions
        }
    recorded = payment_times(database_url, list(blocks))
    for address, block in blocks.items():
        assert recorded[address] == datetime.fromtimestamp(int(block["timestamp"], 16), tz=UTC)
    assert sorted(recorded.values())[1] - sorted(recorded.values())[0] == (
        datetime.fromtimestamp(start + 2000, tz=UTC) - datetime.fromtimestamp(start + 1000, tz=UTC)
    )


def payment_times(database_url: str, addresses: list[str]) -> dict[str, datetime]:
    async def run() -> dict[str, datetime]:
        engine = create_engine(database_url, pool=False)
        try:
            async with create_sessionmaker(engine)() as session:
                rows = await session.execute(
                    select(Payment.to_address, Payment.block_timestamp).where(
                        Payment.to_address.in_(addresses)
                    )
                )
                return {address: moment for address, moment in rows}
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_a_transfer_seen_twice_in_one_batch_is_one_payment_with_one_set_of_events(
    sandbox: Api, database_url: str
) -> None:
    session = new_session(sandbox, "2")
    token = "0x5FbDB2315678afecb367f032d93F642f64180aa3"
    chain = ChainConfig(
        id=31348,
        rpc_urls=("http://127.0.0.1:9",),  # never called: the transfers are handed over
        confirmations=2,
        test=True,
        tokens=(TokenConfig(symbol="USDT", contract=token, decimals=6),),
    )
    settings = test_settings(database_url, chains=[chain])

    def sighting(*, final: bool, block: int) -> Transfer:
        return Transfer(
            chain_id=31348,
            tx_hash="0x" + "ab" * 32,
            log_index=3,
            block_number=block,
            block_hash="0x" + f"{block:064x}",
            block_timestamp=datetime.now(UTC),
            from_address="0x" + "cd" * 20,
            to_address=session["depositAddress"].lower(),
            token_contract=token.lower(),
            amount_base_units=2_000_000,
            final=final,
        )

    async def run() -> tuple[int, list[str], str]:
        engine = create_engine(database_url)
        try:
            context = CheckoutContext.from_settings(settings)
            sessionmaker = create_sessionmaker(engine)
            async with transaction(sessionmaker) as db:
                applied = await payments_ingest.apply_transfers(
                    db, context, [sighting(final=False, block=10), sighting(final=True, block=11)]
                )
                assert applied[0] is applied[1]
            async with transaction(sessionmaker) as db:  # seen again by a later step
                await payments_ingest.apply_transfers(db, context, [sighting(final=True, block=11)])
            async with sessionmaker() as db:
                payments = (
                    await db.scalars(select(Payment).where(Payment.tx_hash == "0x" + "ab" * 32))
                ).all()
                events = (
                    await db.scalars(
                        select(Event.type)
                        .where(Event.payment_id.in_([p.id for p in payments]))
                        .order_by(Event.id)
                    )
                ).all()
                return len(payments), list(events), payments[0].status
        finally:
            await engine.dispose()

    count, events, status = asyncio.run(run())
    assert (count, status) == (1, "confirmed")
    assert events == ["payment.detected", "payment.confirmed"]


async def insert_session(db: Any, organization_id: int) -> tuple[int, str]:
    """A bare open session with a fresh deposit address (only what the watcher reads)."""
    now = datetime.now(UTC)
    address = to_checksum_address("0x" + secrets.token_hex(20))
    deposit = DepositAddress(
        organization_id=organization_id,
        address=address,
        xpub_fingerprint="late",
        derivation_index=secrets.randbits(30),
    )
    db.add(deposit)
    await db.flush()
    checkout = CheckoutSession(
        organization_id=organization_id,
        test=True,
        kind="payment",
        product_name="Late",
        description="d",
        price_usd=Decimal(1),
        deposit_address_id=deposit.id,
        deposit_address=address,
        bot_token=secrets.token_urlsafe(24),
        expires_at=now + timedelta(hours=1),
    )
    db.add(checkout)
    await db.flush()
    return checkout.id, address


def test_a_session_committed_after_a_newer_one_is_still_watched(
    tenant: Tenant, database_url: str
) -> None:
    """Two API processes: the first to INSERT commits last, after the watcher moved past it."""
    if suite_backend() != "postgresql":
        pytest.skip("SQLite serializes writers: ids always become visible in order")
    chain = ChainConfig(
        id=31349,
        rpc_urls=("http://127.0.0.1:9",),  # not called: only the address set is exercised
        confirmations=2,
        test=True,
        tokens=(TokenConfig(symbol="USDT", contract="0x" + "11" * 20, decimals=6),),
    )
    settings = test_settings(database_url, chains=[chain])

    async def run() -> tuple[int, int, int]:
        engine = create_engine(database_url)
        try:
            context = CheckoutContext.from_settings(settings)
            sessionmaker = create_sessionmaker(engine)
            watcher = ChainWatcher(context.registry.chains[31349], sessionmaker, context)
            known = await watcher.warm_up()
            async with sessionmaker() as slow:  # holds its id, commits later
                slow_id, _ = await insert_session(slow, tenant.organization_id)
                async with transaction(sessionmaker) as quick:
                    quick_id, _ = await insert_session(quick, tenant.organization_id)
                assert quick_id > slow_id
                while_open = await watcher.warm_up()
                await slow.commit()
            after = await watcher.warm_up()
            await watcher.close()
            return known, while_open, after
        finally:
            await engine.dispose()

    known, while_open, after = asyncio.run(run())
    assert while_open == known + 1  # the newer session; the older one is not visible yet
    assert after == known + 2  # found below the cursor once it committed
