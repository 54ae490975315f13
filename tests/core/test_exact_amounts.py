"""Amount columns keep every digit on both backends, where plain Numeric on SQLite does not."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, Numeric, Table, insert, select

from core.db import create_engine
from core.models.base import ExactDecimal, TokenAmount
from tests.harness.databases import sqlite_url

MAX_UINT256 = 2**256 - 1

metadata = MetaData()
amounts = Table(
    "amounts",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("usd", ExactDecimal),
    Column("tokens", TokenAmount),
    Column("plain", Numeric),
)


async def _round_trip(url: str, **values: object) -> dict[str, object]:
    engine = create_engine(url, pool=False)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(metadata.create_all)
            await conn.execute(insert(amounts).values(id=1, **values))
        async with engine.connect() as conn:
            row = (await conn.execute(select(amounts).where(amounts.c.id == 1))).one()
            return dict(row._mapping)
    finally:
        await engine.dispose()


@pytest.mark.parametrize(
    ("usd", "tokens"),
    [
        (Decimal("0.1"), MAX_UINT256),
        (Decimal("1000000000000000000000000000000"), 10**30),
        (Decimal("0.000000000000000001"), 0),
        (Decimal("29.99"), 1),
    ],
)
async def test_amounts_round_trip_exactly(backend_url: str, usd: Decimal, tokens: int) -> None:
    row = await _round_trip(backend_url, usd=usd, tokens=tokens)
    assert row["usd"] == usd
    assert isinstance(row["usd"], Decimal)
    assert row["tokens"] == tokens
    assert type(row["tokens"]) is int


async def test_plain_numeric_on_sqlite_loses_digits_which_is_why_we_have_our_own(
    tmp_path: Path,
) -> None:
    row = await _round_trip(sqlite_url(tmp_path), plain=Decimal(10**30) + 1)
    assert row["plain"] != Decimal(10**30) + 1


async def test_token_amounts_refuse_floats_and_negatives(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="TokenAmount needs an int"):
        await _round_trip(sqlite_url(tmp_path), tokens=1.5)
    with pytest.raises(Exception, match="never negative"):
        await _round_trip(sqlite_url(tmp_path), tokens=-1)
    with pytest.raises(Exception, match="ExactDecimal needs a Decimal"):
        await _round_trip(sqlite_url(tmp_path), usd=0.1)
