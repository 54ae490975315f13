"""On SQLite, read-only routes read beside a writer instead of queueing for its lock."""

from __future__ import annotations

import sqlite3
import time

import pytest
from sqlalchemy.engine import make_url

from tests.harness.factories import Api


def test_reads_answer_while_another_writer_holds_the_database(database_url: str, api: Api) -> None:
    if make_url(database_url).get_backend_name() != "sqlite":
        pytest.skip("SQLite's one write lock; PostgreSQL readers never wait for writers")
    created = api.post(
        "/transaction/session-checkout",
        json={"productName": "Ebook", "description": "PDF", "price": "19.99"},
    )
    assert created.status_code == 200, created.text
    uuid = created.json()["uuid"]
    assert api.get("/product").status_code == 200  # the key's last use is recorded now

    writer = sqlite3.connect(make_url(database_url).database or "", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # another process's writer, holding the lock
        started = time.perf_counter()
        assert api.get("/product").status_code == 200
        assert api.get(f"/transaction/session-checkout/{uuid}").json()["uuid"] == uuid
        # A write would wait for the lock (busy timeout, 30 s); the reads did not.
        assert time.perf_counter() - started < 5
    finally:
        writer.execute("ROLLBACK")
        writer.close()
