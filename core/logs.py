"""Log lines that describe a transaction's changes, written only once that transaction commits.

A watcher step or a request decides that a payment was confirmed or a session completed inside
its transaction; the line saying so must not appear if that transaction rolls back (the step is
then repeated, and would say it twice). The lines wait on the session, like the outbox events,
and are written right after COMMIT; a rolled-back transaction's lines are dropped.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import on_commit


def log_on_commit(
    session: AsyncSession, logger: Any, level: str, event: str, **fields: Any
) -> None:
    """`logger.<level>(event, **fields)` once the session's current transaction commits."""
    on_commit(session, partial(getattr(logger, level), event, **fields))
