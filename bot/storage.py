"""aiogram's FSM storage in chainpay's database: every bot replica sees one conversation state.

One `telegram_states` row per storage key holds both the state and the data (JSON). Each call
is one short transaction of its own; a key whose state is None and whose data is empty has no
row at all.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any, cast

from aiogram.fsm.state import State
from aiogram.fsm.storage.base import (
    BaseStorage,
    DefaultKeyBuilder,
    KeyBuilder,
    StateType,
    StorageKey,
)
from sqlalchemy import String, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.db import transaction
from core.models.base import utcnow
from core.models.telegram import TelegramState

_EMPTY = "{}"


def _length(column: Any) -> int:
    """The column's String length: what does not fit is refused here, not cut by the database."""
    length = cast(String, column.type).length
    assert length is not None
    return length


_KEY_LENGTH = _length(TelegramState.__table__.c.key)
_STATE_LENGTH = _length(TelegramState.__table__.c.state)


class DatabaseStorage(BaseStorage):
    """FSM state and data in `telegram_states`, shared by every process on the same database."""

    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        key_builder: KeyBuilder | None = None,
    ) -> None:
        self.sessionmaker = sessionmaker
        # Every part of the StorageKey goes into the row's key: two bots, chats, users, topics,
        # business connections or destinies never share a row.
        self.key_builder = key_builder or DefaultKeyBuilder(
            with_bot_id=True, with_business_connection_id=True, with_destiny=True
        )

    async def close(self) -> None:
        """Nothing to close: the engine belongs to the process, not to the dispatcher."""

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        value = _state_name(state)
        row_key = self._key(key)
        async with transaction(self.sessionmaker) as session:
            if value is None:
                await session.execute(
                    update(TelegramState)
                    .where(TelegramState.key == row_key)
                    .values(state=None, updated_at=utcnow())
                )
                await _delete_if_empty(session, row_key)
                return
            insert = _insert_for(session)
            statement = insert(TelegramState).values(
                key=row_key, state=value, data=_EMPTY, updated_at=utcnow()
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[TelegramState.key],
                    set_={"state": value, "updated_at": statement.excluded.updated_at},
                )
            )

    async def get_state(self, key: StorageKey) -> str | None:
        async with transaction(self.sessionmaker) as session:
            return await session.scalar(
                select(TelegramState.state).where(TelegramState.key == self._key(key))
            )

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        text = _dump(data)
        row_key = self._key(key)
        async with transaction(self.sessionmaker) as session:
            if text == _EMPTY:
                await session.execute(
                    update(TelegramState)
                    .where(TelegramState.key == row_key)
                    .values(data=_EMPTY, updated_at=utcnow())
                )
                await _delete_if_empty(session, row_key)
                return
            insert = _insert_for(session)
            statement = insert(TelegramState).values(
                key=row_key, state=None, data=text, updated_at=utcnow()
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[TelegramState.key],
                    set_={"data": text, "updated_at": statement.excluded.updated_at},
                )
            )

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        async with transaction(self.sessionmaker) as session:
            text = await session.scalar(
                select(TelegramState.data).where(TelegramState.key == self._key(key))
            )
        return _load(text)

    async def update_data(self, key: StorageKey, data: Mapping[str, Any]) -> dict[str, Any]:
        """Merge `data` into the key's data (like dict.update), atomically: two replicas updating
        one key at once both land, one after the other."""
        _dump(data)  # refuse what cannot be stored before taking any lock
        row_key = self._key(key)
        async with transaction(self.sessionmaker) as session:
            # Read-modify-write under the row's lock (PostgreSQL; on SQLite BEGIN IMMEDIATE holds
            # the database's write lock already). A key without a row gets an empty one first, so
            # that concurrent first writers queue on its lock instead of overwriting each other.
            row = await _lock(session, row_key)
            if row is None:
                await session.execute(
                    _insert_for(session)(TelegramState)
                    .values(key=row_key, state=None, data=_EMPTY, updated_at=utcnow())
                    .on_conflict_do_nothing(index_elements=[TelegramState.key])
                )
                row = await _lock(session, row_key)
                if row is None:  # pragma: no cover - the row was inserted or existed just above
                    raise RuntimeError(f"FSM state row {row_key!r} vanished under its lock")
            _, current_text = row
            merged = _load(current_text)
            merged.update(data)
            text = _dump(merged)
            await session.execute(
                update(TelegramState)
                .where(TelegramState.key == row_key)
                .values(data=text, updated_at=utcnow())
            )
            if text == _EMPTY:
                await _delete_if_empty(session, row_key)
        return merged.copy()

    def _key(self, key: StorageKey) -> str:
        built = self.key_builder.build(key)
        if len(built) > _KEY_LENGTH:
            raise ValueError(f"FSM storage key is longer than {_KEY_LENGTH} characters: {built!r}")
        return built


def _insert_for(session: AsyncSession) -> Any:
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


async def _lock(session: AsyncSession, row_key: str) -> tuple[str | None, str] | None:
    row = (
        await session.execute(
            select(TelegramState.state, TelegramState.data)
            .where(TelegramState.key == row_key)
            .with_for_update()
        )
    ).one_or_none()
    return None if row is None else (row[0], row[1])


async def _delete_if_empty(session: AsyncSession, row_key: str) -> None:
    await session.execute(
        delete(TelegramState).where(
            TelegramState.key == row_key,
            TelegramState.state.is_(None),
            TelegramState.data == _EMPTY,
        )
    )


def _state_name(state: StateType) -> str | None:
    value = state.state if isinstance(state, State) else state
    if value is not None and len(value) > _STATE_LENGTH:
        raise ValueError(f"FSM state name is longer than {_STATE_LENGTH} characters: {value!r}")
    return value


def _load(text: str | None) -> dict[str, Any]:
    if not text:
        return {}
    loaded = json.loads(text)
    if not isinstance(loaded, dict):
        raise ValueError(f"FSM data is not a JSON object: {text[:100]!r}")
    return loaded


def _dump(data: Mapping[str, Any]) -> str:
    """`data` as JSON, refusing what would not come back equal (tuples, int keys, Decimal...)."""
    for name, value in data.items():
        if type(name) is not str:
            raise TypeError(f"FSM data keys must be str, not {type(name).__name__}: {name!r}")
        _check(value, name)
    return json.dumps(dict(data), separators=(",", ":"), sort_keys=True, allow_nan=False)


def _check(value: Any, path: str) -> None:
    kind = type(value)
    if value is None or kind in (str, int, bool):
        return
    if kind is float:
        if not math.isfinite(value):
            raise TypeError(f"FSM data at {path!r} is a non-finite float, which JSON cannot hold")
        return
    if kind is list:
        for index, item in enumerate(value):
            _check(item, f"{path}[{index}]")
        return
    if kind is dict:
        for name, item in value.items():
            if type(name) is not str:
                raise TypeError(
                    f"FSM data at {path!r} has a {type(name).__name__} key {name!r}; "
                    "only str keys survive JSON"
                )
            _check(item, f"{path}.{name}")
        return
    raise TypeError(
        f"FSM data at {path!r} is a {kind.__name__}, which is not JSON "
        "(allowed: None, bool, int, float, str, list, dict with str keys); "
        "store e.g. Decimal as str and tuples as lists"
    )
