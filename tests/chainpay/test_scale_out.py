"""The roles run separately, as a deployment scales them out, against one PostgreSQL database:
2 `chainpay api` behind a round-robin proxy, 2 `chainpay worker`, 2 `chainpay watcher`, two anvil
chains. 500 sessions created through the proxy and paid on chain: each completed exactly once,
each event delivered exactly once to each of two webhook endpoints, no 5xx, every process stops
cleanly. Timing is bench/scale_out.py's business; this asserts correctness only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from chain.devnet import Devnet
from tests.harness.chains import devnet_or_skip
from tests.harness.databases import suite_backend
from tests.harness.scale_out import run_scenario

pytestmark = pytest.mark.slow

SESSIONS = 500
BLOCK_SECONDS = 0.5


@pytest.fixture(autouse=True)
def postgresql_only() -> None:
    if suite_backend() != "postgresql":
        pytest.skip("SQLite takes one process's writes at a time: scaled-out roles need PostgreSQL")


@pytest.fixture
def chains() -> Iterator[Devnet]:
    yield from devnet_or_skip(block_time=BLOCK_SECONDS)


def test_scaled_out_roles_complete_each_session_once_and_deliver_each_event_once_per_endpoint(
    fresh_url: str, chains: Devnet, tmp_path: Path
) -> None:
    started = time.monotonic()
    outcome = run_scenario("roles", fresh_url, chains, tmp_path, sessions=SESSIONS)

    assert outcome.problems == []
    assert outcome.figures["sessions_created"] == SESSIONS
    # Three events per session: the payment seen, the payment final, the session completed.
    assert outcome.figures["events"] == {
        "payment.detected": SESSIONS,
        "payment.confirmed": SESSIONS,
        "session.completed": SESSIONS,
    }
    assert outcome.figures["deliveries_received"] == 2 * 3 * SESSIONS
    backends = outcome.figures["proxy"]["per_backend"]
    assert len(backends) == 2
    assert min(backends.values()) > 0
    print(f"scale-out scenario: {outcome.figures} in {time.monotonic() - started:.1f} s")
