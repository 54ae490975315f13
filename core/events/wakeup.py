"""A process-local wake-up for the loops that read the outbox (the webhook sender, consumers).

A transaction that wrote events or queued deliveries calls `notify_on_commit(session)`; when it
commits (never when it rolls back) every listener in this process is set, so a loop that was
waiting out its poll interval looks at once. Commits made by other processes are not seen here:
the loops' poll interval covers those. A listener belongs to the event loop that made it and
is set from there, or through that loop if the commit ran in another thread (the tests' servers).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import on_commit


class Listener:
    """One waiting loop's view of the wake-up: set when something committed since it cleared."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def is_set(self) -> bool:
        return self._event.is_set()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self) -> None:
        await self._event.wait()

    def _set(self) -> None:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self._event.set()
        else:
            with contextlib.suppress(RuntimeError):  # that loop has closed: nobody waits
                self._loop.call_soon_threadsafe(self._event.set)


class Wakeup:
    def __init__(self) -> None:
        self._listeners: set[Listener] = set()
        self._lock = threading.Lock()

    def subscribe(self) -> Listener:
        """A new listener of this loop's, woken until `unsubscribe` (make it before the first
        look, so that a commit during that look is not missed)."""
        listener = Listener()
        with self._lock:
            self._listeners.add(listener)
        return listener

    def unsubscribe(self, listener: Listener) -> None:
        with self._lock:
            self._listeners.discard(listener)

    @contextlib.contextmanager
    def listen(self) -> Iterator[Listener]:
        """A listener for the block's duration."""
        listener = self.subscribe()
        try:
            yield listener
        finally:
            self.unsubscribe(listener)

    def listening(self) -> bool:
        with self._lock:
            return bool(self._listeners)

    def notify(self) -> None:
        """Wake every listener of this process."""
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            listener._set()


WAKEUP = Wakeup()
_NOTIFIES = "chainpay.wakeup"


def notify_on_commit(session: AsyncSession) -> None:
    """Wake this process's outbox readers when the session's transaction commits (once, however
    often a transaction asks)."""
    sync = session.sync_session
    transaction = sync.get_transaction() or sync.begin()
    if sync.info.get(_NOTIFIES) is transaction:
        return
    sync.info[_NOTIFIES] = transaction
    on_commit(session, WAKEUP.notify)
