"""What a watcher step asks the database before it settles anything (`lock_step_sessions`):
nothing on a step without transfers, and two statements with transfers (the chain's seen
payments now final, then every session involved locked in one ordered pass). A step runs for
every block range of every chain, so one statement more here is one more on every step."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import event

from core.db import create_engine, create_sessionmaker, transaction
from core.payments import ingest
from core.payments.schemas import Transfer

CHAIN = 31337


def transfer_to(address: str) -> Transfer:
    return Transfer(
        chain_id=CHAIN,
        tx_hash="0x" + secrets.token_hex(32),
        log_index=0,
        block_number=10,
        block_hash="0x" + secrets.token_hex(32),
        block_timestamp=datetime(2027, 1, 1, tzinfo=UTC),
        from_address="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        to_address=address,
        token_contract="0x5FbDB2315678afecb367f032d93F642f64180aa3",
        amount_base_units=1_000_000,
        final=True,
    )


async def statements_of_lock(database_url: str, transfers: list[Transfer]) -> list[str]:
    engine = create_engine(database_url)
    seen: list[str] = []

    def record(*args: Any) -> None:
        seen.append(str(args[2]).split()[0].upper())  # the statement's first word

    try:
        async with transaction(create_sessionmaker(engine)) as db:
            await db.connection()  # BEGIN and the connection's set-up are not the step's
            event.listen(engine.sync_engine, "before_cursor_execute", record)
            locks = await ingest.lock_step_sessions(db, CHAIN, transfers, 5)
            event.remove(engine.sync_engine, "before_cursor_execute", record)
        assert locks.sessions_by_address == {}
    finally:
        await engine.dispose()
    return seen


async def test_a_step_without_transfers_locks_nothing_and_asks_nothing(database_url: str) -> None:
    assert await statements_of_lock(database_url, []) == []


async def test_a_step_with_transfers_asks_twice_whatever_their_number(database_url: str) -> None:
    addresses = ["0x" + secrets.token_hex(20) for _ in range(200)]
    one = await statements_of_lock(database_url, [transfer_to(addresses[0])])
    many = await statements_of_lock(database_url, [transfer_to(a) for a in addresses])
    assert one == many == ["SELECT", "SELECT"]
