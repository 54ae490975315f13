"""The SQLite engine: statements answer as the driver does, writers queued in the process,
readers beside them."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from core.db import create_engine, create_sessionmaker, read_only_sessionmaker, transaction
from tests.harness.databases import sqlite_url

metadata = MetaData()
counter = Table(
    "counter",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("value", Integer, nullable=False),
)
notes = Table("notes", metadata, Column("id", Integer, primary_key=True), Column("text", String))


async def _engine(tmp_path: Path) -> AsyncEngine:
    engine = create_engine(sqlite_url(tmp_path))
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
        await connection.execute(insert(counter).values(id=1, value=0))
    return engine


async def test_statements_answer_rows_rowcount_and_lastrowid(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    try:
        async with transaction(create_sessionmaker(engine)) as session:
            inserted: Any = await session.execute(insert(notes).values(text="a"))
            assert inserted.inserted_primary_key == (1,)
            await session.execute(insert(notes), [{"text": "b"}, {"text": "c"}])
            changed: Any = await session.execute(
                update(notes).where(notes.c.id > 1).values(text="x")
            )
            assert changed.rowcount == 2
            rows = (await session.execute(select(notes.c.text).order_by(notes.c.id))).all()
            assert [r.text for r in rows] == ["a", "x", "x"]
            assert await session.scalar(select(func.count()).select_from(notes)) == 3
        with pytest.raises(Exception, match="UNIQUE|unique"):
            async with transaction(create_sessionmaker(engine)) as session:
                await session.execute(insert(notes).values(id=1, text="again"))
    finally:
        await engine.dispose()


async def test_concurrent_writers_take_turns_without_losing_an_update(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    sessionmaker = create_sessionmaker(engine)

    async def increment() -> None:
        async with transaction(sessionmaker) as session:
            value = await session.scalar(select(counter.c.value).where(counter.c.id == 1)) or 0
            await asyncio.sleep(0)  # let the others try to write meanwhile
            await session.execute(update(counter).where(counter.c.id == 1).values(value=value + 1))

    try:
        started = time.perf_counter()
        await asyncio.gather(*(increment() for _ in range(40)))
        elapsed = time.perf_counter() - started
        async with sessionmaker() as session:
            assert await session.scalar(select(counter.c.value)) == 40
        # Queued in the process, none of them sleeps in SQLite's busy handler (which would
        # take 40 x several ms to 100 ms).
        assert elapsed < 2.0
    finally:
        await engine.dispose()


async def test_a_reader_neither_waits_for_nor_blocks_a_writer(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    sessionmaker = create_sessionmaker(engine)
    try:
        async with sessionmaker() as writer:
            await writer.execute(update(counter).values(value=5))  # holds the write lock
            async with read_only_sessionmaker(sessionmaker)() as reader:
                # The last commit, at once, while the writer is still open.
                value = await asyncio.wait_for(reader.scalar(select(counter.c.value)), 2)
                assert value == 0
            await writer.commit()
        async with read_only_sessionmaker(sessionmaker)() as reader:
            assert await reader.scalar(select(counter.c.value)) == 5
    finally:
        await engine.dispose()


async def test_a_rolled_back_writer_lets_the_next_one_in(tmp_path: Path) -> None:
    engine = await _engine(tmp_path)
    sessionmaker = create_sessionmaker(engine)
    try:

        async def fail() -> None:
            async with transaction(sessionmaker) as session:
                await session.execute(update(counter).values(value=7))
                raise RuntimeError("boom")

        with pytest.raises(RuntimeError):
            await fail()
        async with transaction(sessionmaker) as session:
            await asyncio.wait_for(session.execute(update(counter).values(value=8)), 2)
        async with sessionmaker() as session:
            assert await session.scalar(select(counter.c.value)) == 8
    finally:
        await engine.dispose()
