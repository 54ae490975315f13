"""IdCursor: reading a table in id order when ids become visible out of order."""

from __future__ import annotations

import pytest

from core.cursor import IdCursor


def test_contiguous_ids_move_the_position_and_leave_no_holes() -> None:
    cursor = IdCursor()
    cursor.advance([1, 2, 3], now=10.0)
    assert cursor.position == 3
    assert cursor.holes == {}


def test_an_id_skipped_by_the_cursor_is_asked_for_until_it_appears() -> None:
    cursor = IdCursor(position=3)
    cursor.advance([4, 7, 8], now=10.0)
    assert cursor.position == 8
    assert cursor.pending() == [5, 6]
    cursor.filled([6])
    assert cursor.pending() == [5]


def test_a_hole_keeps_the_time_it_was_first_missed() -> None:
    cursor = IdCursor()
    cursor.advance([1, 3], now=10.0)
    cursor.advance([4, 6], now=50.0)
    assert cursor.holes == {2: 10.0, 5: 50.0}


def test_holes_older_than_the_patience_are_rollbacks_and_given_up() -> None:
    cursor = IdCursor(hole_seconds=600.0)
    cursor.advance([1, 3], now=0.0)
    cursor.advance([5], now=300.0)
    cursor.expire(now=600.0)
    assert cursor.pending() == [2, 4]
    cursor.expire(now=600.5)
    assert cursor.pending() == [4]


def test_only_gaps_among_the_recent_ids_can_be_in_flight() -> None:
    cursor = IdCursor(recent_ids=10)
    cursor.advance([1, 30], now=0.0)  # 2..19 are too far below 30 to be in flight
    assert cursor.pending() == list(range(20, 30))


def test_recent_is_measured_from_the_newest_id_known_not_the_batch() -> None:
    # Catching up on a backlog: a batch far below the newest id holds only old gaps.
    cursor = IdCursor(recent_ids=10)
    cursor.advance([1, 5], now=0.0, newest=100)
    assert cursor.pending() == []
    assert cursor.position == 5
    cursor.advance([95, 97], now=0.0, newest=100)
    assert cursor.pending() == [90, 91, 92, 93, 94, 96]


def test_an_empty_read_changes_nothing() -> None:
    cursor = IdCursor(position=4, holes={2: 1.0})
    cursor.advance([], now=5.0)
    assert (cursor.position, cursor.holes) == (4, {2: 1.0})


@pytest.mark.parametrize("ids", [[3, 5], [6, 6], [7, 6]])
def test_ids_must_be_new_and_ascending(ids: list[int]) -> None:
    cursor = IdCursor(position=4)
    with pytest.raises(ValueError, match="ascending"):
        cursor.advance(ids, now=0.0)
