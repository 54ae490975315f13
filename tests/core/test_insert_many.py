"""insert_many: one statement for a whole batch, the same rows on both backends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from core.db import create_engine, create_sessionmaker, insert_many
from core.models.base import ExactDecimal, TokenAmount, UTCDateTime
from tests.harness.databases import sqlite_url

MAX_UINT256 = 2**256 - 1

metadata = MetaData()
rows_table = Table(
    "batch_rows",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("uuid", String(36), unique=True, default=lambda: "generated"),
    Column("usd", ExactDecimal, nullable=True),
    Column("tokens", TokenAmount),
    Column("at", UTCDateTime),
    Column("note", String(20), nullable=True),
)


class _Base(DeclarativeBase):
    metadata = metadata


class Mapped_(_Base):
    __tablename__ = "batch_mapped"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column("label_text", String(20))
    tokens: Mapped[int] = mapped_column(TokenAmount)


def _rows(count: int) -> list[dict[str, object]]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        {
            "uuid": f"row-{number}",
            "usd": Decimal("0.1") * number if number % 3 else None,
            "tokens": MAX_UINT256 - number,
            "at": start + timedelta(seconds=number),
            "note": None if number % 2 else "<even & odd>",
        }
        for number in range(count)
    ]


@pytest.mark.parametrize("count", [1, 7, 250])
async def test_every_row_lands_exactly_with_ids_in_row_order(backend_url: str, count: int) -> None:
    engine = create_engine(backend_url, pool=False)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with create_sessionmaker(engine)() as session:
            rows = _rows(count)
            statement, parameters = insert_many(session, rows_table, rows)
            returned = (
                await session.execute(
                    statement.returning(rows_table.c.uuid, rows_table.c.id), parameters
                )
            ).all()
            await session.commit()
            stored = {
                row.uuid: row._mapping for row in (await session.execute(select(rows_table))).all()
            }
        assert len(returned) == count
        assert {uuid: stored[uuid]["id"] for uuid, _ in returned} == dict(returned)
        ids_in_row_order = [dict(returned)[row["uuid"]] for row in rows]
        assert ids_in_row_order == sorted(ids_in_row_order)  # ids follow the rows' order
        for row in rows:
            kept = stored[str(row["uuid"])]
            assert {key: kept[key] for key in row} == row
    finally:
        await engine.dispose()


async def test_mapped_classes_take_attribute_names(backend_url: str) -> None:
    engine = create_engine(backend_url, pool=False)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
        async with create_sessionmaker(engine)() as session:
            rows = [{"label": f"l{n}", "tokens": 10**30 + n} for n in range(5)]
            statement, parameters = insert_many(session, Mapped_, rows)
            made = (await session.scalars(statement.returning(Mapped_), parameters)).all()
            await session.commit()
            assert sorted((m.label, m.tokens) for m in made) == [
                (row["label"], row["tokens"]) for row in rows
            ]
            assert all(m in session for m in made)
    finally:
        await engine.dispose()


async def test_rows_must_agree_and_give_defaulted_columns(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path), pool=False)
    try:
        async with create_sessionmaker(engine)() as session:
            with pytest.raises(ValueError, match="same keys"):
                insert_many(session, rows_table, [{"uuid": "a", "tokens": 1}, {"uuid": "b"}])
            # A Python-side default computed once for an INSERT ... SELECT would repeat.
            with pytest.raises(ValueError, match="uuid"):
                insert_many(session, rows_table, [{"tokens": 1}, {"tokens": 2}])
    finally:
        await engine.dispose()
