"""The bot's FSM storage in the database: state and data shared by every bot replica.

Runs against the suite's migrated database (SQLite or PostgreSQL, as CHAINPAY_TEST_BACKEND
says). The database is shared by the run, so each test talks as a bot id of its own.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from aiogram import Bot, Dispatcher, F, Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.fsm.storage.base import StorageKey
from aiogram.types import Chat, Message, Update, User
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.storage import DatabaseStorage
from core.db import create_engine, create_sessionmaker
from core.models.telegram import TelegramState

_bot_ids = itertools.count(int(datetime.now(UTC).timestamp() * 1000) % 10**9 * 100, 10)


class Invoice(StatesGroup):
    amount = State()
    memo = State()


@pytest.fixture
async def engines(database_url: str) -> AsyncIterator[list[AsyncEngine]]:
    """Two engines on the database: two bot replicas' processes."""
    made = [create_engine(database_url), create_engine(database_url)]
    try:
        yield made
    finally:
        for engine in made:
            await engine.dispose()


@pytest.fixture
def sessionmaker(engines: list[AsyncEngine]) -> async_sessionmaker[AsyncSession]:
    return create_sessionmaker(engines[0])


@pytest.fixture
def storage(sessionmaker: async_sessionmaker[AsyncSession]) -> DatabaseStorage:
    return DatabaseStorage(sessionmaker)


@pytest.fixture
def bot_id() -> int:
    return next(_bot_ids)


def key(bot_id: int, chat_id: int = 1000, user_id: int = 2000, **extra: object) -> StorageKey:
    return StorageKey(bot_id=bot_id, chat_id=chat_id, user_id=user_id, **extra)  # type: ignore[arg-type]


async def rows(sessionmaker: async_sessionmaker[AsyncSession], bot_id: int) -> list[TelegramState]:
    """The stored rows of one bot (keys built by the default key builder start `fsm:<bot id>:`)."""
    async with sessionmaker() as session:
        found = await session.scalars(
            select(TelegramState).where(TelegramState.key.startswith(f"fsm:{bot_id}:"))
        )
        return list(found.all())


async def test_state_set_as_state_object_or_str_reads_back_as_its_name(
    storage: DatabaseStorage, bot_id: int
) -> None:
    assert await storage.get_state(key(bot_id)) is None

    await storage.set_state(key(bot_id), Invoice.amount)
    assert await storage.get_state(key(bot_id)) == "Invoice:amount"

    await storage.set_state(key(bot_id), "Invoice:memo")
    assert await storage.get_state(key(bot_id)) == "Invoice:memo"


async def test_data_round_trips_json_values(storage: DatabaseStorage, bot_id: int) -> None:
    data = {
        "amount_usd": "12.50",
        "count": 3,
        "ratio": 0.25,
        "flag": True,
        "none": None,
        "nested": {"items": [1, "two", {"three": [3]}]},
        "unicode": "счёт €",
    }
    await storage.set_data(key(bot_id), data)

    assert await storage.get_data(key(bot_id)) == data
    assert await storage.get_value(key(bot_id), "count") == 3
    assert await storage.get_state(key(bot_id)) is None


async def test_setting_data_keeps_the_state_and_setting_state_keeps_the_data(
    storage: DatabaseStorage, bot_id: int
) -> None:
    await storage.set_state(key(bot_id), Invoice.amount)
    await storage.set_data(key(bot_id), {"memo": "coffee"})
    await storage.set_state(key(bot_id), Invoice.memo)

    assert await storage.get_state(key(bot_id)) == "Invoice:memo"
    assert await storage.get_data(key(bot_id)) == {"memo": "coffee"}


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"price": Decimal("9.99")}, "Decimal"),
        ({"pair": (1, 2)}, "tuple"),
        ({"by_id": {1: "a"}}, "int key"),
        ({"when": datetime(2026, 1, 1, tzinfo=UTC)}, "datetime"),
        ({"x": float("nan")}, "non-finite"),
    ],
)
async def test_data_that_would_not_round_trip_is_refused_with_a_type_error(
    storage: DatabaseStorage, bot_id: int, bad: dict[str, object], named: str
) -> None:
    await storage.set_data(key(bot_id), {"kept": 1})

    with pytest.raises(TypeError, match=named):
        await storage.set_data(key(bot_id), bad)
    with pytest.raises(TypeError, match=named):
        await storage.update_data(key(bot_id), bad)

    assert await storage.get_data(key(bot_id)) == {"kept": 1}


async def test_a_state_name_longer_than_the_column_is_refused(
    storage: DatabaseStorage, bot_id: int
) -> None:
    with pytest.raises(ValueError, match="longer than 200"):
        await storage.set_state(key(bot_id), "S:" + "x" * 199)

    assert await storage.get_state(key(bot_id)) is None


async def test_update_data_merges_into_the_stored_data_and_returns_the_result(
    storage: DatabaseStorage, bot_id: int
) -> None:
    assert await storage.update_data(key(bot_id), {"a": 1}) == {"a": 1}
    assert await storage.update_data(key(bot_id), {"b": 2, "a": 10}) == {"a": 10, "b": 2}

    assert await storage.get_data(key(bot_id)) == {"a": 10, "b": 2}


