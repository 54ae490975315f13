"""chain/reorg.py's decisions, without a chain: where the scanned chain forked, and the two
mid-step checks that make a step give up and let the next one find the fork."""

from __future__ import annotations

from dataclasses import dataclass

from chain.reorg import HashAt, breaks_ledger, find_fork, replaced_while_reading


@dataclass(frozen=True)
class Entry:
    number: int
    hash: str


def ledger(*numbers: int, prefix: str = "a") -> list[Entry]:
    """Newest first, as the watcher reads it."""
    return [Entry(n, f"{prefix}{n}") for n in sorted(numbers, reverse=True)]


def node(hashes: dict[int, str]) -> tuple[list[int], HashAt]:
    asked: list[int] = []

    async def hash_at(number: int) -> str | None:
        asked.append(number)
        return hashes.get(number)

    return asked, hash_at


async def test_canonical_tip_means_no_fork_and_asks_the_node_once() -> None:
    asked, hash_at = node({n: f"a{n}" for n in range(10, 15)})
    assert await find_fork(ledger(10, 11, 12, 13, 14), hash_at) is None
    assert asked == [14]


async def test_fork_is_the_newest_height_whose_hash_still_matches() -> None:
    hashes = {n: f"a{n}" for n in range(10, 13)} | {13: "b13", 14: "b14"}
    asked, hash_at = node(hashes)
    assert await find_fork(ledger(10, 11, 12, 13, 14), hash_at) == 12
    assert asked == [14, 13, 12]


async def test_a_height_the_node_no_longer_has_counts_as_replaced() -> None:
    _, hash_at = node({10: "a10", 11: "a11"})  # the chain got shorter
    assert await find_fork(ledger(10, 11, 12), hash_at) == 11


async def test_fork_below_the_whole_ledger_rewinds_past_its_oldest_block() -> None:
    _, hash_at = node({n: f"b{n}" for n in range(10, 13)})
    assert await find_fork(ledger(10, 11, 12), hash_at) == 9


def test_fresh_blocks_that_do_not_follow_the_ledger_tip_break_it() -> None:
    tip = ledger(10)
    assert not breaks_ledger(tip, [(11, "a11", "a10"), (12, "a12", "a11")])
    assert breaks_ledger(tip, [(11, "b11", "b10")])
    assert not breaks_ledger(tip, [(13, "a13", "x")])  # not adjacent: nothing to compare
    assert not breaks_ledger([], [(11, "b11", "b10")])
    assert not breaks_ledger(tip, [])


def test_logs_from_a_block_replaced_while_reading_are_refused() -> None:
    blocks = [(11, "a11", "a10"), (12, "a12", "a11")]
    assert not replaced_while_reading([(11, "a11"), (12, "a12"), (5, "old")], blocks)
    assert replaced_while_reading([(12, "b12")], blocks)
    assert not replaced_while_reading([], blocks)
