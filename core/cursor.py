"""Reading a table in id order when ids become visible out of order.

Ids come from a sequence at INSERT but rows become visible at COMMIT, so (on PostgreSQL, with
several writers) a row can appear below a cursor that has already moved past it; a reader that
only asks for `id > cursor` would never see it. `IdCursor` remembers the recent ids it skipped
(holes) with the time each was first missed; the reader asks for them again until they appear,
or until they are old enough to be rollbacks (a rolled-back INSERT burns its id for good).

Pure state and arithmetic: the caller reads the rows and says what time it is, so the same
cursor serves one in memory (the watcher's deposit addresses) and one stored in the database
(event consumers).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

# Only gaps among the newest RECENT_IDS ids can belong to a transaction still in flight, and
# none for longer than HOLE_SECONDS: past either, a missing id is a rollback.
RECENT_IDS = 1_000
HOLE_SECONDS = 600.0


@dataclass(slots=True)
class IdCursor:
    position: int = 0  # every id up to here was read, or is one of the holes
    holes: dict[int, float] = field(default_factory=dict)  # skipped id -> when first missed
    recent_ids: int = RECENT_IDS
    hole_seconds: float = HOLE_SECONDS

    def expire(self, now: float) -> None:
        """Give up on holes missed for longer than `hole_seconds`: their INSERT rolled back."""
        for number, since in list(self.holes.items()):
            if now - since > self.hole_seconds:
                del self.holes[number]

    def pending(self) -> list[int]:
        """The holes to ask for again, in id order."""
        return sorted(self.holes)

    def filled(self, ids: Iterable[int]) -> None:
        """These holes have appeared (and were read)."""
        for number in ids:
            self.holes.pop(number, None)

    def advance(self, ids: Sequence[int], now: float, *, newest: int | None = None) -> None:
        """Move past `ids`, the rows just read above `position` (ascending); the ids skipped
        between them become holes if they are among the `recent_ids` below `newest` (the
        highest id known to exist; by default the last of `ids`)."""
        if not ids:
            return
        top = ids[-1] if newest is None else max(newest, ids[-1])
        floor = top - self.recent_ids
        expected = self.position + 1
        for number in ids:
            if number < expected:
                raise ValueError(f"ids must be ascending and above {self.position}: {number}")
            for missing in range(max(expected, floor), number):
                self.holes.setdefault(missing, now)
            expected = number + 1
        self.position = ids[-1]
