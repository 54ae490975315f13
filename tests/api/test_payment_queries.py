"""Listing payments costs a fixed number of queries per page, not a few per payment."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine

from tests.harness.factories import Api, make_customer, pay_session

# The tables a payment's view reads; other statements (authentication, the live server's
# background jobs polling their own tables) do not depend on the page size.
VIEW_TABLES = re.compile(r"\b(payments|checkout_sessions|subscriptions|customers|currencies)\b")


class StatementCounter:
    def __init__(self) -> None:
        self.count = 0
        self._lock = threading.Lock()

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        if VIEW_TABLES.search(statement):
            with self._lock:
                self.count += 1


@pytest.fixture
def counter() -> Iterator[StatementCounter]:
    counting = StatementCounter()
    event.listen(Engine, "before_cursor_execute", counting)
    try:
        yield counting
    finally:
        event.remove(Engine, "before_cursor_execute", counting)


def statements_for(api: Api, counter: StatementCounter, path: str, limit: int) -> int:
    """The fewest statements of three identical requests (a background job may add to one)."""
    counts = []
    for _ in range(3):
        before = counter.count
        response = api.get(path, params={"limit": limit})
        assert response.status_code == 200, response.text
        assert len(response.json()["items"]) == limit
        counts.append(counter.count - before)
    return min(counts)


@pytest.mark.parametrize("path", ["/transaction/payments", "/transaction/payments/combined"])
def test_a_page_of_twenty_payments_costs_as_many_queries_as_a_page_of_one(
    sandbox: Api, database_url: str, counter: StatementCounter, path: str
) -> None:
    for index in range(20):
        extra = {"customerUUID": make_customer(sandbox)["uuid"]} if index % 2 else {}
        created = sandbox.post(
            "/transaction/session-checkout",
            json={"productName": "Course", "description": "Video", "price": "1", **extra},
        )
        assert created.status_code == 200, created.text
        pay_session(database_url, created.json()["depositAddress"], 1_000_000)

    one = statements_for(sandbox, counter, path, 1)
    twenty = statements_for(sandbox, counter, path, 20)
    assert one > 0
    assert twenty == one, (one, twenty)