async def test_clearing_state_and_data_deletes_the_row(
    storage: DatabaseStorage, sessionmaker: async_sessionmaker[AsyncSession], bot_id: int
) -> None:
    await storage.set_state(key(bot_id), Invoice.amount)
    await storage.update_data(key(bot_id), {"amount_usd": "5"})
    assert len(await rows(sessionmaker, bot_id)) == 1

    await storage.set_state(key(bot_id), None)
    assert len(await rows(sessionmaker, bot_id)) == 1  # the data is still there
    await storage.set_data(key(bot_id), {})
    assert await rows(sessionmaker, bot_id) == []

    # FSMContext.clear() order (state first, then data) and the other order both leave nothing.
    await storage.set_data(key(bot_id), {"a": 1})
    await storage.set_state(key(bot_id), "S:x")
    await storage.set_data(key(bot_id), {})
    await storage.set_state(key(bot_id), None)
    assert await rows(sessionmaker, bot_id) == []

    # Clearing what was never stored, or merging nothing into it, writes no row either.
    await storage.set_state(key(bot_id), None)
    await storage.set_data(key(bot_id), {})
    assert await storage.update_data(key(bot_id), {}) == {}
    assert await rows(sessionmaker, bot_id) == []
    assert await storage.get_state(key(bot_id)) is None
    assert await storage.get_data(key(bot_id)) == {}


async def test_keys_of_other_users_chats_threads_destinies_and_bots_do_not_mix(
    storage: DatabaseStorage, bot_id: int
) -> None:
    keys = [
        key(bot_id),
        key(bot_id, user_id=2001),
        key(bot_id, chat_id=1001),
        key(bot_id, thread_id=7),
        key(bot_id, business_connection_id="bc1"),
        key(bot_id, destiny="other"),
        key(bot_id + 1),
    ]
    for number, each in enumerate(keys):
        await storage.set_state(each, f"S:{number}")
        await storage.set_data(each, {"n": number})

    for number, each in enumerate(keys):
        assert await storage.get_state(each) == f"S:{number}"
        assert await storage.get_data(each) == {"n": number}

    await storage.set_state(key(bot_id + 1), None)
    await storage.set_data(key(bot_id + 1), {})
    assert await storage.get_state(key(bot_id)) == "S:0"


async def test_two_replicas_on_two_engines_see_each_others_writes(
    engines: list[AsyncEngine], bot_id: int
) -> None:
    first, second = (DatabaseStorage(create_sessionmaker(engine)) for engine in engines)

    await first.set_state(key(bot_id), Invoice.amount)
    await first.update_data(key(bot_id), {"amount_usd": "7.25"})
    assert await second.get_state(key(bot_id)) == "Invoice:amount"
    assert await second.get_data(key(bot_id)) == {"amount_usd": "7.25"}

    await second.update_data(key(bot_id), {"memo": "tea"})
    await second.set_state(key(bot_id), Invoice.memo)
    assert await first.get_state(key(bot_id)) == "Invoice:memo"
    assert await first.get_data(key(bot_id)) == {"amount_usd": "7.25", "memo": "tea"}


async def test_concurrent_update_data_from_two_replicas_loses_no_key(
    engines: list[AsyncEngine], bot_id: int
) -> None:
    storages = [DatabaseStorage(create_sessionmaker(engine)) for engine in engines]

    # The first writers race on a key that has no row yet, the later ones on its lock.
    await asyncio.gather(
        *(
            storages[number % 2].update_data(key(bot_id), {f"k{number}": number})
            for number in range(20)
        )
    )

    assert await storages[0].get_data(key(bot_id)) == {f"k{n}": n for n in range(20)}


async def test_close_leaves_the_engine_usable(storage: DatabaseStorage, bot_id: int) -> None:
    await storage.close()

    await storage.set_state(key(bot_id), "S:x")
    assert await storage.get_state(key(bot_id)) == "S:x"


def _message_update(update_id: int, chat_id: int, text: str) -> Update:
    user = User(id=chat_id, is_bot=False, first_name="Payer")
    message = Message(
        message_id=update_id,
        date=datetime.now(UTC),
        chat=Chat(id=chat_id, type="private"),
        from_user=user,
        text=text,
    )
    return Update(update_id=update_id, message=message)


def _invoice_dispatcher(storage: DatabaseStorage, seen: list[str]) -> Dispatcher:
    router = Router(name="invoice")

    @router.message(Command("invoice"))
    async def start(message: Message, state: FSMContext) -> str:
        await state.set_state(Invoice.amount)
        await state.update_data(chat=message.chat.id)
        return "asked"

    @router.message(Invoice.amount, F.text)
    async def amount(message: Message, state: FSMContext) -> str:
        data = await state.get_data()
        seen.append(f"{data['chat']}:{message.text}")
        await state.clear()
        return "amount"

    dispatcher = Dispatcher(storage=storage)
    dispatcher.include_router(router)
    return dispatcher


async def test_dispatcher_routes_the_next_update_by_the_state_another_replica_stored(
    engines: list[AsyncEngine], sessionmaker: async_sessionmaker[AsyncSession]
) -> None:
    seen: list[str] = []
    replicas = [
        _invoice_dispatcher(DatabaseStorage(create_sessionmaker(engine)), seen)
        for engine in engines
    ]
    bot_id = next(_bot_ids)
    bot = Bot(f"{bot_id}:TEST")
    chat_id = 555_000_111
    try:
        # Without a state the amount handler does not match.
        assert await replicas[1].feed_update(bot, _message_update(1, chat_id, "12.50")) is UNHANDLED

        assert (
            await replicas[0].feed_update(bot, _message_update(2, chat_id, "/invoice")) == "asked"
        )
        assert await replicas[1].feed_update(bot, _message_update(3, chat_id, "12.50")) == "amount"

        assert seen == [f"{chat_id}:12.50"]
        assert await rows(sessionmaker, bot_id) == []  # state.clear() left nothing behind
        assert await replicas[0].feed_update(bot, _message_update(4, chat_id, "9")) is UNHANDLED
    finally:
        await bot.session.close()
